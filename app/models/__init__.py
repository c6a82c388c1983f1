"""The schema, as SQLAlchemy 2.0 typed models. Alembic migrations (migrations/) create it.

A Run is one execution of a benchmark config. It owns copies of its prompts and the resolved
settings of its variants, so a run stays readable after the config or prompt file changes.
Jobs are the (variant, prompt, seed) units of work; a done job has exactly one Generation.
Column names carry units (`latency_s`, `peak_mem_gb`).

One module per group of tables: ``runs`` (runs, variants, prompts, jobs, generations),
``timings`` (timing summaries, shape series), ``arena`` (panels, raters, matchups, votes,
integrity reviews), ``caches`` (versions, leaderboard snapshots), ``metrics`` (generation
metrics), on the shared ``base``. This package exports every model and enum, so importers
write ``from app.models import Run``. The submodules are imported in the order the tables
were always defined: ``Base.metadata`` lists them in that order (run bundles rely on it).
"""

# Not sorted: the tables' definition order (see above).
# isort: off
from app.models.base import Base, utcnow
from app.models.runs import (
    Generation,
    Job,
    JobStatus,
    Prompt,
    Run,
    RunStatus,
    Variant,
    VariantStatus,
)
from app.models.timings import SeriesStatus, ShapeFigures, ShapeSeries, TimingSummary
from app.models.arena import IntegrityReview, Matchup, Panel, Rater, Vote, VoteOutcome
from app.models.caches import LeaderboardSnapshot, Version
from app.models.metrics import GenerationMetric, MetricStatus

# isort: on

__all__ = [
    "Base",
    "Generation",
    "GenerationMetric",
    "IntegrityReview",
    "Job",
    "JobStatus",
    "LeaderboardSnapshot",
    "Matchup",
    "MetricStatus",
    "Panel",
    "Prompt",
    "Rater",
    "Run",
    "RunStatus",
    "SeriesStatus",
    "ShapeFigures",
    "ShapeSeries",
    "TimingSummary",
    "Variant",
    "VariantStatus",
    "Version",
    "Vote",
    "VoteOutcome",
    "utcnow",
]
