"""Can an automatic metric stand in for the arena's votes?

For each metric (SSIM, PSNR, CLIP score) two questions, on a run's counted votes:

1. **Vote agreement**: among the decided votes (left or right won; no ties, no "both bad", no
   attention checks, no flagged raters), the share where the image the metric prefers (the
   higher value) is the one people preferred, with a bootstrap 95% interval. Fidelity metrics
   (SSIM, PSNR) compare each side's fidelity to its own reference: a reference's own image has
   no fidelity value, so votes with one on either side are skipped (counted in
   ``skipped_reference``), as are votes where a side has no value (``skipped_missing``) or
   both sides have the same value (``skipped_equal``).
2. **Variant correlation**: Pearson and Spearman correlation between the metric's per-variant
   mean (``app.quality.metric_summaries``) and the Bradley–Terry rating, over the variants
   with both; None with a reason under three variants.

The bootstrap resamples 0/1 agreements with replacement, so the resampled count is exactly
Binomial(n, observed share): drawn vectorized with a seeded numpy generator, whatever n is.
Plain SQL + numpy, no torch: the web tier calls it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.arena.counted_votes import board_scope
from app.arena.leaderboard_view import LeaderboardView
from app.arena.vote_table import vote_table
from app.memory import release_freed_memory
from app.models import (
    Generation,
    GenerationMetric,
    MetricStatus,
    Run,
    Variant,
)
from app.quality import metric_summaries, metrics_version

AGREEMENT_METRICS = ("ssim", "psnr_db", "clip_score")
FIDELITY = frozenset({"ssim", "psnr_db", "lpips"})
log = logging.getLogger(__name__)

ROUNDS = 1000
MIN_VARIANTS = 3


@dataclass(frozen=True)
class MetricAgreement:
    metric: str
    model: str | None  # the (metric, model) rows used: the one with the most values
    decided_votes: int
    n: int  # votes used: the metric prefers one side
    agreement: float | None  # share of the n where people preferred the metric's choice
    ci_low: float | None
    ci_high: float | None
    skipped_reference: int  # a side is a reference's own image (no fidelity value)
    skipped_missing: int  # a side has no value (not computed, unavailable)
    skipped_equal: int  # equal values: the metric has no preference
    n_variants: int  # variants with both a finite metric mean and a finite rating
    pearson: float | None
    spearman: float | None
    correlation_reason: str | None  # why there is no correlation

    @property
    def skipped(self) -> int:
        return self.skipped_reference + self.skipped_missing + self.skipped_equal


@dataclass(frozen=True)
class AgreementReport:
    run_id: int
    version: str  # the leaderboard version (its votes) it was computed from
    decided_votes: int
    has_metrics: bool
    rows: tuple[MetricAgreement, ...]


def bootstrap_share(
    agree: Sequence[bool] | np.ndarray, *, rounds: int = ROUNDS, seed: int = 0
) -> tuple[float | None, float | None, float | None]:
    """Share of True and its percentile bootstrap 95% interval; (None,)*3 for no values."""
    values = np.asarray(agree, dtype=bool)
    n = int(values.size)
    if n == 0:
        return None, None, None
    share = float(values.mean())
    # Resampling n Bernoulli outcomes with replacement = one Binomial(n, share) count.
    counts = np.random.default_rng(seed).binomial(n, share, size=rounds)
    low, high = np.percentile(counts / n, [2.5, 97.5])
    return share, float(low), float(high)


def _correlation(
    pairs: list[tuple[float, float]],
) -> tuple[float | None, float | None, str | None]:
    if len(pairs) < MIN_VARIANTS:
        return (
            None,
            None,
            f"needs {MIN_VARIANTS} variants with a rating and a value, has {len(pairs)}",
        )
    x = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None, "constant values: no correlation"
    pearson = float(np.corrcoef(x, y)[0, 1])
    spearman = float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])
    return pearson, spearman, None


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank (what Spearman's rho correlates).
    numpy, not scipy.stats: importing that costs every server process 46 MB."""
    ranks = np.empty(len(values))
    ranks[values.argsort(kind="mergesort")] = np.arange(1, len(values) + 1)
    _, tie_group, sizes = np.unique(values, return_inverse=True, return_counts=True)
    return np.bincount(tie_group, weights=ranks)[tie_group] / sizes[tie_group]


def metric_agreement(
    session: Session,
    view: LeaderboardView,
    *,
    metrics: Sequence[str] = AGREEMENT_METRICS,
    rounds: int = ROUNDS,
    seed: int = 0,
) -> AgreementReport:
    """Agreement of each metric with the counted decided votes of `view`'s run (and panel)."""
    run_id = view.run_id
    variants = {v.id: v for v in session.scalars(select(Variant).where(Variant.run_id == run_id))}
    run = session.get_one(Run, run_id)
    rows = session.execute(
        select(
            Generation.variant_id,
            Generation.prompt_id,
            Generation.seed,
            GenerationMetric.metric,
            GenerationMetric.model,
            GenerationMetric.value,
        )
        .join(Generation, Generation.id == GenerationMetric.generation_id)
        .where(
            Generation.run_id == run_id,
            # The arena shows the run's main size: the images the votes judged.
            Generation.width == run.width,
            Generation.height == run.height,
            GenerationMetric.metric.in_(list(metrics)),
            GenerationMetric.status == MetricStatus.ok,
            GenerationMetric.value.is_not(None),
        )
    ).all()
    # One model per metric: the one with the most values (another CLIP is never mixed in).
    models = {
        metric: Counter(m for _, _, _, mt, m, _ in rows if mt == metric).most_common(1)[0][0]
        for metric in {r.metric for r in rows}
    }
    # Per metric: (variant id, prompt id, seed, value) columns of the chosen model's values.
    values: dict[str, list[tuple[int, int, int, float]]] = {m: [] for m in metrics}
    for variant_id, prompt_id, seed_, metric, model, value in rows:
        if models[metric] == model and value is not None:
            values[metric].append((variant_id, prompt_id, int(seed_), float(value)))

    # The board's votes with a winner (its panel's; not attention checks, not flagged
    # raters), as columns of the process's vote table (app/arena/vote_table.py).
    table = vote_table(session, run_id, view.key.max_vote_id)
    in_scope, _ = board_scope(session, view.key, table)
    decided = in_scope[table.outcome[in_scope] < 2]
    left_won = table.outcome[decided] == 0
    sides = (table.left[decided], table.right[decided])
    # Each side's image as a cell of a (variant, prompt, seed) grid.
    prompt_ids = np.unique(table.prompt[decided])
    seeds = np.unique(table.seed[decided])
    cell = [
        (side * len(prompt_ids) + np.searchsorted(prompt_ids, table.prompt[decided])) * len(seeds)
        + np.searchsorted(seeds, table.seed[decided])
        for side in sides
    ]
    position = {variant_id: i for i, variant_id in enumerate(table.variant_ids)}
    no_reference = np.array(
        [variants[v].reference_id is None for v in table.variant_ids], dtype=bool
    )

    summaries = metric_summaries(session, run_id)
    ratings = {
        r.name: r.rating
        for r in view.ranking.variants
        if r.games > 0 and r.rating is not None and math.isfinite(r.rating)
    }
    out = []
    for metric in metrics:
        grid = np.full(len(table.variant_ids) * len(prompt_ids) * len(seeds), np.nan)
        if values[metric] and len(decided):
            v_ids, p_ids, i_seeds, vals = (np.asarray(c) for c in zip(*values[metric], strict=True))
            v_pos = np.asarray([position.get(int(v), -1) for v in v_ids])
            p = np.minimum(np.searchsorted(prompt_ids, p_ids), len(prompt_ids) - 1)
            k = np.minimum(np.searchsorted(seeds, i_seeds), len(seeds) - 1)
            # Only images a decided vote showed: the grid's prompts and seeds are theirs.
            on_grid = (v_pos >= 0) & (prompt_ids[p] == p_ids) & (seeds[k] == i_seeds)
            where = (v_pos * len(prompt_ids) + p) * len(seeds) + k
            grid[where[on_grid]] = vals[on_grid]
        if metric in FIDELITY:  # against the reference: its own image says nothing
            reference = no_reference[sides[0]] | no_reference[sides[1]]
        else:
            reference = np.zeros(len(decided), dtype=bool)
        a, b = grid[cell[0]], grid[cell[1]]
        missing = ~reference & (np.isnan(a) | np.isnan(b))
        equal = ~reference & ~missing & (a == b)
        compared = ~reference & ~missing & ~equal
        agree = (a[compared] > b[compared]) == left_won[compared]
        skipped = Counter(
            reference=int(reference.sum()), missing=int(missing.sum()), equal=int(equal.sum())
        )
        share, low, high = bootstrap_share(agree, rounds=rounds, seed=seed)
        means = {
            s.variant: s.mean
            for s in summaries
            if s.metric == metric and s.model == models.get(metric) and s.mean is not None
        }
        pairs = [(means[name], ratings[name]) for name in means if name in ratings]
        pearson, spearman, reason = _correlation(pairs)
        out.append(
            MetricAgreement(
                metric=metric,
                model=models.get(metric),
                decided_votes=len(decided),
                n=len(agree),
                agreement=share,
                ci_low=low,
                ci_high=high,
                skipped_reference=skipped["reference"],
                skipped_missing=skipped["missing"],
                skipped_equal=skipped["equal"],
                n_variants=len(pairs),
                pearson=pearson,
                spearman=spearman,
                correlation_reason=reason,
            )
        )
    return AgreementReport(
        run_id=run_id,
        version=view.version,
        decided_votes=len(decided),
        has_metrics=bool(rows),
        rows=tuple(out),
    )


_lock = threading.Lock()


# For the live page: the board's latest report, recomputed in the background when its votes
# or the metrics changed, at most every PAGE_REPORT_INTERVAL_S (a report over a million
# votes takes seconds; the page says which votes it compared).
PAGE_REPORT_INTERVAL_S = 10.0


@dataclass
class _PageReport:
    report: AgreementReport | None
    key: tuple[object, ...]  # the board key and metrics version it is for
    started: float  # when its computation started (monotonic)
    computing: bool


_page_reports: dict[tuple[object, ...], _PageReport] = {}


def page_agreement(session: Session, view: LeaderboardView) -> AgreementReport | None:
    """The board's latest agreement report without waiting for one: None while the first is
    computed in the background (the page says so and shows it at a later poll)."""
    board = (view.key.database, view.run_id, view.panel_id, view.key.rounds)
    key = (view.key, metrics_version(session))
    now = time.monotonic()
    with _lock:
        entry = _page_reports.get(board)
        due = entry is None or (
            entry.key != key
            and not entry.computing
            and now - entry.started >= PAGE_REPORT_INTERVAL_S
        )
        if due:
            entry = _page_reports[board] = _PageReport(
                entry.report if entry else None, key, now, computing=True
            )
    assert entry is not None
    if due:
        bind = session.get_bind()

        def compute() -> None:
            report = None
            try:
                with Session(bind) as own:
                    report = metric_agreement(own, view)
                release_freed_memory()
            except Exception:
                log.exception("agreement report of run %s failed", view.run_id)
            with _lock:
                entry.computing = False
                if report is not None:
                    entry.report = report
                else:  # try again at a later view, after the interval
                    entry.key = ()

        threading.Thread(target=compute, name="agreement", daemon=True).start()
    return entry.report
