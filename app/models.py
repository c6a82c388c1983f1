"""The schema, as SQLAlchemy 2.0 typed models. Alembic migrations (migrations/) create it.

A Run is one execution of a benchmark config. It owns copies of its prompts and the resolved
settings of its variants, so a run stays readable after the config or prompt file changes.
Jobs are the (variant, prompt, seed) units of work; a done job has exactly one Generation.
Column names carry units (`latency_s`, `peak_mem_gb`).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class RunStatus(enum.StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"


class VariantStatus(enum.StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"


class JobStatus(enum.StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"
    # Out of device memory at the job's size: a result ("does not fit"), not a failure;
    # the variant's other sizes go on, and --retry-failed does not retry it.
    does_not_fit = "does_not_fit"


class SeriesStatus(enum.StrEnum):
    measured = "measured"
    does_not_fit = "does_not_fit"  # out of device memory at this size and batch size
    skipped = "skipped"  # not tried: a smaller batch at this size did not fit (error says)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings (no native enum type) so adding a value is a trivial migration.
    return Enum(cls, name=name, native_enum=False, length=16, validate_strings=True)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("name", "fingerprint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    # Hash of the resolved config: rerunning the same config resumes this run.
    fingerprint: Mapped[str] = mapped_column(String(32))
    config_path: Mapped[str] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    prompt_set: Mapped[str] = mapped_column(String(255))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(16))
    hardware: Mapped[str] = mapped_column(String(255))
    usd_per_hour: Mapped[float] = mapped_column(Float)
    warmup: Mapped[int] = mapped_column(Integer)
    repeats: Mapped[int] = mapped_column(Integer)
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "run_status"))
    # GPU/CPU name, driver, CUDA, torch/diffusers versions, threads — of the last worker.
    environment: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A blind run keeps its images (gallery, prompt pages, API image data, media files)
    # behind the admin token until an admin publishes it: while its arena is open, nothing
    # public links an arena image to its variant.
    blind: Mapped[bool] = mapped_column(default=False)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # "open": anyone votes, anonymous or in a panel; "panels": a panel study, only raters
    # who came through a panel's invitation link vote, and only their votes count.
    arena: Mapped[str] = mapped_column(String(8), default="open")

    @property
    def images_hidden(self) -> bool:
        return self.blind and self.published_at is None

    variants: Mapped[list[Variant]] = relationship(
        back_populates="run", order_by="Variant.position", cascade="all, delete-orphan"
    )
    prompts: Mapped[list[Prompt]] = relationship(
        back_populates="run", order_by="Prompt.position", cascade="all, delete-orphan"
    )


class Variant(Base):
    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("run_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    # The variant it inherits from; speed-up and quality are measured against it.
    reference_id: Mapped[int | None] = mapped_column(ForeignKey("variants.id", ondelete="SET NULL"))
    # The full resolved settings (app.bench.benchmark.Variant as JSON).
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[VariantStatus] = mapped_column(_enum(VariantStatus, "variant_status"))
    error: Mapped[str | None] = mapped_column(Text)
    load_s: Mapped[float | None] = mapped_column(Float)
    # The first call after loading: compilation, autotuning, lazy init. Kept out of latency.
    compile_s: Mapped[float | None] = mapped_column(Float)
    # Steady-state generation (counters reset after the first call): what serving costs.
    peak_mem_gb: Mapped[float | None] = mapped_column(Float)
    # Load, quantize, compile and the first call: what it takes to get there.
    load_peak_gb: Mapped[float | None] = mapped_column(Float)
    # "cuda_max_memory_allocated" or "process_peak_rss": the two are not comparable.
    peak_mem_kind: Mapped[str | None] = mapped_column(String(32))
    # Whether the first call found Inductor's caches "cold", "warm" or "partial" (null: no
    # compile), so compile_s is read as what it is.
    compile_cache: Mapped[str | None] = mapped_column(String(16))
    environment: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The claim: a variant is run whole by one worker ("host:pid"), which renews
    # heartbeat_at while its child works; a worker on another host retakes it after the lease.
    worker: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # "host:pid" of the child process that loads and measures it (one per variant).
    process: Mapped[str | None] = mapped_column(String(128))

    run: Mapped[Run] = relationship(back_populates="variants")
    reference: Mapped[Variant | None] = relationship(remote_side=[id])
    timings: Mapped[list[TimingSummary]] = relationship(
        back_populates="variant", cascade="all, delete-orphan"
    )
    shapes: Mapped[list[ShapeSeries]] = relationship(
        back_populates="variant",
        cascade="all, delete-orphan",
        order_by="(ShapeSeries.width * ShapeSeries.height, ShapeSeries.width, "
        "ShapeSeries.batch_size)",
    )

    def timing(self, kind: str) -> TimingSummary | None:
        return next((t for t in self.timings if t.kind == kind), None)


class Prompt(Base):
    __tablename__ = "prompts"
    __table_args__ = (UniqueConstraint("run_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(64), index=True)
    challenge: Mapped[str] = mapped_column(String(64), index=True)
    note: Mapped[str] = mapped_column(Text, default="")

    run: Mapped[Run] = relationship(back_populates="prompts")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # One image per (variant, prompt, seed, size).
        UniqueConstraint(
            "variant_id", "prompt_id", "seed", "width", "height", name="uq_jobs_image"
        ),
        Index("ix_jobs_variant_status", "variant_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    seed: Mapped[int] = mapped_column(BigInteger)
    # The size asked for (the generation records the size made, which is the same).
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus, "job_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # "host:pid" of the worker that claimed it, so a dead worker's jobs can be taken again.
    worker: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    variant: Mapped[Variant] = relationship()
    prompt: Mapped[Prompt] = relationship()
    generation: Mapped[Generation | None] = relationship(back_populates="job")


class Generation(Base):
    """One image and everything needed to reproduce it."""

    __tablename__ = "generations"
    __table_args__ = (
        Index("ix_generations_variant_prompt", "variant_id", "prompt_id"),
        # The prompt page: every variant's image of one prompt.
        Index("ix_generations_prompt", "prompt_id", "seed"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    seed: Mapped[int] = mapped_column(BigInteger)
    # Paths relative to the media folder.
    image_path: Mapped[str] = mapped_column(String(512))
    thumb_path: Mapped[str] = mapped_column(String(512))
    image_sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(255))
    steps: Mapped[int] = mapped_column(Integer)
    guidance: Mapped[float] = mapped_column(Float)
    max_sequence_length: Mapped[int] = mapped_column(Integer)
    dtype: Mapped[str] = mapped_column(String(16))
    lora: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    optimizations: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The pipeline call alone, with device synchronization; not image encoding or I/O.
    latency_s: Mapped[float] = mapped_column(Float)
    # "host:pid" of the child process that generated it.
    process: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    job: Mapped[Job] = relationship(back_populates="generation")
    variant: Mapped[Variant] = relationship()
    prompt: Mapped[Prompt] = relationship()


class TimingSummary(Base):
    """Latency statistics of one variant.

    kind "steady_state": `repeats` timed calls on one prompt after `warmup` untimed ones.
    kind "per_image": the latencies of the benchmark's generations.
    """

    __tablename__ = "timing_summaries"
    __table_args__ = (UniqueConstraint("variant_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    n: Mapped[int] = mapped_column(Integer)
    warmup: Mapped[int] = mapped_column(Integer)
    latency_median_s: Mapped[float] = mapped_column(Float)
    latency_p10_s: Mapped[float] = mapped_column(Float)
    latency_p90_s: Mapped[float] = mapped_column(Float)
    latency_mean_s: Mapped[float] = mapped_column(Float)
    latency_min_s: Mapped[float] = mapped_column(Float)
    latency_max_s: Mapped[float] = mapped_column(Float)
    # Where and when the series ran: "host/device" and the child's "host:pid".
    device_key: Mapped[str | None] = mapped_column(String(160))
    process: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Graphs compiled and graph breaks during the series: a compiled variant that recompiled
    # was not in its steady state.
    recompiles: Mapped[int | None] = mapped_column(Integer)
    graph_breaks: Mapped[int | None] = mapped_column(Integer)
    # What else used the device meanwhile (app/worker/contention.py), and the verdict.
    contention: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    contended: Mapped[bool | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    variant: Mapped[Variant] = relationship(back_populates="timings")

    @property
    def flags(self) -> list[str]:
        """Why this series is not a clean steady state, in words for its card."""
        out = []
        if self.recompiles:
            out.append(f"recompiled {self.recompiles}× while timed")
        if self.contended:
            out.append("measured under contention")
        return out


class ShapeFigures:
    """What a shape's series gives per image: shared by the stored row (ShapeSeries) and the
    pages' plain copy of it (app/bench/scaling.py, ShapeRow). Latencies are per call; a call
    makes `batch_size` images."""

    if TYPE_CHECKING:  # provided by the class that mixes this in
        width: int
        height: int
        batch_size: int
        latency_median_s: float | None

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6

    @property
    def latency_per_image_s(self) -> float | None:
        if self.latency_median_s is None:
            return None
        return self.latency_median_s / self.batch_size

    @property
    def images_per_s(self) -> float | None:
        if not self.latency_median_s:
            return None
        return self.batch_size / self.latency_median_s


class ShapeSeries(ShapeFigures, Base):
    """The steady state of one variant at one (size, batch size): what a call costs there,
    what the first call at that shape cost (a compiled variant recompiles for a new shape),
    the memory it peaked at, whether it fits at all, and whether batching changed the images.

    Latencies are per call (a call makes `batch_size` images). `first_call_s` is the first
    call the variant's process made at this shape: at load for its first size, before its
    images for its other sizes at batch 1, before the series for a larger batch.
    """

    __tablename__ = "shape_series"
    __table_args__ = (UniqueConstraint("variant_id", "width", "height", "batch_size"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    batch_size: Mapped[int] = mapped_column(Integer)
    status: Mapped[SeriesStatus] = mapped_column(_enum(SeriesStatus, "series_status"))
    error: Mapped[str | None] = mapped_column(Text)
    n: Mapped[int] = mapped_column(Integer, default=0)
    warmup: Mapped[int] = mapped_column(Integer, default=0)
    latency_median_s: Mapped[float | None] = mapped_column(Float)
    latency_p10_s: Mapped[float | None] = mapped_column(Float)
    latency_p90_s: Mapped[float | None] = mapped_column(Float)
    latency_mean_s: Mapped[float | None] = mapped_column(Float)
    latency_min_s: Mapped[float | None] = mapped_column(Float)
    latency_max_s: Mapped[float | None] = mapped_column(Float)
    first_call_s: Mapped[float | None] = mapped_column(Float)
    first_call_graphs: Mapped[int | None] = mapped_column(Integer)  # compiled by that call
    # Peak device memory at this shape (first call and series), or reached before the OOM;
    # and the device's total, so "does not fit at 2048², batch 4" reads "31.8 of 24 GB".
    peak_mem_gb: Mapped[float | None] = mapped_column(Float)
    peak_mem_kind: Mapped[str | None] = mapped_column(String(32))
    device_total_gb: Mapped[float | None] = mapped_column(Float)
    # Batch > 1: the batch's images against the same prompts and seeds at batch 1.
    batch_compared: Mapped[int | None] = mapped_column(Integer)
    batch_identical: Mapped[int | None] = mapped_column(Integer)  # pixel for pixel
    batch_ssim_mean: Mapped[float | None] = mapped_column(Float)
    batch_ssim_min: Mapped[float | None] = mapped_column(Float)
    batch_psnr_min_db: Mapped[float | None] = mapped_column(Float)  # over the non-identical
    recompiles: Mapped[int | None] = mapped_column(Integer)
    graph_breaks: Mapped[int | None] = mapped_column(Integer)
    contention: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    contended: Mapped[bool | None] = mapped_column()
    process: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    variant: Mapped[Variant] = relationship(back_populates="shapes")


class VoteOutcome(enum.StrEnum):
    left = "left"
    right = "right"
    tie = "tie"
    both_bad = "both_bad"


class Panel(Base):
    """A group of raters a team invites with a code (`/arena?panel=CODE`)."""

    __tablename__ = "panels"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Rater(Base):
    """An anonymous rater: the id lives in a signed cookie."""

    __tablename__ = "raters"
    __table_args__ = (
        Index("ix_raters_network_created", "network", "created_at"),
        # The admin's rater list (flagged first, newest first, read backwards in index
        # order: no sort per page) and its panel counts.
        Index("ix_raters_flagged_created", "flagged", "created_at", "id"),
        Index("ix_raters_panel", "panel_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid4 hex
    panel_id: Mapped[int | None] = mapped_column(ForeignKey("panels.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attention_passed: Mapped[int] = mapped_column(Integer, default=0)
    attention_failed: Mapped[int] = mapped_column(Integer, default=0)
    # Set when the rater fails attention checks; their votes are left out of the ranking.
    flagged: Mapped[bool] = mapped_column(default=False)
    # Where the rater was created from (app/arena/network.py): new raters per network are
    # limited, since a cookie costs a bot nothing.
    network: Mapped[str | None] = mapped_column(String(64))

    panel: Mapped[Panel | None] = relationship()


class Matchup(Base):
    """A pair of images shown to one rater and answered by them: written with the vote, from
    the offer the page carried (app/arena/matchups.py), whose nonce makes one vote per offer.

    For an attention check both sides show the same image (left == right variant) and the
    expected answer is a tie.
    """

    __tablename__ = "matchups"
    __table_args__ = (
        Index("ix_matchups_rater_issued", "rater_id", "issued_at"),
        Index("ix_matchups_nonce", "nonce", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    seed: Mapped[int] = mapped_column(BigInteger)
    left_variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    right_variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    rater_id: Mapped[str] = mapped_column(ForeignKey("raters.id", ondelete="CASCADE"))
    attention_check: Mapped[bool] = mapped_column(default=False)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The offer's nonce (NULL for matchups from before migration 0008).
    nonce: Mapped[str | None] = mapped_column(String(32))


class Vote(Base):
    __tablename__ = "votes"
    __table_args__ = (
        Index("ix_votes_run_created", "run_id", "created_at"),
        # The per-rater rate limit counts a rater's votes of the last minute on every vote.
        Index("ix_votes_rater_created", "rater_id", "created_at"),
        # ...and the per-network one the network's.
        Index("ix_votes_network_created", "network", "created_at"),
        # A run's largest vote id (the leaderboard's key) in one index probe, and a run's
        # or a panel's votes without a table scan.
        Index("ix_votes_run_id", "run_id", "id"),
        Index("ix_votes_panel_id", "panel_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    matchup_id: Mapped[int] = mapped_column(
        ForeignKey("matchups.id", ondelete="CASCADE"), unique=True
    )
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    seed: Mapped[int] = mapped_column(BigInteger)
    left_variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    right_variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    outcome: Mapped[VoteOutcome] = mapped_column(_enum(VoteOutcome, "vote_outcome"))
    rater_id: Mapped[str] = mapped_column(ForeignKey("raters.id", ondelete="CASCADE"))
    panel_id: Mapped[int | None] = mapped_column(ForeignKey("panels.id", ondelete="SET NULL"))
    attention_check: Mapped[bool] = mapped_column(default=False)
    # The voter's network (app/arena/network.py), for per-network limits.
    network: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IntegrityReview(Base):
    """An admin's decision on an anomaly flag (app/arena/integrity.py) for one run: the
    flagged rater's or network's votes count after all. Deleting the row undoes it."""

    __tablename__ = "integrity_reviews"
    __table_args__ = (UniqueConstraint("run_id", "kind", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # "rater" | "network"
    subject: Mapped[str] = mapped_column(String(64))  # the rater id, or the network
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Version(Base):
    """A named change counter that caches key on (app/arena/reviews.py)."""

    __tablename__ = "versions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class LeaderboardSnapshot(Base):
    """The latest computed leaderboard of a board (run, panel, bootstrap rounds), so that
    every server process and the CLI share one computation per change set
    (app/arena/leaderboard.py): `version` is the key it was computed for, `view` the
    pickled LeaderboardView (written and read only by this app)."""

    __tablename__ = "leaderboard_snapshots"
    __table_args__ = (UniqueConstraint("run_id", "panel", "rounds"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    panel: Mapped[int] = mapped_column(BigInteger)  # the panel id; 0: every rater's votes
    rounds: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(64))
    view: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MetricStatus(enum.StrEnum):
    ok = "ok"
    unavailable = "unavailable"


class GenerationMetric(Base):
    """One automatic quality figure of one image (app/quality.py).

    Keyed by (generation, metric, model): recomputing updates the row in place, and a figure
    from another model (another CLIP) is another row, never mixed with this one. A metric
    that cannot run here is stored with status "unavailable", no value and the reason.
    """

    __tablename__ = "generation_metrics"
    __table_args__ = (
        UniqueConstraint("generation_id", "metric", "model"),
        # The latest change, for the summaries' cache key (app/quality.py metrics_version).
        Index("ix_generation_metrics_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"))
    # "ssim", "psnr_db", "lpips", "clip_score"
    metric: Mapped[str] = mapped_column(String(32))
    # What computed it: "torchmetrics", "lpips-alex", a CLIP Hub id, local path or tiny ref.
    model: Mapped[str] = mapped_column(String(255))
    # Settings and versions behind the figure; the reference image for fidelity metrics.
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Null when unavailable; PSNR of identical images is +inf.
    value: Mapped[float | None] = mapped_column(Float)
    status: Mapped[MetricStatus] = mapped_column(_enum(MetricStatus, "metric_status"))
    reason: Mapped[str | None] = mapped_column(Text)
    # When the figure was (re)computed.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    generation: Mapped[Generation] = relationship()
