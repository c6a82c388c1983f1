"""app.arena.agreement: can a metric stand in for the votes? On hand-made metric values and votes
whose answer is known."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.arena.agreement import AgreementReport, bootstrap_share, metric_agreement
from app.arena.leaderboard_cache import leaderboard
from app.db import make_engine, session_scope
from app.models import Generation, GenerationMetric, MetricStatus, Run, Variant
from tests.arena.test_leaderboard import add_votes
from tests.conftest import DemoData

# Each test that writes runs on a copy of the web test run on SQLite and on PostgreSQL.
pytestmark = pytest.mark.both_databases


# Per-variant CLIP scores: dev > dev-turbo > schnell on every image.
CLIP = {"dev": 30.0, "dev-turbo": 20.0, "schnell": 10.0}
PAIRS = [("dev", "dev-turbo"), ("dev-turbo", "schnell"), ("schnell", "dev")]


@pytest.fixture
def engine(writable_demo: DemoData) -> Iterator[Engine]:
    engine = make_engine(writable_demo.database_url)
    yield engine
    engine.dispose()


def add_metric(engine: Engine, run_id: int, metric: str, by_variant: dict[str, float]) -> None:
    with session_scope(engine) as session:
        rows = session.execute(
            select(Generation.id, Variant.name)
            .join(Variant, Variant.id == Generation.variant_id)
            .where(Generation.run_id == run_id)
        ).all()
        for generation_id, name in rows:
            if name in by_variant:
                session.add(
                    GenerationMetric(
                        generation_id=generation_id,
                        metric=metric,
                        model="hand",
                        params={},
                        value=by_variant[name] + 0.01 * generation_id,
                        status=MetricStatus.ok,
                    )
                )


def report(engine: Engine, run_id: int) -> AgreementReport:
    with Session(engine) as session:
        view = leaderboard(session, session.get_one(Run, run_id), rounds=50)
        return metric_agreement(session, view)


def _for_higher(left: str, right: str) -> str:
    return "left" if CLIP[left] > CLIP[right] else "right"


def test_agreement_votes_for_the_higher_clip_image_agree_fully(
    writable_demo: DemoData, engine: Engine
) -> None:
    url, run_id = writable_demo.database_url, writable_demo.run_id
    add_metric(engine, run_id, "clip_score", CLIP)
    votes = [(a, b, _for_higher(a, b)) for a, b in PAIRS] * 4
    votes += [(b, a, _for_higher(b, a)) for a, b in PAIRS] * 4
    # Not decided or not counted: left out.
    add_votes(url, run_id, [("dev", "schnell", "tie"), ("dev", "schnell", "both_bad")])
    add_votes(url, run_id, [("schnell", "dev", "left")] * 3, flagged=True)
    add_votes(url, run_id, [("dev", "dev", "left")], attention=True)
    add_votes(url, run_id, votes)
    out = report(engine, run_id)
    clip = next(r for r in out.rows if r.metric == "clip_score")
    assert out.decided_votes == len(votes)
    assert (clip.n, clip.agreement, clip.ci_low, clip.ci_high) == (len(votes), 1.0, 1.0, 1.0)
    assert clip.model == "hand"
    # The ratings follow the CLIP score: three variants, positive correlations.
    assert clip.n_variants == 3 and clip.correlation_reason is None
    assert clip.pearson is not None and clip.pearson > 0.9
    assert clip.spearman == pytest.approx(1.0)


def test_agreement_votes_against_the_metric_agree_never(
    writable_demo: DemoData, engine: Engine
) -> None:
    url, run_id = writable_demo.database_url, writable_demo.run_id
    add_metric(engine, run_id, "clip_score", CLIP)
    against = {"left": "right", "right": "left"}
    add_votes(url, run_id, [(a, b, against[_for_higher(a, b)]) for a, b in PAIRS] * 3)
    clip = next(r for r in report(engine, run_id).rows if r.metric == "clip_score")
    assert (clip.agreement, clip.n) == (0.0, 9)


def test_agreement_fidelity_skips_votes_with_a_reference_image(
    writable_demo: DemoData, engine: Engine
) -> None:
    url, run_id = writable_demo.database_url, writable_demo.run_id
    # Only dev-turbo has a reference (dev): every vote has a side without a fidelity value.
    add_metric(engine, run_id, "ssim", {"dev-turbo": 0.5})
    add_votes(url, run_id, [("dev", "dev-turbo", "left"), ("dev-turbo", "schnell", "right")])
    ssim = next(r for r in report(engine, run_id).rows if r.metric == "ssim")
    assert (ssim.n, ssim.skipped_reference, ssim.agreement) == (0, 2, None)
    assert ssim.correlation_reason is not None and "3 variants" in ssim.correlation_reason


def test_agreement_without_votes_or_metrics(writable_demo: DemoData, engine: Engine) -> None:
    out = report(engine, writable_demo.run_id)
    assert (out.decided_votes, out.has_metrics) == (0, False)
    assert all(r.agreement is None and r.pearson is None for r in out.rows)


def test_bootstrap_share_is_seeded_and_covers_the_share() -> None:
    agree = np.array([True] * 70 + [False] * 30)
    share, low, high = bootstrap_share(agree, seed=3)
    assert share == 0.7 and low is not None and high is not None
    assert 0.55 < low < 0.7 < high < 0.85
    assert bootstrap_share(agree, seed=3) == (share, low, high)
    assert bootstrap_share([]) == (None, None, None)


def test_agreement_cached_until_votes_or_metrics_change(
    writable_demo: DemoData, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's report (app.arena.agreement.page_agreement): computed in the background,
    the same report while nothing changed, a new one after a metric or a vote."""
    import time

    from app.arena import agreement

    monkeypatch.setattr(agreement, "PAGE_REPORT_INTERVAL_S", 0.0)
    url, run_id = writable_demo.database_url, writable_demo.run_id
    add_votes(url, run_id, [(a, b, _for_higher(a, b)) for a, b in PAIRS] * 2)

    def cached() -> AgreementReport | None:
        with Session(engine) as session:
            view = leaderboard(session, session.get_one(Run, run_id), rounds=50)
            return agreement.page_agreement(session, view)

    def next_report(after: AgreementReport | None) -> AgreementReport:
        deadline = time.monotonic() + 30
        while True:
            report = cached()
            if report is not None and report is not after:
                return report
            assert time.monotonic() < deadline, "no new report"
            time.sleep(0.05)

    first = next_report(None)
    assert cached() is first  # nothing changed: the same report, not a new bootstrap
    add_metric(engine, run_id, "clip_score", CLIP)
    with_metric = next_report(first)
    assert with_metric is not first
    assert next(r for r in with_metric.rows if r.metric == "clip_score").n == 6
    add_votes(url, run_id, [("dev", "schnell", "left")])
    assert next_report(with_metric) is not with_metric
