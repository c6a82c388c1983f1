"""DESIGN.md: the web tier never imports torch; the worker never imports FastAPI; the
worker's parent process never imports torch (its children do); quality, below the worker,
never imports it."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest


def loaded_after(module: str) -> list[str]:
    """Every module in sys.modules after importing `module` in a fresh interpreter."""
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return out.stdout.split()


def imported_after(module: str) -> set[str]:
    return {name.split(".")[0] for name in loaded_after(module)}


def test_layering_web_does_not_import_torch() -> None:
    modules = imported_after("app.web.main")
    assert "fastapi" in modules
    assert not {"torch", "diffusers", "transformers"} & modules


def test_layering_worker_does_not_import_fastapi() -> None:
    modules = imported_after("app.worker.child") | imported_after("app.worker.pipelines")
    assert "torch" in modules
    assert not {"fastapi", "starlette", "uvicorn"} & modules


# The worker's parent side: the loop, enqueueing, claims, driving a child, storing results.
PARENT_MODULES = [
    "app.worker.runner",
    "app.worker.enqueue",
    "app.worker.claims",
    "app.worker.child_driver",
    "app.worker.results",
]


@pytest.mark.parametrize("module", PARENT_MODULES)
def test_layering_worker_parent_does_not_import_torch(module: str) -> None:
    # The parent only claims, drives children and writes results: no torch in it means no
    # CUDA context, and no torch state that a child could be thought to inherit.
    modules = imported_after(module)
    assert "sqlalchemy" in modules
    assert not {"torch", "diffusers", "fastapi"} & modules


def _quality_modules() -> list[str]:
    import app.quality

    return ["app.quality"] + [
        f"app.quality.{m.name}" for m in pkgutil.iter_modules(app.quality.__path__)
    ]


@pytest.mark.parametrize("module", _quality_modules())
def test_layering_quality_does_not_import_the_worker(module: str) -> None:
    # Quality sits below the worker (which imports its metrics): a CLIP ref's files are
    # resolved by the caller, never by reaching up into app.worker.
    loaded = loaded_after(module)
    assert module in loaded
    assert not [name for name in loaded if name.startswith("app.worker")]
