"""Automatic quality metrics (app/quality/) on a real run of the tiny pipelines.

The run (tests/conftest.py): dev, dev-turbo (reference dev), schnell, schnell-fp8 (failed, no
images) × 6 prompts × 2 seeds. Fidelity applies to dev-turbo only; CLIP score to every image.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import math
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from scipy import stats
from sqlalchemy import Engine, func, select

from app.db import make_engine, session_scope
from app.models import Generation, GenerationMetric, MetricStatus, Prompt, Variant, utcnow
from app.quality import (
    compute_run_metrics,
    fidelity_histograms,
    load_image,
    load_lpips,
    mean_interval,
    metric_summaries,
    psnr_db,
    ssim,
    to_tensor,
)
from app.quality.adherence import ORACLE
from app.quality.summaries import share_with_interval
from app.training.shapes import ObjectGroup, SceneSpec, render, spec_to_json
from app.worker.tiny_clip import resolve_clip_ref
from tests.conftest import DemoData

# Each test that writes runs on a copy of the web test run on SQLite and on PostgreSQL.
pytestmark = pytest.mark.both_databases


IMAGES_PER_VARIANT = 12  # 6 prompts × 2 seeds
SCORED_VARIANTS = 3  # schnell-fp8 failed: no images


@pytest.fixture
def demo_engine(writable_demo: DemoData) -> Engine:
    engine = make_engine(writable_demo.database_url)
    yield engine  # type: ignore[misc]
    engine.dispose()


def compute(demo: DemoData, engine: Engine, models: Path, **kwargs: str | None) -> dict[str, int]:
    kwargs.setdefault("clip_model", "tiny:clip")
    report = compute_run_metrics(
        engine,
        demo.run_id,
        media_dir=demo.media_dir,
        resolve_clip=functools.partial(resolve_clip_ref, models_dir=models),
        **kwargs,
    )
    return dict(report.ok)


def rows(engine: Engine) -> list[tuple[str, str, str, MetricStatus, float | None, str | None]]:
    with session_scope(engine) as session:
        return [
            (name, m.metric, m.model, m.status, m.value, m.reason)
            for name, m in session.execute(
                select(Variant.name, GenerationMetric)
                .join(Generation, Generation.id == GenerationMetric.generation_id)
                .join(Variant, Variant.id == Generation.variant_id)
                .order_by(GenerationMetric.id)
            ).all()
        ]


def demo_image(demo: DemoData) -> torch.Tensor:
    return to_tensor(load_image(next(demo.media_dir.rglob("*.png"))))


def test_quality_identical_images_ssim_one_psnr_inf(demo_data: DemoData) -> None:
    image = demo_image(demo_data)[None]
    assert ssim(image, image).tolist() == pytest.approx([1.0], abs=1e-6)
    assert psnr_db(image, image).tolist() == [math.inf]


def test_quality_fidelity_decreases_with_noise(demo_data: DemoData) -> None:
    image = demo_image(demo_data)
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(image.shape, generator=generator)
    strengths = [0.01, 0.03, 0.1, 0.3]
    noisy = torch.stack([(image + s * noise).clamp(0, 1) for s in strengths])
    reference = image.expand_as(noisy)
    ssims, psnrs = ssim(noisy, reference).tolist(), psnr_db(noisy, reference).tolist()
    assert all(a > b for a, b in itertools.pairwise(ssims)), ssims
    assert all(a > b for a, b in itertools.pairwise(psnrs)), psnrs
    assert ssims[0] < 1.0 and math.isfinite(psnrs[0])


def test_quality_run_scores_every_image(
    writable_demo: DemoData, demo_engine: Engine, tiny_models: Path
) -> None:
    ok = compute(writable_demo, demo_engine, tiny_models)
    assert ok == {
        "clip_score": SCORED_VARIANTS * IMAGES_PER_VARIANT,
        "ssim": IMAGES_PER_VARIANT,
        "psnr_db": IMAGES_PER_VARIANT,
    }
    stored = rows(demo_engine)
    clip = [r for r in stored if r[1] == "clip_score"]
    assert {r[2] for r in clip} == {"tiny:clip"}
    # random weights: meaningless scores, but real ones (often 0, the clamp of a negative cos)
    assert all(r[3] is MetricStatus.ok and r[4] is not None and 0 <= r[4] <= 100 for r in clip)
    fidelity = [r for r in stored if r[1] in ("ssim", "psnr_db")]
    assert {r[0] for r in fidelity} == {"dev-turbo"}  # the only variant with a reference
    # Two steps with the turbo LoRA against four without: similar, not identical.
    assert all(0.0 < (r[4] or 0.0) < 1.0 for r in fidelity if r[1] == "ssim")


def test_quality_adherence_judges_the_prompts_that_state_a_scene_only(
    writable_demo: DemoData, demo_engine: Engine, tiny_models: Path, tmp_path: Path
) -> None:
    """One prompt is given a scene and the dev variant's images of it are replaced by the
    renderer's drawing of that scene (answer known: right); the other variants keep their
    noise. The demo's other prompts state nothing: no adherence row at all, never a 0."""
    spec = SceneSpec("white", (ObjectGroup(1, "circle", "red", "large"),))
    media = tmp_path / "media"
    shutil.copytree(writable_demo.media_dir, media)
    with session_scope(demo_engine) as session:
        prompt = session.scalars(
            select(Prompt).where(Prompt.run_id == writable_demo.run_id).order_by(Prompt.position)
        ).first()
        assert prompt is not None
        prompt.spec = spec_to_json(spec)
        images = session.execute(
            select(Variant.name, Generation)
            .join(Variant, Variant.id == Generation.variant_id)
            .where(Generation.prompt_id == prompt.id)
        ).all()
        for name, generation in images:
            if name == "dev":
                drawn = render(spec, (generation.width, generation.height), seed=generation.seed)
                drawn.save(media / generation.image_path)
        ids = {generation.id: name for name, generation in images}
    ok = compute(
        DemoData(writable_demo.database_url, media, writable_demo.run_id), demo_engine, tiny_models
    )
    assert ok["adherence"] == len(ids)
    with session_scope(demo_engine) as session:
        stored = session.scalars(
            select(GenerationMetric).where(GenerationMetric.metric == "adherence")
        ).all()
        assert {m.generation_id for m in stored} == set(ids)  # this prompt's images only
        assert {m.model for m in stored} == {ORACLE}
        for m in stored:
            checks = m.params["checks"]
            assert {c["attribute"] for c in checks} >= {"background", "group 1 colour"}
            assert m.params["score"] == pytest.approx(
                sum(c["passed"] for c in checks) / len(checks), abs=1e-4
            )
            if ids[m.generation_id] == "dev":
                assert m.value == 1.0 and all(c["passed"] for c in checks), checks
            else:
                assert m.value == float(all(c["passed"] for c in checks))
        # The share fully right, with a Wilson interval (a Student-t one of all-1 values
        # would be [1, 1]).
        (dev,) = [
            s
            for s in metric_summaries(session, writable_demo.run_id, variant="dev")
            if s.metric == "adherence"
        ]
    # (the main size's images only, as every summary)
    assert 0 < dev.n <= sum(1 for name in ids.values() if name == "dev")
    assert dev.mean == 1.0
    expected = stats.binomtest(dev.n, dev.n).proportion_ci(0.95, method="wilson")
    assert (dev.ci_low, dev.ci_high) == pytest.approx((expected.low, expected.high))


def test_quality_lpips_unavailable_with_reason(
    writable_demo: DemoData, demo_engine: Engine, tiny_models: Path
) -> None:
    assert importlib.util.find_spec("torchvision") is None  # what makes LPIPS unavailable
    reason = load_lpips()
    assert isinstance(reason, str) and "torchvision" in reason
    compute(writable_demo, demo_engine, tiny_models)
    lpips = [r for r in rows(demo_engine) if r[1] == "lpips"]
    assert len(lpips) == IMAGES_PER_VARIANT
    assert {(r[0], r[2], r[3], r[4], r[5]) for r in lpips} == {
        ("dev-turbo", "lpips-alex", MetricStatus.unavailable, None, reason)
    }


def test_quality_missing_clip_model_unavailable_others_computed(
    writable_demo: DemoData, demo_engine: Engine, tiny_models: Path, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-such-clip")
    ok = compute(writable_demo, demo_engine, tiny_models, clip_model=missing)
    assert ok == {"ssim": IMAGES_PER_VARIANT, "psnr_db": IMAGES_PER_VARIANT}
    clip = [r for r in rows(demo_engine) if r[1] == "clip_score"]
    assert len(clip) == SCORED_VARIANTS * IMAGES_PER_VARIANT
    assert {(r[2], r[3], r[4]) for r in clip} == {(missing, MetricStatus.unavailable, None)}
    reason = clip[0][5] or ""
    assert reason.startswith(f"cannot load CLIP model {missing!r}: ")
    with session_scope(demo_engine) as session:
        summary = next(
            s for s in metric_summaries(session, writable_demo.run_id) if s.model == missing
        )
    assert summary.display == f"unavailable: {reason}"
    assert summary.n_unavailable == IMAGES_PER_VARIANT and summary.n == 0


def test_quality_recompute_is_idempotent_and_variant_limits_it(
    writable_demo: DemoData, demo_engine: Engine, tiny_models: Path
) -> None:
    ok = compute(writable_demo, demo_engine, tiny_models, variant="schnell")
    assert ok == {"clip_score": IMAGES_PER_VARIANT}
    assert {r[0] for r in rows(demo_engine)} == {"schnell"}

    compute(writable_demo, demo_engine, tiny_models)
    first = rows(demo_engine)
    # clip for every image; ssim, psnr and (unavailable) lpips for dev-turbo's
    assert len(first) == (SCORED_VARIANTS + 3) * IMAGES_PER_VARIANT
    compute(writable_demo, demo_engine, tiny_models)
    assert rows(demo_engine) == first  # same rows, same ids, same values

    with session_scope(demo_engine) as session:
        count = session.scalar(select(func.count()).select_from(GenerationMetric))
    assert count == len(first)


def test_quality_cli_variant_and_unknown_run(
    writable_demo: DemoData,
    demo_engine: Engine,
    tiny_models: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from app.cli import app
    from app.config import get_settings
    from app.db import get_engine

    # In-process (a subprocess would spend ~10 s importing torch again); the settings and
    # the engine are cached per process, so they are read afresh here and after.
    monkeypatch.setenv("FLUX_PLAYGROUND_DATABASE_URL", writable_demo.database_url)
    monkeypatch.setenv("FLUX_PLAYGROUND_MEDIA_DIR", str(writable_demo.media_dir))
    monkeypatch.setenv("FLUX_PLAYGROUND_MODELS_DIR", str(tiny_models))
    monkeypatch.setenv("COLUMNS", "300")
    for cached in (get_settings, get_engine):
        cached.cache_clear()
    try:
        runner = CliRunner()
        unknown = runner.invoke(app, ["metrics", "999"])
        assert unknown.exit_code == 2
        assert unknown.stderr.strip().splitlines() == ["error: run 999 not found"]

        result = runner.invoke(
            app, ["metrics", str(writable_demo.run_id), "--variant", "dev-turbo"]
        )
        assert result.exit_code == 0, result.stderr
    finally:
        get_engine().dispose()
        get_settings.cache_clear()
        get_engine.cache_clear()
    assert "scored 12 images" in result.stdout
    assert "lpips (lpips-alex): unavailable: cannot load LPIPS" in result.stderr
    # tiny models only: the CLIP score defaults to the tiny CLIP
    assert {(r[0], r[1], r[2]) for r in rows(demo_engine) if r[1] == "clip_score"} == {
        ("dev-turbo", "clip_score", "tiny:clip")
    }
    assert {r[0] for r in rows(demo_engine)} == {"dev-turbo"}


def test_quality_summary_matches_hand_computation(
    writable_demo: DemoData, demo_engine: Engine, tiny_models: Path
) -> None:
    compute(writable_demo, demo_engine, tiny_models)
    values = [r[4] or 0.0 for r in rows(demo_engine) if r[1] == "ssim"]
    n = len(values)
    mean = statistics.fmean(values)
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n)

    with session_scope(demo_engine) as session:
        summaries = metric_summaries(session, writable_demo.run_id)
        histograms = fidelity_histograms(session, writable_demo.run_id, metric="ssim", bins=4)
    by_key = {(s.variant, s.metric): s for s in summaries}
    summary = by_key[("dev-turbo", "ssim")]
    assert summary.n == n == IMAGES_PER_VARIANT
    assert summary.mean == pytest.approx(mean, rel=1e-12)
    assert summary.ci_low == pytest.approx(mean - half, rel=1e-12)
    assert summary.ci_high == pytest.approx(mean + half, rel=1e-12)
    assert (summary.model, summary.n_infinite, summary.n_unavailable) == ("torchmetrics", 0, 0)
    assert by_key[("dev-turbo", "lpips")].n_unavailable == n
    assert {s.variant for s in summaries if s.metric == "clip_score"} == {
        "dev",
        "dev-turbo",
        "schnell",
    }

    # the histogram: 4 equal bins from the smallest to the largest value, per category
    [histogram] = histograms
    assert histogram.variant == "dev-turbo"
    low, high = min(values), max(values)
    assert histogram.edges == pytest.approx([low + i * (high - low) / 4 for i in range(5)])
    assert sum(map(sum, histogram.counts.values())) == n
    # two prompts of 6 are animals, each with 2 seeds
    assert sum(histogram.counts["Animals"]) == 4
    assert list(histogram.counts) == sorted(histogram.counts)


def test_quality_summaries_are_cached_until_a_metric_changes(
    writable_demo: DemoData, demo_engine: Engine, tiny_models: Path
) -> None:
    compute(writable_demo, demo_engine, tiny_models)

    def ssim_mean() -> float | None:
        with session_scope(demo_engine) as session:
            found = metric_summaries(session, writable_demo.run_id, variant="dev-turbo")
            return next(s.mean for s in found if s.metric == "ssim")

    before = ssim_mean()
    assert before is not None and ssim_mean() == before
    with session_scope(demo_engine) as session:  # what a recompute does: value and time
        row = session.scalars(
            select(GenerationMetric).where(GenerationMetric.metric == "ssim").limit(1)
        ).one()
        row.value = (row.value or 0.0) - 0.5
        row.created_at = utcnow()
    after = ssim_mean()
    assert after is not None and after == pytest.approx(before - 0.5 / IMAGES_PER_VARIANT)


def test_quality_mean_interval_by_hand() -> None:
    # mean 2.5, s = sqrt(5/3), t(0.975, 3) = 3.182446305
    mean, low, high = mean_interval([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2
    assert (mean, low, high) == pytest.approx((2.5, 2.5 - half, 2.5 + half))
    assert mean_interval([7.0]) == (7.0, None, None)
    assert mean_interval([]) == (None, None, None)


def test_quality_read_side_does_not_import_torch() -> None:
    """Pages will import app.quality for the summaries; the web tier never imports torch."""
    code = "import sys, app.quality; print(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert not {"torch", "transformers", "torchmetrics"} & set(out.stdout.split())


@pytest.mark.parametrize(("successes", "n"), [(0, 5), (3, 10), (64, 64), (1, 1)])
def test_quality_wilson_interval_matches_scipy(successes: int, n: int) -> None:
    share, low, high = share_with_interval(successes, n)
    expected = stats.binomtest(successes, n).proportion_ci(0.95, method="wilson")
    assert share == successes / n
    assert (low, high) == pytest.approx((expected.low, expected.high))
    assert share_with_interval(0, 0) == (None, None, None)
