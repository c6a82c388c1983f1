"""Driving one variant's child process from the parent: plan what the child is told, start it
in an environment of its own, then load, generate the pending images and time the series,
storing each result as it comes (app/worker/results.py).

The child (app/worker/child.py) loads and measures; this side only sends orders, waits for
their answers while renewing the variant's claim, and fails the variant, not the worker,
when the child reports a failure or dies (DESIGN.md, "One process per variant").
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import TypeVar

from rich.progress import Progress, TaskID
from sqlalchemy import Engine, func, select

from app.bench import benchmark as bm
from app.config import torch_threads
from app.db import session_scope
from app.models import Generation, Job, JobStatus, Prompt, Variant
from app.worker.claims import Claims
from app.worker.isolate import (
    ChildDied,
    ChildFailed,
    ImageDone,
    JobDidNotFit,
    JobOrder,
    Loaded,
    PhaseReport,
    SeriesDone,
    SeriesOrder,
    VariantProcess,
    VariantTask,
)
from app.worker.results import Results, VariantFailed

T = TypeVar("T")


@dataclass
class WorkerReport:
    generated: int = 0
    variants_done: list[str] = field(default_factory=list)
    variants_failed: dict[str, str] = field(default_factory=dict)
    # The child process each variant ran in ("host:pid").
    processes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VariantPlan:
    """What the parent knows of a claimed variant before its child starts."""

    task: VariantTask
    spec: bm.Variant
    run_id: int
    prompt_texts: dict[int, str]
    total_jobs: int
    done_jobs: int
    batch_sizes: list[int]
    series_prompt_ids: list[int]  # the series' prompts, in order (batch b uses the first b)


@dataclass
class ChildDriver:
    """One worker's side of its children: each claimed variant in a fresh child of its own.
    `claims` holds the worker's claims; `results` stores what its children report."""

    engine: Engine
    claims: Claims
    results: Results
    progress: Progress
    _: KW_ONLY
    host: str
    media_dir: Path
    models_dir: Path
    cpu_threads: int | None

    def _plan(self, variant_id: int) -> VariantPlan:
        with session_scope(self.engine) as session:
            row = session.get_one(Variant, variant_id)
            run = row.run
            spec = bm.Variant.model_validate(row.config)
            total = session.scalar(select(func.count()).where(Job.variant_id == variant_id))
            done = session.scalar(
                select(func.count()).where(
                    Job.variant_id == variant_id, Job.status == JobStatus.done
                )
            )
            # Result objects have .keys(), so dict(result) would treat them as a mapping.
            prompt_texts = {
                prompt_id: text
                for prompt_id, text in session.execute(
                    select(Prompt.id, Prompt.text)
                    .where(Prompt.run_id == run.id)
                    .order_by(Prompt.position)
                )
            }
            first_seed = session.scalars(
                select(Job.seed).where(Job.variant_id == variant_id).order_by(Job.id)
            ).first()
            sizes, batch_sizes = bm.shapes_of_run(run.config, run.width, run.height, spec)
            series_prompt_ids = list(prompt_texts)[: max(batch_sizes)]
            task = VariantTask(
                variant_id=variant_id,
                spec=row.config,
                device=run.device,
                sizes=[(size.width, size.height) for size in sizes],
                config_dir=Path(run.config_path).parent,
                models_dir=self.models_dir,
                media_dir=self.media_dir,
                threads=torch_threads(run.device, self.cpu_threads),
                series_prompts=[prompt_texts[i] for i in series_prompt_ids] or [""],
                series_seed=first_seed or 0,
                warmup=run.warmup,
                repeats=run.repeats,
            )
            return VariantPlan(
                task,
                spec,
                run.id,
                prompt_texts,
                total or 0,
                done or 0,
                batch_sizes,
                series_prompt_ids,
            )

    def work_variant(self, variant_id: int, device_key: str, report: WorkerReport) -> None:
        plan = self._plan(variant_id)
        name = plan.spec.name
        task = self.progress.add_task(
            name, total=plan.total_jobs, completed=plan.done_jobs, status="starting"
        )
        try:
            with (
                _child_environment(plan.spec) as env,
                VariantProcess.start(plan.task, env=env) as child,
            ):
                process = f"{self.host}:{child.pid}"
                report.processes[name] = process
                with self.engine.begin() as conn:
                    conn.execute(self.claims.owned(variant_id).values(process=process))
                self.progress.update(task, status=f"loading (pid {child.pid})")
                self._drive(child, plan, process, device_key, task, report)
        except (VariantFailed, ChildDied) as err:
            reason = str(err)
            self.results.fail_variant(variant_id, reason)
            report.variants_failed[name] = reason
            self.progress.update(task, status=f"[red]failed: {reason[:60]}")
            return
        report.variants_done.append(name)
        self.progress.update(task, status="[green]done")

    def _drive(
        self,
        child: VariantProcess,
        plan: VariantPlan,
        process: str,
        device_key: str,
        task: TaskID,
        report: WorkerReport,
    ) -> None:
        """Load, generate the pending images, time the series: the parent's side."""
        variant_id = plan.task.variant_id

        # 1. The child loads the pipeline and makes the first call at each size. A size
        # whose first call ran out of memory does not fit: its images are not tried.
        loaded = self._expect(child, Loaded, variant_id)
        self.results.record_loaded(variant_id, loaded)
        unfit = {(c.width, c.height): c.oom for c in loaded.first_calls if c.oom is not None}
        for (width, height), oom in unfit.items():
            self.results.jobs_do_not_fit(variant_id, width, height, oom)

        # 2. One image per pending job, each stored before the next one is ordered. (A
        # writer thread that encodes while the next image generates was tried: on the CPU it
        # made the recorded latencies 40% slower than a bare loop's by competing for the
        # cores, and the latency is this tool's product. docs/benchmarks.md has the figures.)
        self.progress.update(task, status="generating")
        while (claim := self.claims.claim_job(variant_id)) is not None:
            stem = f"runs/{claim.run_id}/{plan.spec.name}/{claim.job_id}"
            prompt = plan.prompt_texts[claim.prompt_id]
            try:
                child.send(
                    JobOrder(claim.job_id, stem, prompt, claim.seed, claim.width, claim.height)
                )
                image = self._image_or_misfit(child, variant_id)
                if isinstance(image, JobDidNotFit):
                    self.results.job_does_not_fit(claim.job_id, image.oom, claim)
                else:
                    self.results.store(claim, variant_id, plan.spec, image, process)
            except BaseException:
                self.claims.release(claim.job_id)
                raise
            report.generated += 1
            self.progress.advance(task)

        # 3. Steady state per size and batch size: warm-up calls, then timed repeats. A
        # batch that does not fit at a size skips the larger ones there.
        self.progress.update(task, status="steady-state timing")
        first_calls = {(c.width, c.height): c for c in loaded.first_calls}
        shapes: list[SeriesDone] = []
        images_phase: PhaseReport | None = None
        for width, height in plan.task.sizes:
            too_big: str | None = None
            for batch in plan.batch_sizes:
                if too_big is not None:
                    self.results.store_shape(
                        variant_id, width, height, batch, None, skipped=too_big
                    )
                    continue
                if batch == 1 and (width, height) in unfit:
                    oom = unfit[(width, height)]
                    self.results.store_shape(variant_id, width, height, batch, None, oom=oom)
                    too_big = "batch 1 does not fit at this size"
                    continue
                self.progress.update(
                    task, status=f"steady-state timing {width}x{height}, batch {batch}"
                )
                child.send(self._series_order(plan, variant_id, width, height, batch))
                done = self._expect(child, SeriesDone, variant_id)
                images_phase = images_phase or done.images
                first = first_calls.get((width, height)) if batch == 1 else None
                self.results.store_shape(
                    variant_id, width, height, batch, done, first=first, warmup=plan.task.warmup
                )
                shapes.append(done)
                if done.oom is not None:
                    too_big = f"batch {batch} does not fit at this size"
        self.results.finish_variant(
            variant_id, shapes, images_phase, plan.task.warmup, device_key, process, plan.task
        )

    def _series_order(
        self, plan: VariantPlan, variant_id: int, width: int, height: int, batch: int
    ) -> SeriesOrder:
        """The series' first `batch` prompts at one seed; for a batch > 1, the batch-1
        images of the same prompts, seed and size to compare with (None where missing)."""
        ids = [plan.series_prompt_ids[i % len(plan.series_prompt_ids)] for i in range(batch)]
        seed = plan.task.series_seed
        references: list[str | None] = []
        if batch > 1:
            with session_scope(self.engine) as session:
                paths = dict(
                    session.execute(
                        select(Generation.prompt_id, Generation.image_path).where(
                            Generation.variant_id == variant_id,
                            Generation.prompt_id.in_(ids),
                            Generation.seed == seed,
                            Generation.width == width,
                            Generation.height == height,
                        )
                    ).all()
                )
            references = [paths.get(i) for i in ids]
        return SeriesOrder(
            width, height, [plan.prompt_texts[i] for i in ids], [seed] * batch, references
        )

    def _receive(self, child: VariantProcess, variant_id: int) -> object:
        message = child.receive(on_idle=lambda: self.claims.heartbeat(variant_id))
        if isinstance(message, ChildFailed):
            raise VariantFailed(message.reason)
        return message

    def _expect(self, child: VariantProcess, kind: type[T], variant_id: int) -> T:
        message = self._receive(child, variant_id)
        if not isinstance(message, kind):
            raise VariantFailed(f"child sent {type(message).__name__}, expected {kind.__name__}")
        return message

    def _image_or_misfit(self, child: VariantProcess, variant_id: int) -> ImageDone | JobDidNotFit:
        message = self._receive(child, variant_id)
        if not isinstance(message, ImageDone | JobDidNotFit):
            raise VariantFailed(f"child sent {type(message).__name__}, expected ImageDone")
        return message


@contextmanager
def _child_environment(spec: bm.Variant) -> Iterator[dict[str, str]]:
    """The child's environment: ours, plus a fresh, empty Inductor/Triton cache folder when
    the variant asks for a cold compile (removed once the child is gone)."""
    env = dict(os.environ)
    if spec.compile is None or not spec.compile.fresh_cache:
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="flux-playground-inductor-") as cache:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache
        env["TRITON_CACHE_DIR"] = str(Path(cache) / "triton")
        yield env
