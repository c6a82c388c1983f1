"""Benchmark work: queue a config's jobs and execute them (`run`, `worker`), and list the runs
(`runs`). A run scores its images when its jobs are done (`metrics`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from app.cli.common import console, err_console, fail, migrate, offline_defaults
from app.cli.metrics import metrics
from app.config import get_settings
from app.errors import InputFileError


def run(
    config: Annotated[Path, typer.Argument(help="Benchmark config (TOML).")],
    work: Annotated[
        bool, typer.Option(help="Execute the jobs now (--no-work only queues them).")
    ] = True,
    retry_failed: Annotated[
        bool, typer.Option(help="Give failed variants and jobs another try.")
    ] = False,
    with_metrics: Annotated[
        bool,
        typer.Option(
            "--metrics/--no-metrics",
            help="Score the images (SSIM/PSNR vs reference, CLIP score) when the jobs are done.",
        ),
    ] = True,
    wait: Annotated[
        bool,
        typer.Option(help="Wait while another worker measures on the device (--no-wait: exit 3)."),
    ] = True,
) -> None:
    """Queue a benchmark's jobs (variant x prompt x seed) and execute them. Resumes a rerun."""
    run_id = _enqueue(config)
    if work:
        _work(run_id, retry_failed=retry_failed, wait=wait)
        if with_metrics:
            metrics(run_id, variant=None, clip_model=None)


def worker(
    run_id: Annotated[int | None, typer.Option("--run", help="Only this run's jobs.")] = None,
    retry_failed: Annotated[
        bool, typer.Option(help="Give failed variants and jobs another try.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(help="Wait while another worker measures on the device (--no-wait: exit 3)."),
    ] = True,
) -> None:
    """Execute pending jobs of any run (or of one run). Several workers may share a run: each
    takes whole variants, and one worker at a time measures on a device."""
    migrate()
    _work(run_id, retry_failed=retry_failed, wait=wait)


def runs() -> None:
    """List the runs in the database with their progress."""
    from sqlalchemy import func, select

    from app.db import get_engine, session_scope
    from app.models import Job, JobStatus, Run

    table = Table("id", "name", "status", "device", "jobs done", "created")
    with session_scope(get_engine()) as session:
        for run_row in session.scalars(select(Run).order_by(Run.id)):
            done = session.scalar(
                select(func.count()).where(Job.run_id == run_row.id, Job.status == JobStatus.done)
            )
            total = session.scalar(select(func.count()).where(Job.run_id == run_row.id))
            table.add_row(
                str(run_row.id),
                run_row.name,
                run_row.status.value,
                run_row.device,
                f"{done}/{total}",
                f"{run_row.created_at:%Y-%m-%d %H:%M}",
            )
    console.print(table)


def _enqueue(config: Path) -> int:
    from app.bench.benchmark import load_benchmark
    from app.bench.prompts import load_prompts
    from app.db import get_engine

    try:
        bench = load_benchmark(config)
        prompts = load_prompts(bench.prompts_path, limit=bench.prompt_limit)
    except InputFileError as err:
        raise fail(str(err)) from None
    migrate()
    if bench.device == "cpu" or all(v.model.startswith("tiny:") for v in bench.variants):
        offline_defaults()
    from app.worker.enqueue import enqueue_run

    run_id = enqueue_run(get_engine(), bench, prompts)
    jobs = len(bench.variants) * len(prompts) * len(bench.seeds)
    console.print(
        f"run {run_id} [bold]{bench.name}[/]: {len(bench.variants)} variants x "
        f"{len(prompts)} prompts x {len(bench.seeds)} seeds = {jobs} jobs",
        highlight=False,
    )
    return run_id


def _work(run_id: int | None, *, retry_failed: bool, wait: bool = True) -> None:
    from app.db import get_engine
    from app.worker.device_lock import DeviceBusy
    from app.worker.runner import Worker

    settings = get_settings()
    worker_ = Worker(
        get_engine(),
        media_dir=settings.media_dir,
        models_dir=settings.models_dir,
        lease_s=settings.worker_lease_s,
        lock_dir=settings.lock_dir,
        wait_for_device=wait,
        cpu_threads=settings.cpu_threads,
    )
    try:
        report = worker_.work(run_id, retry_failed=retry_failed)
    except DeviceBusy as err:
        raise fail(str(err), code=3) from None
    console.print(
        f"generated {report.generated} images; variants done: "
        f"{', '.join(report.variants_done) or '-'}",
        highlight=False,
    )
    for name, reason in report.variants_failed.items():
        err_console.print(f"[yellow]variant {name} failed:[/] {reason}", highlight=False)
