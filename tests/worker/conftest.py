"""Worker fixtures: the tiny FLUX pipelines (built once per session by tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _cpu_threads() -> None:
    # One thread per core: more made the tiny pipelines many times slower on this CPU.
    from app.worker.pipelines import set_cpu_threads

    set_cpu_threads(2)


@pytest.fixture(scope="session")
def tiny_paths(tiny_models: Path) -> dict[str, Path]:
    """Every tiny ref mapped to its path; the build itself happened in `tiny_models`."""
    from app.worker.tiny import build_tiny_models

    return build_tiny_models(tiny_models)
