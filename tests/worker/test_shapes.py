"""Sizes and batch sizes (issue 12): images per size, a series per (size, batch size), the
first call at each new shape, out of memory as "does not fit", and batch-vs-single
similarity — on tiny real FLUX pipelines, real child processes and a real SQLite database.
The out-of-memory error is raised by the pipelines' test hook (FAKE_OOM_ENV), as a GPU too
small for that shape would raise it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from app.bench.benchmark import load_benchmark
from app.db import session_scope
from app.models import (
    Generation,
    Job,
    JobStatus,
    Run,
    RunStatus,
    SeriesStatus,
    ShapeSeries,
    Variant,
    VariantStatus,
)
from app.worker.pipelines import FAKE_OOM_ENV
from tests.worker.test_runner import make_config, run_benchmark

SHAPES = """
sizes = ["64x64", "96x64"]
batch_sizes = [1, 2]
"""


def shaped_config(tmp_path: Path, extra: str = ""):  # type: ignore[no-untyped-def]
    bench = make_config(tmp_path, limit=3, extra=extra)
    # make_config writes width/height; sizes replace them.
    path = tmp_path / "bench.toml"
    text = path.read_text().replace("width = 64\nheight = 64\n", SHAPES)
    text = text.replace("seeds = [0, 1]", "seeds = [0]")
    path.write_text(text)
    del bench
    return load_benchmark(path)


def shapes_of(session, name: str) -> dict[tuple[int, int, int], ShapeSeries]:  # type: ignore[no-untyped-def]
    variant = session.scalars(select(Variant).where(Variant.name == name)).one()
    return {(s.width, s.height, s.batch_size): s for s in variant.shapes}


def test_shapes_images_per_size_series_per_shape_and_a_misfit_that_stops_nothing(
    engine: Engine, tmp_path: Path, tiny_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAKE_OOM_ENV, "96x64:2")
    bench = shaped_config(tmp_path, extra="")
    # Images at the second size for the first 2 prompts only.
    path = tmp_path / "bench.toml"
    path.write_text(path.read_text().replace("batch_sizes", "size_prompt_limit = 2\nbatch_sizes"))
    bench = load_benchmark(path)
    media = tmp_path / "media"
    run_id = run_benchmark(engine, bench, media, tiny_models)
    with session_scope(engine) as session:
        assert session.get_one(Run, run_id).status == RunStatus.done
        jobs = session.scalars(select(Job).where(Job.run_id == run_id)).all()
        # 2 variants x (3 prompts at 64x64 + 2 at 96x64) x 1 seed, all made at batch 1.
        assert len(jobs) == 10 and {j.status for j in jobs} == {JobStatus.done}
        sizes = [(g.width, g.height) for g in session.scalars(select(Generation))]
        assert sizes.count((64, 64)) == 6 and sizes.count((96, 64)) == 4
        for name in ("schnell", "dev-turbo"):
            variant = session.scalars(select(Variant).where(Variant.name == name)).one()
            assert variant.status == VariantStatus.done
            shapes = shapes_of(session, name)
            assert set(shapes) == {(64, 64, 1), (64, 64, 2), (96, 64, 1), (96, 64, 2)}
            for key in ((64, 64, 1), (64, 64, 2), (96, 64, 1)):
                s = shapes[key]
                assert s.status == SeriesStatus.measured and s.n == 3 and s.warmup == 1
                assert s.latency_p10_s <= s.latency_median_s <= s.latency_p90_s  # type: ignore[operator]
                assert s.first_call_s is not None and s.first_call_s > 0
                assert s.peak_mem_gb and s.device_total_gb and s.images_per_s
            # The first size's first call is the variant's compile_s.
            assert shapes[(64, 64, 1)].first_call_s == variant.compile_s
            # Batch 2 against batch 1, same prompts and seed: both images compared; each is
            # either identical or close (tiny random weights; batching may move a few bits).
            batch = shapes[(64, 64, 2)]
            assert batch.batch_compared == 2
            assert batch.batch_ssim_min is not None and 0.9 <= batch.batch_ssim_min <= 1.0
            assert batch.images_per_s == pytest.approx(2 / batch.latency_median_s)  # type: ignore[operator]
            misfit = shapes[(96, 64, 2)]
            assert misfit.status == SeriesStatus.does_not_fit
            assert misfit.error is not None
            assert misfit.error.startswith("does not fit at 96x64, batch 2:")
            assert FAKE_OOM_ENV in misfit.error
            assert misfit.peak_mem_gb and misfit.device_total_gb
            assert misfit.latency_median_s is None
            # The variant's summaries are its first size at batch 1.
            steady = variant.timing("steady_state")
            assert steady is not None
            assert steady.latency_median_s == shapes[(64, 64, 1)].latency_median_s
            per_image = variant.timing("per_image")
            assert per_image is not None and per_image.n == 3


def test_shapes_a_size_that_does_not_fit_at_batch_1_marks_its_images_and_skips_its_batches(
    engine: Engine, tmp_path: Path, tiny_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAKE_OOM_ENV, "96x64:1")
    bench = shaped_config(tmp_path, extra="")
    media = tmp_path / "media"
    run_id = run_benchmark(engine, bench, media, tiny_models)
    with session_scope(engine) as session:
        assert session.get_one(Run, run_id).status == RunStatus.done
        by_size: dict[tuple[int, int], set[JobStatus]] = {}
        for job in session.scalars(select(Job).where(Job.run_id == run_id)):
            by_size.setdefault((job.width, job.height), set()).add(job.status)
            if job.status == JobStatus.does_not_fit:
                assert job.error and job.error.startswith("does not fit at 96x64, batch 1:")
        assert by_size == {(64, 64): {JobStatus.done}, (96, 64): {JobStatus.does_not_fit}}
        for name in ("schnell", "dev-turbo"):
            variant = session.scalars(select(Variant).where(Variant.name == name)).one()
            assert variant.status == VariantStatus.done
            shapes = shapes_of(session, name)
            assert shapes[(64, 64, 1)].status == shapes[(64, 64, 2)].status == SeriesStatus.measured
            assert shapes[(96, 64, 1)].status == SeriesStatus.does_not_fit
            skipped = shapes[(96, 64, 2)]
            assert skipped.status == SeriesStatus.skipped
            assert skipped.error == "batch 1 does not fit at this size"
