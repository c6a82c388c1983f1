"""One child process per variant, and what that guarantees: each variant's figures come from
a process of its own, a crashing child fails only its variant, no global torch state crosses
from one variant to the next, and two workers share a run without sharing a device."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import Engine, func, select

from app.bench.prompts import load_prompts
from app.db import make_engine, session_scope
from app.models import Generation, Job, JobStatus, Run, RunStatus, Variant, VariantStatus
from app.worker.enqueue import enqueue_run
from app.worker.runner import Worker
from app.worker.tiny import build_wide_model
from tests.worker.test_runner import CLI, make_config, run_benchmark


def _variants(engine: Engine) -> dict[str, Variant]:
    with session_scope(engine) as session:
        rows = session.scalars(select(Variant)).all()
        for row in rows:
            _ = row.timings  # loaded before the session closes
        session.expunge_all()
        return {row.name: row for row in rows}


def _pid(process: str | None) -> int:
    assert process is not None
    return int(process.rpartition(":")[2])


def test_isolation_each_variant_runs_in_its_own_child_process(
    engine: Engine, tmp_path: Path, tiny_models: Path
) -> None:
    bench = make_config(tmp_path, limit=2)
    run_benchmark(engine, bench, tmp_path / "media", tiny_models)

    variants = _variants(engine)
    pids = {name: _pid(v.process) for name, v in variants.items()}
    assert len(set(pids.values())) == 2
    assert os.getpid() not in pids.values()
    with session_scope(engine) as session:
        for name, variant in variants.items():
            made_by = set(
                session.scalars(
                    select(Generation.process).where(Generation.variant_id == variant.id)
                )
            )
            assert made_by == {variant.process}, name
            steady = variant.timing("steady_state")
            assert steady is not None and steady.process == variant.process
            assert variant.environment["process"] == variant.process
            # Both memory figures, from that process alone.
            assert variant.load_peak_gb and variant.peak_mem_gb
            assert variant.peak_mem_kind == "process_peak_rss"


def test_isolation_killed_child_fails_only_its_variant(
    engine: Engine, tmp_path: Path, tiny_models: Path
) -> None:
    bench = make_config(tmp_path, limit=6)
    run_id = enqueue_run(engine, bench, load_prompts(bench.prompts_path, limit=6))
    killed: list[int] = []

    def kill_first_child_after_two_images() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with session_scope(engine) as session:
                first = session.scalars(select(Variant).where(Variant.name == "schnell")).one()
                done = session.scalar(
                    select(func.count()).where(
                        Job.variant_id == first.id, Job.status == JobStatus.done
                    )
                )
                if first.process and done and done >= 2:
                    killed.append(_pid(first.process))
                    os.kill(killed[0], signal.SIGKILL)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_child_after_two_images)
    killer.start()
    report = Worker(
        engine,
        media_dir=tmp_path / "media",
        models_dir=tiny_models,
        show_progress=False,
        lock_dir=tmp_path / "locks",
    ).work(run_id)
    killer.join()

    assert killed, "the child was never seen working"
    variants = _variants(engine)
    failed = variants["schnell"]
    assert failed.status == VariantStatus.failed
    assert failed.error and "killed by SIGKILL" in failed.error
    assert report.variants_failed == {"schnell": failed.error}
    assert variants["dev-turbo"].status == VariantStatus.done
    with session_scope(engine) as session:
        statuses = set(session.scalars(select(Job.status).where(Job.variant_id == failed.id)))
        assert JobStatus.running not in statuses and JobStatus.failed in statuses
        assert session.get_one(Run, run_id).status == RunStatus.done


@pytest.mark.slow  # a cold torch.compile
def test_isolation_global_torch_state_does_not_cross_variants(
    engine: Engine, tmp_path: Path, tiny_models: Path
) -> None:
    # int8_dynamic: torchao rewrites Inductor's global config when it quantizes
    # (set_inductor_config=True). The compiled variant that follows must start from the
    # config the first variant started from, and compiles into a fresh cache dir, so its
    # compile is a cold one. (One cold compile in the suite: it also checks that compiled
    # images match eager ones, which an in-process test in test_pipelines.py did before.)
    extra = """
[[variants]]
name = "schnell-int8"
base = "schnell"
quantize = "int8_dynamic"

[[variants]]
name = "schnell-compiled"
base = "schnell"
compile = { backend = "torch", mode = "default", fresh_cache = true }
"""
    bench = make_config(tmp_path, limit=1, extra=extra)
    run_benchmark(engine, bench, tmp_path / "media", tiny_models)

    variants = _variants(engine)
    assert {v.status for v in variants.values()} == {VariantStatus.done}
    changed, compiled = variants["schnell-int8"], variants["schnell-compiled"]
    assert changed.environment["inductor_config_changed"], "torchao changed nothing?"
    assert (
        changed.environment["inductor_config_after_load"]
        != changed.environment["inductor_config_at_start"]
    )
    # The next variants start from the same Inductor config as the first, and keep it.
    for name in ("schnell-compiled", "dev-turbo"):
        env = variants[name].environment
        assert env["inductor_config_at_start"] == changed.environment["inductor_config_at_start"]
        assert env["inductor_config_changed"] == []
    # Compiled cold, and steady: no graph compiled during the timed series.
    assert compiled.compile_cache == "cold"
    assert compiled.environment["compile"]["graphs"] >= 1
    cache_dirs = {v.environment["compile"]["cache_dir"] for v in (compiled, changed)}
    assert len(cache_dirs) == 2, "a fresh cache dir for the compiled variant"
    steady = compiled.timing("steady_state")
    assert steady is not None and steady.recompiles == 0
    assert changed.compile_cache is None and changed.environment["compile"]["graphs"] == 0
    # What it computes is what eager computes: the same images to a level or two.
    images = _images(engine, tmp_path / "media")
    for (name, prompt, seed), pixels in images.items():
        if name == "schnell-compiled":
            assert np.abs(pixels - images["schnell", prompt, seed]).max() <= 2


def _images(engine: Engine, media: Path) -> dict[tuple[str, int, int], np.ndarray]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(Variant.name, Generation.prompt_id, Generation.seed, Generation.image_path).join(
                Variant, Variant.id == Generation.variant_id
            )
        ).all()
    return {
        (name, prompt, seed): np.asarray(Image.open(media / path), dtype=np.int16)
        for name, prompt, seed, path in rows
    }


def test_isolation_memory_figures_show_the_load_and_the_quantization_saving(
    engine: Engine, tmp_path: Path, tiny_models: Path
) -> None:
    # A transformer whose float32 weights (~0.2 GB) dominate the process's memory: the int8
    # variant holds them while it loads and quantizes, then only the int8 copy (~0.05 GB).
    wide = build_wide_model(tiny_models, heads=8, dtype=torch.float32)
    extra = f"""
[[variants]]
name = "wide"
model = "{wide}"
steps = 2
guidance = 0.0
max_sequence_length = 32
dtype = "float32"

[[variants]]
name = "wide-int8"
base = "wide"
quantize = "int8_weight_only"
"""
    bench = make_config(tmp_path, limit=1, extra=extra)
    run_benchmark(engine, bench, tmp_path / "media", tiny_models)

    variants = _variants(engine)
    full, int8 = variants["wide"], variants["wide-int8"]
    assert full.status == int8.status == VariantStatus.done
    # The saving quantization claims, in bytes the code controls: int8 weights (plus their
    # scales) instead of float32 ones, the rest of the pipeline untouched.
    full_bytes, int8_bytes = full.environment["weights_bytes"], int8.environment["weights_bytes"]
    assert int8_bytes["transformer"] < 0.4 * full_bytes["transformer"]
    assert {k: v for k, v in int8_bytes.items() if k != "transformer"} == {
        k: v for k, v in full_bytes.items() if k != "transformer"
    }
    # Both memory figures are recorded, from the child's own peak RSS, and hold what was
    # resident for certain: while loading, the float32 transformer (the int8 variant loads
    # it before quantizing); while generating, the variant's own weights. No ordering
    # between two processes' RSS is asserted: on a tiny model the int8 saving (a few MB at
    # steady state) is below the RSS that torchao's imports add and than process noise.
    for variant in (full, int8):
        assert variant.peak_mem_kind == "process_peak_rss"
        assert variant.load_peak_gb is not None and variant.peak_mem_gb is not None
        assert variant.load_peak_gb * 1e9 > full_bytes["transformer"]
        weights = sum(variant.environment["weights_bytes"].values())
        assert variant.peak_mem_gb * 1e9 > weights


def test_isolation_killed_worker_takes_its_child_with_it(
    database_url: str, engine: Engine, tmp_path: Path, tiny_models: Path
) -> None:
    bench = make_config(tmp_path, limit=6)
    env = os.environ | {
        "FLUX_PLAYGROUND_DATABASE_URL": database_url,
        "FLUX_PLAYGROUND_MEDIA_DIR": str(tmp_path / "media"),
        "FLUX_PLAYGROUND_MODELS_DIR": str(tiny_models),
    }
    worker = subprocess.Popen(
        [str(CLI), "run", str(bench.config_path), "--no-metrics"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    child = None
    deadline = time.monotonic() + 120
    while child is None and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.05)
        with session_scope(engine) as session:
            process = session.scalars(select(Variant.process).where(Variant.process.is_not(None)))
            child = next((_pid(p) for p in process), None)
    assert child is not None, "no child process was started"
    worker.send_signal(signal.SIGKILL)
    worker.wait()

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child), "the child outlived its worker"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def _start_worker(database_url: str, media: Path, models: Path, run_id: int) -> subprocess.Popen:
    env = os.environ | {
        "FLUX_PLAYGROUND_DATABASE_URL": database_url,
        "FLUX_PLAYGROUND_MEDIA_DIR": str(media),
        "FLUX_PLAYGROUND_MODELS_DIR": str(models),
    }
    return subprocess.Popen(
        [str(CLI), "worker", "--run", str(run_id)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_isolation_two_workers_share_a_run_never_a_device(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, tiny_models: Path
) -> None:
    url = (
        request.getfixturevalue("database_url")
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = make_engine(url)
    extra = """
[[variants]]
name = "schnell-2"
base = "schnell"
steps = 1
"""
    bench = make_config(tmp_path, limit=3, extra=extra)
    run_id = enqueue_run(engine, bench, load_prompts(bench.prompts_path, limit=3))
    workers = [_start_worker(url, tmp_path / "media", tiny_models, run_id) for _ in range(2)]
    outputs = [w.communicate(timeout=280) for w in workers]
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr

    variants = _variants(engine)
    assert {v.status for v in variants.values()} == {VariantStatus.done}, {
        v.name: v.error for v in variants.values()
    }
    with session_scope(engine) as session:
        assert session.get_one(Run, run_id).status == RunStatus.done
        assert session.scalar(select(func.count()).select_from(Generation)) == 3 * 3 * 2
        for variant in variants.values():
            made_by = set(
                session.scalars(
                    select(Generation.process).where(Generation.variant_id == variant.id)
                )
            )
            assert made_by == {variant.process}
    # Every timed phase (images and steady-state series) ran alone on the device.
    spans = sorted(
        (t.started_at, t.finished_at, t.device_key) for v in variants.values() for t in v.timings
    )
    assert len(spans) == 6 and len({key for _, _, key in spans}) == 1
    for (_, end, _), (start, _, _) in itertools.pairwise(spans):
        assert end is not None and start is not None and end <= start
    engine.dispose()
