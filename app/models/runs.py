"""Runs and their work: the run, its variants and prompts, the (variant, prompt, seed, size)
jobs, and the generation (one image) a done job records.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, stored_enum, utcnow

if TYPE_CHECKING:
    from app.models.timings import ShapeSeries, TimingSummary


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
    status: Mapped[RunStatus] = mapped_column(stored_enum(RunStatus, "run_status"))
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
    status: Mapped[VariantStatus] = mapped_column(stored_enum(VariantStatus, "variant_status"))
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
    # A shapes-world prompt's scene as canonical JSON (app/training/shapes.py), which the
    # adherence oracle judges its images against; "" when the prompt states none (migration
    # 0014).
    spec: Mapped[str] = mapped_column(Text, default="", server_default="")

    run: Mapped[Run] = relationship(back_populates="prompts")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # One image per (variant, prompt, seed, size).
        UniqueConstraint(
            "variant_id", "prompt_id", "seed", "width", "height", name="uq_jobs_image"
        ),
        Index("ix_jobs_variant_status", "variant_id", "status"),
        # The gallery: every variant's job of a page of prompts at one seed and size.
        Index("ix_jobs_prompt_image", "prompt_id", "seed", "width", "height"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    seed: Mapped[int] = mapped_column(BigInteger)
    # The size asked for (the generation records the size made, which is the same).
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    status: Mapped[JobStatus] = mapped_column(stored_enum(JobStatus, "job_status"))
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
