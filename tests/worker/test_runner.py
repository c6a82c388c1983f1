"""The worker end to end on tiny real FLUX pipelines and a real SQLite database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update

from app.bench.benchmark import Benchmark, load_benchmark
from app.bench.prompts import load_prompts
from app.db import session_scope
from app.models import (
    Generation,
    Job,
    JobStatus,
    Run,
    RunStatus,
    ShapeSeries,
    TimingSummary,
    Variant,
    VariantStatus,
    utcnow,
)
from app.worker.claims import reclaim_stale_jobs
from app.worker.enqueue import enqueue_run
from app.worker.runner import Worker

CLI = Path(sys.executable).parent / "flux-playground"

PROMPTS = """prompt\tcategory\tchallenge
a red bicycle\tVehicles\tBasic
a bowl of ramen\tFood & Beverage\tBasic
an owl reading\tAnimals\tImagination
a lighthouse at dusk\tOutdoor Scenes\tBasic
a teapot shaped like a snail\tArtifacts\tImagination
two cats on a sofa\tAnimals\tQuantity
"""

CONFIG = """
name = "t"
prompts = "prompts.tsv"
prompt_limit = {limit}
seeds = [0, 1]
width = 64
height = 64
device = "{device}"
hardware = "test"
usd_per_hour = 1.0
warmup = 1
repeats = 3

[[variants]]
name = "schnell"
model = "tiny:schnell"
steps = 2
guidance = 0.0
max_sequence_length = 32
dtype = "float32"

[[variants]]
name = "dev-turbo"
model = "tiny:dev"
steps = 2
guidance = 3.5
max_sequence_length = 32
dtype = "float32"
lora = {{ path = "tiny:turbo-lora", scale = 1.0, fuse = true }}
{extra}
"""


def make_config(
    tmp_path: Path, *, limit: int = 3, device: str = "cpu", extra: str = ""
) -> Benchmark:
    (tmp_path / "prompts.tsv").write_text(PROMPTS)
    path = tmp_path / "bench.toml"
    path.write_text(CONFIG.format(limit=limit, device=device, extra=extra))
    return load_benchmark(path)


def run_benchmark(engine: Engine, bench: Benchmark, media: Path, models: Path) -> int:
    run_id = enqueue_run(engine, bench, load_prompts(bench.prompts_path, limit=bench.prompt_limit))
    Worker(
        engine,
        media_dir=media,
        models_dir=models,
        show_progress=False,
        lock_dir=media.parent / "locks",
    ).work(run_id)
    return run_id


def test_runner_run_completes_with_images_and_timings(
    engine: Engine, tmp_path: Path, tiny_models: Path
) -> None:
    bench = make_config(tmp_path)
    media = tmp_path / "media"
    run_id = run_benchmark(engine, bench, media, tiny_models)
    with session_scope(engine) as session:
        run = session.get_one(Run, run_id)
        assert run.status == RunStatus.done
        assert run.environment["torch_threads"] >= 1
        jobs = session.scalars(select(Job).where(Job.run_id == run_id)).all()
        assert len(jobs) == 2 * 3 * 2
        assert {j.status for j in jobs} == {JobStatus.done}
        generations = session.scalars(select(Generation)).all()
        assert len(generations) == len(jobs)
        for g in generations:
            assert (media / g.image_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert (media / g.thumb_path).read_bytes()[8:12] == b"WEBP"
            assert g.latency_s > 0 and (g.width, g.height) == (64, 64)
        for variant in session.scalars(select(Variant)):
            assert variant.status == VariantStatus.done
            assert variant.load_s and variant.compile_s and variant.peak_mem_gb
            assert variant.environment["dtype"] == "float32"
            steady = variant.timing("steady_state")
            assert steady is not None and steady.n == 3 and steady.warmup == 1
            assert steady.latency_p10_s <= steady.latency_median_s <= steady.latency_p90_s
            per_image = variant.timing("per_image")
            assert per_image is not None and per_image.n == 6
        turbo = session.scalars(select(Variant).where(Variant.name == "dev-turbo")).one()
        lora_gen = session.scalars(
            select(Generation).where(Generation.variant_id == turbo.id)
        ).first()
        assert lora_gen is not None and lora_gen.lora is not None
        assert lora_gen.lora["path"] == "tiny:turbo-lora"


def test_runner_rerun_resumes_without_duplicates(
    engine: Engine, tmp_path: Path, tiny_models: Path
) -> None:
    bench = make_config(tmp_path)
    media = tmp_path / "media"
    first = run_benchmark(engine, bench, media, tiny_models)
    second = run_benchmark(engine, bench, media, tiny_models)
    assert first == second
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 1
        assert session.scalar(select(func.count()).select_from(Generation)) == 12
        assert session.scalar(select(func.count()).select_from(TimingSummary)) == 4


def test_runner_changed_config_starts_a_new_run(
    engine: Engine, tmp_path: Path, tiny_models: Path
) -> None:
    prompts = lambda b: load_prompts(b.prompts_path, limit=b.prompt_limit)  # noqa: E731
    a = make_config(tmp_path, limit=2)
    b = make_config(tmp_path, limit=3)
    assert enqueue_run(engine, a, prompts(a)) != enqueue_run(engine, b, prompts(b))


def test_runner_same_seed_gives_pixel_identical_images(tmp_path: Path, tiny_models: Path) -> None:
    from app.db import make_engine
    from app.migrate import upgrade

    bench = make_config(tmp_path, limit=2)
    hashes = []
    for attempt in ("a", "b"):
        url = f"sqlite:///{tmp_path / attempt}.db"
        upgrade(url)
        engine = make_engine(url)
        run_benchmark(engine, bench, tmp_path / f"media-{attempt}", tiny_models)
        with session_scope(engine) as session:
            hashes.append(
                session.execute(
                    select(
                        Generation.variant_id,
                        Generation.prompt_id,
                        Generation.seed,
                        Generation.image_sha256,
                    ).order_by(Generation.job_id)
                ).all()
            )
        engine.dispose()
    assert hashes[0] == hashes[1]
    # Different seeds give different images.
    assert len({row[3] for row in hashes[0]}) == len(hashes[0])


def test_runner_failed_variant_does_not_stop_the_others(
    engine: Engine, tmp_path: Path, tiny_models: Path
) -> None:
    extra = """
[[variants]]
name = "schnell-fp8"
base = "schnell"
quantize = "fp8_dynamic"
"""
    bench = make_config(tmp_path, limit=2, extra=extra)
    run_id = run_benchmark(engine, bench, tmp_path / "media", tiny_models)
    with session_scope(engine) as session:
        variants = {v.name: v for v in session.scalars(select(Variant))}
        failed = variants["schnell-fp8"]
        assert failed.status == VariantStatus.failed
        assert failed.error and "fp8" in failed.error.lower()
        assert variants["schnell"].status == VariantStatus.done
        assert variants["dev-turbo"].status == VariantStatus.done
        failed_jobs = session.scalars(select(Job).where(Job.variant_id == failed.id)).all()
        assert {j.status for j in failed_jobs} == {JobStatus.failed}
        assert session.get_one(Run, run_id).status == RunStatus.done


def test_runner_cuda_config_on_a_cpu_machine_fails_each_variant_cleanly(
    engine: Engine, tmp_path: Path, tiny_models: Path
) -> None:
    extra = """
[[variants]]
name = "dev-onediff"
base = "dev-turbo"
compile = { backend = "onediff" }
"""
    bench = make_config(tmp_path, limit=1, device="cuda", extra=extra)
    run_benchmark(engine, bench, tmp_path / "media", tiny_models)
    with session_scope(engine) as session:
        variants = session.scalars(select(Variant)).all()
        assert {v.status for v in variants} == {VariantStatus.failed}
        for variant in variants:
            assert variant.error and "cuda" in variant.error.lower()
        assert session.scalar(select(func.count()).select_from(Generation)) == 0


def test_runner_reclaims_jobs_of_dead_workers_only(
    engine: Engine, tmp_path: Path, tiny_models: Path
) -> None:
    bench = make_config(tmp_path, limit=2)
    run_id = enqueue_run(engine, bench, load_prompts(bench.prompts_path, limit=2))
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    with session_scope(engine) as session:
        ids = session.scalars(select(Job.id).where(Job.run_id == run_id).order_by(Job.id)).all()
        claims = {
            ids[0]: (f"{host}:{dead.pid}", utcnow()),  # this host, process gone
            ids[1]: (f"{host}:{os.getpid()}", utcnow()),  # this host, alive
            ids[2]: ("elsewhere:1", utcnow() - timedelta(hours=2)),  # other host, lease over
            ids[3]: ("elsewhere:1", utcnow()),  # other host, within its lease
        }
        for job_id, (worker, claimed_at) in claims.items():
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(status=JobStatus.running, worker=worker, claimed_at=claimed_at)
            )
    assert reclaim_stale_jobs(engine, lease_s=1800) == 2
    with session_scope(engine) as session:
        status = dict(session.execute(select(Job.id, Job.status).where(Job.id.in_(ids[:4]))).all())
    assert status == {
        ids[0]: JobStatus.pending,
        ids[1]: JobStatus.running,
        ids[2]: JobStatus.pending,
        ids[3]: JobStatus.running,
    }


def test_runner_sigkill_then_rerun_completes_exactly_once(
    database_url: str, engine: Engine, tmp_path: Path, tiny_models: Path
) -> None:
    # Two sizes and a batch of 2: one image per size, one series per shape. (A one-size run
    # is the same code with one size; it was a second case here, 35 s for nothing new.)
    bench = make_config(tmp_path, limit=4)
    sizes = 2
    text = bench.config_path.read_text().replace(
        "width = 64\nheight = 64\n", 'sizes = ["64x64", "96x64"]\nbatch_sizes = [1, 2]\n'
    )
    bench.config_path.write_text(text)
    media = tmp_path / "media"
    env = os.environ | {
        "FLUX_PLAYGROUND_DATABASE_URL": database_url,
        "FLUX_PLAYGROUND_MEDIA_DIR": str(media),
        "FLUX_PLAYGROUND_MODELS_DIR": str(tiny_models),
    }
    command = [str(CLI), "run", str(bench.config_path)]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and done < 4:
        time.sleep(0.05)
        with session_scope(engine) as session:
            done = session.scalar(select(func.count()).where(Job.status == JobStatus.done)) or 0
    assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    with session_scope(engine) as session:
        total = session.scalar(select(func.count()).select_from(Job))
        done = session.scalar(select(func.count()).where(Job.status == JobStatus.done)) or 0
    assert total == 2 * 4 * 2 * sizes
    assert 4 <= done < total, "the kill must land in the middle of the run"

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    with session_scope(engine) as session:
        rows = session.execute(
            select(Job.variant_id, Job.prompt_id, Job.seed, Job.width, Job.height, Job.status)
        ).all()
        assert len(rows) == total
        assert len({r[:5] for r in rows}) == total
        assert {r.status for r in rows} == {JobStatus.done}
        generations = session.scalars(select(Generation)).all()
        assert len(generations) == total
        assert len({g.job_id for g in generations}) == total
        assert session.scalar(select(func.count()).select_from(Run)) == 1
        assert session.scalars(select(Run.status)).one() == RunStatus.done
        shapes = session.execute(
            select(ShapeSeries.variant_id, ShapeSeries.width, ShapeSeries.batch_size)
        ).all()
        # One row per variant and shape, none twice though the kill may have cut a series.
        assert len(shapes) == len(set(shapes)) == 2 * 4  # 2 variants x 2x2 shapes
    assert list(media.rglob("*.tmp-*")) == []
    assert len(list(media.rglob("*.png"))) == total


@pytest.mark.parametrize("alive", [False, True])
def test_runner_orphan_temp_files_removed_only_for_dead_writers(
    tmp_path: Path, alive: bool
) -> None:
    from app.worker.images import remove_orphan_temp_files

    orphan = tmp_path / "runs" / "1" / "v" / "3.png.tmp-4242"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"half")
    assert remove_orphan_temp_files(tmp_path, lambda pid: alive) == (0 if alive else 1)
    assert orphan.exists() == alive
