"""Runs with sizes and batch sizes, and the same config "on another machine": made once per
test session by the real worker on the tiny offline pipelines, for the scaling and hardware
tests (tests/bench, tests/web, tests/e2e). Read-only for the tests that use them.

- `small`: "Test CPU A" at $1/h, sizes 64x64 and 96x64, batch sizes 1 and 2; 96x64 at batch
  2 runs out of memory (the pipelines' test hook), as on a GPU too small for it.
- `big`: the same config on "Test CPU B" at $10/h, where 96x64 does not fit even at batch 1
  (so batch 2 there is skipped). Same images: comparable with `small`.
- `other_steps`: the same benchmark with dev at 3 steps instead of 2, only enqueued (pending):
  not comparable ("variant dev: steps ...").

Ids in creation order: other_steps < small < big, so `big` is the latest run.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from tests.built_once import built_once

PROMPTS = """prompt\tcategory\tchallenge
a red bicycle leaning on a wall\tVehicles\tBasic
an owl reading a newspaper\tAnimals\tImagination
"""

CONFIG = """
name = "scaling"
prompts = "prompts.tsv"
seeds = [0]
sizes = ["64x64", "96x64"]
batch_sizes = [1, 2]
device = "cpu"
hardware = "{hardware}"
usd_per_hour = {price}
warmup = 0
repeats = 2

[[variants]]
name = "dev"
model = "tiny:dev"
steps = {steps}
guidance = 3.5
max_sequence_length = 32
dtype = "float32"

[[variants]]
name = "dev-turbo"
base = "dev"
steps = 1
lora = {{ path = "tiny:turbo-lora", scale = 1.0, fuse = true }}
"""


@dataclass(frozen=True)
class HardwareRuns:
    database_url: str
    media_dir: Path
    small: int
    big: int
    other_steps: int


_BUILT: dict[Path, HardwareRuns] = {}


def hardware_runs(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> HardwareRuns:
    """The runs, built on the first call of the test run (every module and every xdist
    worker shares them: tests/built_once.py)."""
    base = tmp_path_factory.getbasetemp()
    if base not in _BUILT:
        _BUILT[base] = built_once(
            tmp_path_factory,
            "hardware-runs",
            lambda root: _build(root, tiny_models),
            lambda runs: {**asdict(runs), "media_dir": str(runs.media_dir)},
            lambda data: HardwareRuns(**{**data, "media_dir": Path(data["media_dir"])}),
        )
    return _BUILT[base]


def _build(root: Path, tiny_models: Path) -> HardwareRuns:
    from app.bench.benchmark import load_benchmark
    from app.bench.prompts import load_prompts
    from app.db import make_engine
    from app.migrate import upgrade
    from app.worker.enqueue import enqueue_run
    from app.worker.pipelines import FAKE_OOM_ENV
    from app.worker.runner import Worker

    database_url = f"sqlite:///{root / 'hardware.db'}"
    upgrade(database_url)
    engine = make_engine(database_url)
    (root / "prompts.tsv").write_text(PROMPTS)

    def enqueue(name: str, hardware: str, price: float, steps: int) -> int:
        path = root / f"{name}.toml"
        path.write_text(CONFIG.format(hardware=hardware, price=price, steps=steps))
        bench = load_benchmark(path)
        return enqueue_run(engine, bench, load_prompts(bench.prompts_path))

    def work(run_id: int, out_of_memory_at: str) -> None:
        # The worker's children read the hook from the environment they inherit.
        before = os.environ.get(FAKE_OOM_ENV)
        os.environ[FAKE_OOM_ENV] = out_of_memory_at
        try:
            Worker(
                engine,
                media_dir=root / "media",
                models_dir=tiny_models,
                show_progress=False,
                lock_dir=root / "locks",
            ).work(run_id)
        finally:
            if before is None:
                del os.environ[FAKE_OOM_ENV]
            else:
                os.environ[FAKE_OOM_ENV] = before

    other_steps = enqueue("other", "Test CPU A", 1.0, steps=3)
    small = enqueue("small", "Test CPU A", 1.0, steps=2)
    big = enqueue("big", "Test CPU B", 10.0, steps=2)
    work(small, "96x64:2")
    work(big, "96x64:1")
    engine.dispose()
    return HardwareRuns(database_url, root / "media", small, big, other_steps)
