"""Shared fixtures: a real SQLite database created by the Alembic migrations in a temp dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

# The default paths never touch the network; make any accidental Hub access fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    from app.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'test.db'}"
    upgrade(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    from app.db import make_engine

    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny offline FLUX pipelines, built once per test session."""
    import torch

    from app.worker.tiny import build_tiny_models

    torch.set_num_threads(2)
    models = tmp_path_factory.mktemp("models")
    build_tiny_models(models)
    return models
