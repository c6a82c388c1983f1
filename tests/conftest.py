"""Shared fixtures: a real SQLite database created by the Alembic migrations in a temp dir."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.config import Settings
from app.web.main import create_app
from tests.built_once import built_once

# The default paths never touch the network; make any accidental Hub access fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Workers started by the tests hold their device locks here, not where a real worker on
# this machine holds its own: a benchmark running beside the tests neither blocks them nor
# is blocked by them.
os.environ.setdefault(
    "FLUX_PLAYGROUND_LOCK_DIR", tempfile.mkdtemp(prefix="flux-playground-test-locks-")
)

ROOT = Path(__file__).resolve().parent.parent


# --- running in parallel (pytest-xdist: `make test` runs `pytest -n auto --dist loadgroup`) --


def pytest_configure(config: pytest.Config) -> None:
    # One core per xdist worker: each worker's torch (and every child process, server and
    # browser it starts, which inherit the affinity) then uses one thread
    # (config.torch_threads counts the cores a process may use). Two workers with two
    # threads each on two cores is the oversubscription that made a tiny pipeline 80x slower.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    cores = sorted(os.sched_getaffinity(0))
    if worker.startswith("gw") and len(cores) > 1:
        os.sched_setaffinity(0, {cores[int(worker[2:]) % len(cores)]})
    if worker:
        # xdist starts its workers with COLUMNS=80 and LINES=24, and a Rich console made at
        # import then keeps 80 columns for good: the CLI tests that set COLUMNS for one
        # invocation (a CliRunner is no terminal) would read wrapped tables.
        for name in ("COLUMNS", "LINES"):
            os.environ.pop(name, None)


def uses_postgres(item: pytest.Item) -> bool:
    """A test that needs the PostgreSQL server: through a fixture, or as the "postgresql"
    case of a parametrized test (both_databases modules, a `backend` parameter)."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    return "postgres" in getattr(item, "fixturenames", ()) or "postgresql" in params


def _group(item: pytest.Item, name: str) -> None:
    """Send `item` to its group's worker. xdist 3.8's loadgroup puts the group in the test's
    id by setting `item._nodeid`, which pytest 9 no longer reads (ids live in `item._id`):
    its groups are silently ignored, and every group was spread over both workers (each
    started its own PostgreSQL server and browser, and made its own PostgreSQL run). So the
    id is set here, as xdist means to (checked by test_postgres_tests_run_on_one_xdist_worker)."""
    from _pytest.nodeid import coerce_node_id

    item.add_marker(pytest.mark.xdist_group(name))
    if getattr(item.config.option, "loadgroup", False) and "@" not in item.nodeid:
        item._id = coerce_node_id(f"{item.nodeid}@{name}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Markers for `make test-fast` (-m "not e2e and not postgres and not slow"), and xdist
    # groups so that the tests sharing a session's browser, or its PostgreSQL server and the
    # run made on it, start them once, on one worker.
    # The longest tests first (each starts child processes, or compiles): xdist hands out
    # the groups (the most tests first) and then single tests in this order, so the long
    # ones do not end up as one worker's tail while the other waits.
    items.sort(
        key=lambda item: (
            0 if item.path.parent.name == "worker" or item.get_closest_marker("slow") else 1
        )
    )
    for item in items:
        if item.path.parent.name == "e2e":
            item.add_marker(pytest.mark.e2e)
            _group(item, "browser")
        elif uses_postgres(item):
            item.add_marker(pytest.mark.postgres)
            _group(item, "postgres")


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
    """The tiny offline FLUX pipelines, built once per test run (tests/built_once.py)."""

    def build(folder: Path) -> Path:
        import torch

        from app.worker.tiny import build_tiny_models

        torch.set_num_threads(len(os.sched_getaffinity(0)))
        build_tiny_models(folder / "models")
        return folder / "models"

    return built_once(
        tmp_path_factory,
        "tiny-models",
        build,
        lambda path: {"path": str(path)},
        lambda data: Path(data["path"]),
    )


# --- a real benchmark run for the pages, the API and the arena ---------------------------
# Made once per test session by the real worker on the tiny offline pipelines. Tests must
# treat `demo_data` as read-only; a test that writes uses `writable_demo` (a private copy).

PROMPTS = """prompt\tcategory\tchallenge
a red bicycle leaning on a wall\tVehicles\tBasic
a bowl of ramen with an egg\tFood & Beverage\tBasic
an owl reading a newspaper\tAnimals\tImagination
<script>alert("x")</script> a lighthouse & the sea\tOutdoor Scenes\tBasic
a teapot shaped like a snail\tArtifacts\tImagination
two cats on a blue sofa\tAnimals\tQuantity
"""

# dev, dev-turbo (dev as its reference) and schnell: both test runs' variants.
TEST_VARIANTS = """
[[variants]]
name = "dev"
model = "tiny:dev"
steps = 4
guidance = 3.5
max_sequence_length = 32
dtype = "float32"

[[variants]]
name = "dev-turbo"
base = "dev"
steps = 2
lora = { path = "tiny:turbo-lora", scale = 1.0, fuse = true }

[[variants]]
name = "schnell"
model = "tiny:schnell"
steps = 2
guidance = 0.0
max_sequence_length = 32
dtype = "float32"
"""

CONFIG = (
    """
name = "webtest"
description = "Web test run: <b>not bold</b>"
prompts = "prompts.tsv"
seeds = [0, 1]
width = 64
height = 64
device = "cpu"
hardware = "Test CPU"
usd_per_hour = 3.6
warmup = 1
repeats = 3
"""
    + TEST_VARIANTS
    + """
[[variants]]
name = "schnell-fp8"
base = "schnell"
quantize = "fp8_dynamic"
"""
)


@dataclass(frozen=True)
class DemoData:
    database_url: str
    media_dir: Path
    run_id: int

    def encode(self) -> dict[str, Any]:
        return {"url": self.database_url, "media": str(self.media_dir), "run": self.run_id}

    @staticmethod
    def decode(data: dict[str, Any]) -> DemoData:
        return DemoData(data["url"], Path(data["media"]), data["run"])


def build_demo_run(
    database_url: str,
    root: Path,
    tiny_models: Path,
    *,
    config: str = CONFIG,
    prompts: str = PROMPTS,
) -> DemoData:
    """Migrate the database, then run a web test benchmark (by default the one above) on it
    with the real worker."""
    from app.bench.benchmark import load_benchmark
    from app.bench.prompts import load_prompts
    from app.db import make_engine
    from app.migrate import upgrade
    from app.worker.enqueue import enqueue_run
    from app.worker.runner import Worker

    (root / "prompts.tsv").write_text(prompts)
    (root / "bench.toml").write_text(config)
    upgrade(database_url)
    engine = make_engine(database_url)
    bench = load_benchmark(root / "bench.toml")
    run_id = enqueue_run(engine, bench, load_prompts(bench.prompts_path))
    Worker(
        engine,
        media_dir=root / "media",
        models_dir=tiny_models,
        show_progress=False,
        lock_dir=root / "locks",
    ).work(run_id)
    engine.dispose()
    return DemoData(database_url=database_url, media_dir=root / "media", run_id=run_id)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> DemoData:
    """4 variants (dev, dev-turbo with dev as reference, schnell, and schnell-fp8 which fails
    on a CPU) × 6 prompts (one with HTML in it) × 2 seeds, 64×64."""

    def build(root: Path) -> DemoData:
        return build_demo_run(f"sqlite:///{root / 'web.db'}", root, tiny_models)

    return built_once(tmp_path_factory, "webdata", build, DemoData.encode, DemoData.decode)


# --- a run with two sizes and two batch sizes (issue 12) ---------------------------------

SIZED_CONFIG = (
    """
name = "sizes"
prompts = "prompts.tsv"
seeds = [0]
sizes = ["64x64", "96x64"]
batch_sizes = [1, 2]
device = "cpu"
hardware = "Test CPU"
usd_per_hour = 3.6
warmup = 1
repeats = 3
"""
    + TEST_VARIANTS
)
# The header and the first three prompts of PROMPTS.
SIZED_PROMPTS = "".join(PROMPTS.splitlines(keepends=True)[:4])
# Batch 2 at 96x64 runs out of (fake) device memory: one does-not-fit series per variant.
SIZED_OOM_AT = "96x64:2"


@pytest.fixture(scope="session")
def sized_data(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> DemoData:
    """A run made by the real worker with `sizes = ["64x64", "96x64"]` and
    `batch_sizes = [1, 2]` (read-only; `sqlite_copy(sized_data, folder)` for a writable one):

    - run "sizes": main size 64x64 (runs.width/height), runs.config["sizes"] ==
      ["64x64", "96x64"], runs.config["batch_sizes"] == [1, 2]; seed 0 only;
    - 3 variants, all done: dev, dev-turbo (base dev: its reference), schnell;
    - 3 prompts: the first three of PROMPTS ("a red bicycle...", "a bowl of ramen...",
      "an owl reading a newspaper");
    - 18 jobs, all done, and 18 generations: one per (variant, prompt, size), 9 at 64x64 and
      9 at 96x64 (images are always made at batch 1);
    - shape_series per variant: (64x64, 1), (64x64, 2), (96x64, 1) measured; (96x64, 2)
      does_not_fit, its error "does not fit at 96x64, batch 2: ..." (the OOM is injected with
      FLUX_PLAYGROUND_TEST_OOM_AT=96x64:2 while the worker runs; the environment is restored).

    No job is does_not_fit (that takes an OOM at batch 1, which would leave no 96x64 image):
    a test that needs one marks it so in a copy."""
    from app.worker.pipelines import FAKE_OOM_ENV

    def build(root: Path) -> DemoData:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(FAKE_OOM_ENV, SIZED_OOM_AT)
            return build_demo_run(
                f"sqlite:///{root / 'sized.db'}",
                root,
                tiny_models,
                config=SIZED_CONFIG,
                prompts=SIZED_PROMPTS,
            )

    return built_once(tmp_path_factory, "sizeddata", build, DemoData.encode, DemoData.decode)


# --- PostgreSQL: a throwaway server (tests/postgres_server.py) -----------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[Path]:
    """A PostgreSQL server for this test session; its Unix socket folder."""
    from tests.postgres_server import postgres_server

    with postgres_server() as socket_folder:
        yield socket_folder


@pytest.fixture
def postgres_url(postgres: Path) -> str:
    """A new, migrated PostgreSQL database."""
    from app.migrate import upgrade
    from tests.postgres_server import new_database

    url = new_database(postgres)
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgres_demo(
    postgres: Path, tmp_path_factory: pytest.TempPathFactory, tiny_models: Path
) -> DemoData:
    """The same web test run as demo_data, made by the worker on PostgreSQL (read-only)."""
    from tests.postgres_server import new_database

    root = tmp_path_factory.mktemp("pgdata")
    return build_demo_run(new_database(postgres), root, tiny_models)


@pytest.fixture
def demo_client(demo_data: DemoData) -> Iterator[TestClient]:
    settings = Settings(database_url=demo_data.database_url, media_dir=demo_data.media_dir)
    with TestClient(create_app(settings)) as client:
        yield client


DATABASES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # A module marked `pytestmark = pytest.mark.both_databases` runs each of its tests that
    # use writable_demo (writable_client included) once on SQLite and once on PostgreSQL.
    if "writable_demo" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_databases"
    ):
        metafunc.parametrize("writable_demo", DATABASES, indirect=True)


@pytest.fixture
def writable_demo(request: pytest.FixtureRequest, tmp_path: Path) -> DemoData:
    """A private copy of the demo database (media shared, read-only) for tests that write:
    on SQLite, or on each database in a module marked both_databases."""
    return writable_copy(request, getattr(request, "param", "sqlite"), tmp_path)


def sqlite_copy(demo: DemoData, folder: Path) -> DemoData:
    import sqlite3

    source = demo.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(source) as src, sqlite3.connect(folder / "copy.db") as dst:
        src.backup(dst)
    return DemoData(f"sqlite:///{folder / 'copy.db'}", demo.media_dir, demo.run_id)


def writable_copy(request: pytest.FixtureRequest, backend: str, folder: Path) -> DemoData:
    """A private copy of the web test run on `backend` ("sqlite" or "postgresql")."""
    if backend == "sqlite":
        return sqlite_copy(request.getfixturevalue("demo_data"), folder)
    from tests.postgres_server import new_database

    demo: DemoData = request.getfixturevalue("postgres_demo")
    url = new_database(request.getfixturevalue("postgres"), copy_of=demo.database_url)
    return DemoData(url, demo.media_dir, demo.run_id)


@pytest.fixture
def writable_client(writable_demo: DemoData) -> Iterator[TestClient]:
    settings = Settings(
        database_url=writable_demo.database_url,
        media_dir=writable_demo.media_dir,
        admin_token="test-admin-token",
        secret_key="test-secret",
        page_cache_s=0,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def first_prompt_id(database_url: str, run_id: int) -> int:
    """The id of a run's first prompt (by position): the prompt page the tests open."""
    from sqlalchemy import select

    from app.db import make_engine, session_scope
    from app.models import Prompt

    engine = make_engine(database_url)
    with session_scope(engine) as session:
        prompt_id = session.scalars(
            select(Prompt.id).where(Prompt.run_id == run_id).order_by(Prompt.position)
        ).first()
    engine.dispose()
    assert prompt_id is not None
    return prompt_id
