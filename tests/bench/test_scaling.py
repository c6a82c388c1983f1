"""Scaling data (app/bench/scaling.py): a run's shapes, the best batch per size, the fits
matrix and "fits on" — read from runs the real worker made on the tiny pipelines, with an
out-of-memory error injected at some shapes (tests/conftest.py `sized_data`,
tests/hardware_runs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.bench.benchmark import load_benchmark
from app.bench.prompts import load_prompts
from app.bench.scaling import (
    NOT_COMPARABLE,
    NOT_MEASURED,
    RunScaling,
    ShapeRow,
    best_batch,
    fit_cell,
    fits_on,
    fits_on_text,
    run_scaling,
)
from app.config import Settings
from app.db import make_engine, session_scope
from app.models import Run, SeriesStatus, ShapeSeries, Variant
from app.worker.enqueue import enqueue_run
from tests.conftest import DemoData
from tests.hardware_runs import HardwareRuns, hardware_runs

GPUS = (16.0, 24.0, 48.0, 80.0, 141.0)


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> HardwareRuns:
    return hardware_runs(tmp_path_factory, tiny_models)


def read(database_url: str, run_id: int) -> RunScaling:
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            return run_scaling(session, session.get_one(Run, run_id), GPUS)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def sized(sized_data: DemoData) -> RunScaling:
    return read(sized_data.database_url, sized_data.run_id)


def test_scaling_every_shape_of_the_run_in_config_order(sized: RunScaling) -> None:
    assert sized.sizes == ["64x64", "96x64"] and sized.main_size == "64x64"
    assert sized.batch_sizes == [1, 2] and sized.several_shapes
    assert sized.variants == ["dev", "dev-turbo", "schnell"]
    assert sized.references == {"dev": None, "dev-turbo": "dev", "schnell": None}
    assert [(r.variant, r.size, r.batch_size) for r in sized.rows] == [
        (v, s, b) for v in sized.variants for s in sized.sizes for b in (1, 2)
    ]
    for row in sized.rows:
        if row.measured:
            assert row.latency_per_image_s == pytest.approx(row.latency_median_s / row.batch_size)  # type: ignore[operator]
            assert row.images_per_s == pytest.approx(row.batch_size / row.latency_median_s)  # type: ignore[operator]
            assert row.n == 3 and row.peak_mem_gb and row.first_call_s


def test_scaling_fits_matrix_from_a_run_with_an_injected_oom(sized: RunScaling) -> None:
    cells = {(c.variant, c.size, c.batch_size): c for c in sized.fits()}
    assert len(cells) == 3 * 2 * 2
    for (variant, size, batch), cell in cells.items():
        if (size, batch) == ("96x64", 2):
            # The injected out-of-memory error: the memory reached and the device's total.
            assert cell.state == "does_not_fit", variant
            assert cell.reason and cell.reason.startswith("does not fit at 96x64, batch 2:")
            assert cell.peak_mem_gb and cell.device_total_gb
            assert cell.text == (
                f"✗ does not fit, {cell.peak_mem_gb:.2f} of {cell.device_total_gb:.2f} GB"
            )
            assert cell.fits_on_gb is None
        else:
            assert cell.state == "fits" and cell.reason is None
            assert cell.text == f"✓ {cell.peak_mem_gb:.2f} GB"
            # A CPU run: its peak RSS says nothing about a GPU's memory.
            assert cell.peak_mem_kind == "process_peak_rss" and cell.fits_on_gb is None


def test_scaling_best_batch_is_the_most_images_per_s(sized: RunScaling) -> None:
    best = {(b.variant, b.size): b for b in sized.best_batches()}
    assert set(best) == {(v, s) for v in sized.variants for s in sized.sizes}
    for (variant, size), choice in best.items():
        measured = [r for r in sized.rows if (r.variant, r.size) == (variant, size) and r.measured]
        top = max(measured, key=lambda r: r.images_per_s or 0.0)
        assert choice.batch_size == top.batch_size
        assert choice.images_per_s == top.images_per_s
        assert choice.latency_per_image_s == top.latency_per_image_s
        single = sized.row(variant, size, 1)
        assert single is not None and choice.batch1_images_per_s == single.images_per_s
    # Batch 2 does not fit at 96x64: batch 1 is the only (so the best) one there.
    assert {best[(v, "96x64")].batch_size for v in sized.variants} == {1}


def test_scaling_best_batch_prefers_the_smaller_batch_on_a_tie() -> None:
    rows = [
        ShapeRow("v", 64, 64, 1, "measured", None, latency_median_s=1.0),
        ShapeRow("v", 64, 64, 2, "measured", None, latency_median_s=2.0),
        ShapeRow("v", 64, 64, 4, "does_not_fit", "does not fit", peak_mem_gb=30.0),
    ]
    chosen = best_batch(rows, "v", "64x64")
    assert chosen is not None and chosen.batch_size == 1
    assert best_batch(rows, "v", "96x64") is None


def test_scaling_a_size_that_does_not_fit_at_batch_1_skips_its_batches_with_the_reason(
    machines: HardwareRuns,
) -> None:
    big = read(machines.database_url, machines.big)
    cells = {(c.variant, c.size, c.batch_size): c for c in big.fits()}
    for variant in big.variants:
        assert cells[(variant, "96x64", 1)].state == "does_not_fit"
        skipped = cells[(variant, "96x64", 2)]
        assert skipped.state == "not_measured"
        assert skipped.reason == "batch 1 does not fit at this size"
        assert skipped.text == "not measured: batch 1 does not fit at this size"
        assert big.row(variant, "96x64", 2).status == SeriesStatus.skipped  # type: ignore[union-attr]
        assert {b.size for b in big.best_batches() if b.variant == variant} == {"64x64"}


def test_scaling_a_pending_run_and_a_narrowed_variant_say_why_not_measured(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "prompts.tsv").write_text("prompt\tcategory\tchallenge\na cat\tAnimals\tBasic\n")
    (tmp_path / "bench.toml").write_text(
        'name = "narrow"\nprompts = "prompts.tsv"\nseeds = [0]\nsizes = ["64x64", "96x64"]\n'
        'batch_sizes = [1, 2]\ndevice = "cpu"\nhardware = "x"\nusd_per_hour = 1.0\n\n'
        '[[variants]]\nname = "a"\nmodel = "tiny:dev"\nsteps = 1\ndtype = "float32"\n\n'
        '[[variants]]\nname = "b"\nbase = "a"\nsizes = ["64x64"]\nbatch_sizes = [1]\n'
    )
    bench = load_benchmark(tmp_path / "bench.toml")
    engine = make_engine(database_url)
    run_id = enqueue_run(engine, bench, load_prompts(bench.prompts_path))
    engine.dispose()
    scaling = read(database_url, run_id)
    reasons = {(r.variant, r.size, r.batch_size): r.error for r in scaling.rows}
    assert {r.status for r in scaling.rows} == {NOT_MEASURED}
    assert reasons[("a", "96x64", 2)] == "not measured yet"
    assert reasons[("b", "64x64", 1)] == "not measured yet"
    assert reasons[("b", "96x64", 1)] == "not one of this variant's sizes"
    assert reasons[("b", "64x64", 2)] == "not one of this variant's batch sizes"
    assert scaling.best_batches() == []


@pytest.fixture
def demo_without_shapes(writable_demo: DemoData) -> Iterator[DemoData]:
    """The demo run as a run measured before shape_series existed (migration 0012)."""
    engine = make_engine(writable_demo.database_url)
    with session_scope(engine) as session:
        session.execute(delete(ShapeSeries))
    engine.dispose()
    yield writable_demo


def test_scaling_a_run_from_before_shapes_is_its_steady_state_at_its_one_size(
    demo_without_shapes: DemoData,
) -> None:
    scaling = read(demo_without_shapes.database_url, demo_without_shapes.run_id)
    assert scaling.sizes == ["64x64"] and scaling.batch_sizes == [1]
    assert not scaling.several_shapes
    engine = make_engine(demo_without_shapes.database_url)
    with Session(engine) as session:
        for variant in session.scalars(select(Variant).order_by(Variant.position)):
            row = scaling.row(variant.name, "64x64", 1)
            steady = variant.timing("steady_state")
            assert row is not None
            if steady is None:  # the variant that fails on a CPU
                assert row.status == NOT_MEASURED
                assert row.error == "the variant failed before this shape"
            else:
                assert row.measured and row.latency_median_s == steady.latency_median_s
                assert row.peak_mem_gb == variant.peak_mem_gb
    engine.dispose()


def test_scaling_fits_on_cuda_peaks_only() -> None:
    cuda = "cuda_max_memory_allocated"
    assert fits_on(20.0, cuda, GPUS) == (24.0, 48.0, 80.0, 141.0)
    assert fits_on(24.0, cuda, GPUS) == (48.0, 80.0, 141.0)  # a full card is not room
    assert fits_on(200.0, cuda, GPUS) == ()
    assert fits_on(0.5, "process_peak_rss", GPUS) is None
    assert fits_on(None, cuda, GPUS) is None
    assert fits_on_text(20.0, cuda, GPUS) == "24 GB, 48 GB, 80 GB, 141 GB"
    assert fits_on_text(200.0, cuda, GPUS) == "none of 16 GB, 24 GB, 48 GB, 80 GB, 141 GB"
    assert fits_on_text(0.5, "process_peak_rss", GPUS) == NOT_COMPARABLE
    measured = ShapeRow(
        "v", 64, 64, 1, "measured", None, latency_median_s=1.0, peak_mem_gb=20.0,
        peak_mem_kind=cuda,
    )  # fmt: skip
    assert fit_cell(measured, GPUS).fits_on_gb == (24.0, 48.0, 80.0, 141.0)


def test_scaling_gpu_memory_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().gpu_memory_sizes_gb == GPUS
    monkeypatch.setenv("FLUX_PLAYGROUND_GPU_MEMORY_GB", " 80, 24,24 ")
    assert Settings().gpu_memory_sizes_gb == (24.0, 80.0)
    monkeypatch.setenv("FLUX_PLAYGROUND_GPU_MEMORY_GB", "24,lots")
    with pytest.raises(ValidationError, match="not a number of GB: 'lots'"):
        Settings()
    monkeypatch.setenv("FLUX_PLAYGROUND_GPU_MEMORY_GB", "24,-1")
    with pytest.raises(ValidationError, match="not a GPU memory size"):
        Settings()
