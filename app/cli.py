"""The `flux-playground` command line (Typer + Rich).

Heavy imports (torch, diffusers, uvicorn) happen inside the commands that need them, so
`--help` is instant and the web-only install never touches torch.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.config import DEFAULT_SECRET_KEY, get_settings
from app.errors import InputFileError

if TYPE_CHECKING:
    from app.arena.leaderboard import LeaderboardView

app = typer.Typer(
    help="Benchmark text-to-image variants: images, latency, cost and human preference.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "configs" / "demo.toml"


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@app.callback()
def _check_settings() -> None:
    """Bad settings (environment or .env) get one line, not a traceback."""
    from pydantic import ValidationError

    try:
        get_settings()
    except ValidationError as err:
        first = err.errors()[0]
        name = "FLUX_PLAYGROUND_" + "_".join(str(p) for p in first["loc"]).upper()
        raise _fail(f"setting {name}: {first['msg']}") from None


@app.command()
def init() -> None:
    """Create or upgrade the database schema (alembic upgrade head)."""
    url = _migrate()
    console.print(f"database ready: {url}", highlight=False)


def _migrate() -> str:
    """`alembic upgrade head`: a no-op on an up-to-date database, so `run`, `worker` and
    `serve` call it too, and a first `run` on a new machine needs no separate `init`."""
    from app.migrate import upgrade

    url = get_settings().database_url
    upgrade(url)
    return url


@app.command("build-tiny")
def build_tiny(
    force: Annotated[bool, typer.Option(help="Rebuild even if the models exist.")] = False,
) -> None:
    """Build the tiny offline FLUX pipelines (demo and tests) into the models folder."""
    _offline_defaults()
    from app.worker.tiny import build_tiny_models

    built = build_tiny_models(get_settings().models_dir, force=force)
    for name, path in built.items():
        console.print(f"{name}: {path}", highlight=False)


@app.command()
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


@app.command()
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
    _migrate()
    _work(run_id, retry_failed=retry_failed, wait=wait)


@app.command()
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


@app.command("export")
def export_run(
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="Run id (see `runs`).")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The bundle to write.", show_default="run-RUN.tar"),
    ] = None,
) -> None:
    """Write a run bundle (a tar): the run's rows, its image files and a manifest of their
    sha256, for `import` on another machine's database. The arena's votes stay here."""
    from rich.markup import escape

    from app.bench.bundles import BundleError
    from app.bench.bundles import export_run as export
    from app.db import get_engine

    path = output or Path(f"run-{run_id}.tar")
    try:
        report = export(get_engine(), run_id, get_settings().media_dir, path, show_progress=True)
    except BundleError as err:
        raise _fail(str(err)) from None
    except OSError as err:
        raise _fail(f"{err.filename or path}: {err.strerror or err}") from None
    console.print(
        f"exported run {report.run_id} [bold]{escape(report.name)}[/]: {sum(report.rows.values())} "
        f"rows, {report.files} files, {report.size / 1e6:.1f} MB -> {report.path}",
        highlight=False,
    )


@app.command("import")
def import_run(
    bundle: Annotated[Path, typer.Argument(help="A bundle written by `export`.")],
) -> None:
    """Import a run bundle into this database and media folder. Every file is checked
    against the manifest before anything is written; a damaged bundle changes nothing.
    Importing the same run again changes nothing either."""
    from rich.markup import escape

    from app.bench.bundles import BundleError, import_bundle
    from app.db import get_engine

    if not bundle.is_file():
        raise _fail(f"{bundle}: bundle not found")
    _migrate()
    try:
        report = import_bundle(get_engine(), bundle, get_settings().media_dir, show_progress=True)
    except BundleError as err:
        raise _fail(f"{bundle}: {err}") from None
    except OSError as err:
        raise _fail(f"{err.filename or bundle}: {err.strerror or err}") from None
    if report.created:
        console.print(
            f"imported run [bold]{escape(report.name)}[/] as run {report.run_id}: "
            f"{sum(report.rows.values())} rows, {report.files} files",
            highlight=False,
        )
    else:
        console.print(
            f"already imported: run [bold]{escape(report.name)}[/] is run {report.run_id} here; "
            "nothing changed",
            highlight=False,
        )


@app.command()
def leaderboard(
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="Run id (see `runs`).")],
    panel: Annotated[
        str | None, typer.Option(help="Only the votes of this panel (its code).")
    ] = None,
    rounds: Annotated[
        int, typer.Option(min=0, help="Bootstrap rounds for the 95% intervals.")
    ] = 1000,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the leaderboard as JSON (the API's shape).")
    ] = False,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            help="Exit 1 when a variant's verdict against its reference is this one "
            "(worse, undecided, indistinguishable or better; repeatable): a release gate.",
        ),
    ] = None,
) -> None:
    """A run's leaderboard from the arena's votes: Bradley–Terry rating with its 95%
    interval, Elo, votes, and each variant's verdict against its reference."""
    labels = {"worse", "undecided", "indistinguishable", "better"}
    unknown = sorted(set(fail_on or []) - labels)
    if unknown:
        raise _fail(
            f"--fail-on: unknown verdict {unknown[0]!r} (one of {', '.join(sorted(labels))})"
        )
    from rich.markup import escape
    from sqlalchemy import select

    from app.arena.leaderboard import leaderboard as compute
    from app.arena.leaderboard import leaderboard_data
    from app.db import get_engine, session_scope
    from app.models import Panel, Run

    with session_scope(get_engine()) as session:
        run_row = session.get(Run, run_id)
        if run_row is None:
            raise _fail(f"run {run_id} not found")
        panel_row = None
        if panel is not None:
            panel_row = session.scalars(select(Panel).where(Panel.code == panel)).first()
            if panel_row is None:
                raise _fail(f"unknown panel code {panel!r}")
        panel_id = panel_row.id if panel_row else None
        view = compute(session, run_row, panel_id=panel_id, rounds=rounds)
        title = f"run {run_row.id} {run_row.name}"
        panel_name = panel_row.name if panel_row is not None else None
        if panel_name is not None:
            title += f", panel {panel_name}"

    if as_json:
        data = leaderboard_data(
            view,
            panel=panel_name,
            preliminary_votes=get_settings().arena_preliminary_votes,
        )
        print(json.dumps(data, indent=2))
    else:
        _print_leaderboard(view, title)
    failing = [v for v in view.verdicts if v.verdict in set(fail_on or [])]
    for found in failing:
        err_console.print(
            f"[red]{escape(found.variant)}: {found.verdict} vs {escape(found.reference)}[/] "
            f"({escape(found.message)})",
            highlight=False,
        )
    if failing:
        raise typer.Exit(1)


def _print_leaderboard(view: LeaderboardView, title: str) -> None:
    from rich.markup import escape

    from app.arena.leaderboard import fmt_interval, fmt_rank, fmt_rating, fmt_verdict

    verdicts = {v.variant: v for v in view.verdicts}
    # Names are data, not Rich markup: a "[b]" in one must print as typed.
    table = Table(title=escape(title))
    table.add_column("rank", justify="right")
    # Words like "no votes yet" stay whole; the verdict column wraps in a narrow terminal.
    for name in ("variant", "rating", "95% CI"):
        table.add_column(name, no_wrap=True, justify="left" if name == "variant" else "right")
    table.add_column("Elo", justify="right")
    table.add_column("votes", justify="right")
    table.add_column("verdict vs reference")
    for row in view.rows:
        found = verdicts.get(row.name)
        table.add_row(
            fmt_rank(row.rating.rank),
            escape(row.name),
            fmt_rating(row.rating),
            "pinned"
            if row.name == view.reference and row.votes
            else fmt_interval(row.rating.ci_low, row.rating.ci_high),
            f"{row.elo:.0f}" if row.votes else "—",
            str(row.votes),
            escape(f"{fmt_verdict(found)} vs {found.reference}") if found else "",
        )
    console.print(table)
    console.print(
        f"{view.n_votes} votes counted, {view.flagged_votes} left out (flagged raters), "
        f"{view.anomaly_votes} left out (anomaly flags), "
        f"{view.capped_votes} over the per-network cap; "
        f"{view.reference} pinned at 1000; {view.ranking.rounds} bootstrap rounds",
        highlight=False,
        markup=False,
    )
    for message in view.ranking.messages:
        console.print(message, highlight=False, markup=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: settings.host")] = None,
    port: Annotated[int | None, typer.Option(help="Default: settings.port")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Server processes (PostgreSQL only: SQLite has one writer at a time).",
        ),
    ] = 1,
) -> None:
    """Serve the web app."""
    import uvicorn

    settings = get_settings()
    if workers > 1 and settings.database_url.startswith("sqlite"):
        raise _fail(
            f"--workers {workers} needs PostgreSQL (FLUX_PLAYGROUND_DATABASE_URL="
            "postgresql+psycopg://...): SQLite takes one writer at a time, so more processes "
            "would only wait on each other's votes. One process serves ~1,400 votes/s here."
        )
    bind = host or settings.host
    if settings.secret_key == DEFAULT_SECRET_KEY and not _is_loopback(bind):
        raise _fail(
            f"FLUX_PLAYGROUND_SECRET_KEY is the default and {bind} is not a loopback address: "
            "anyone could forge arena tokens and admin cookies. Set a long random value "
            '(python -c "import secrets; print(secrets.token_urlsafe(32))").'
        )
    _migrate()
    # The processes split the in-memory limits between them (app/web/main.py).
    os.environ["FLUX_PLAYGROUND_SERVER_PROCESSES"] = str(workers)
    uvicorn.run(
        "app.web.main:create_app",
        factory=True,
        workers=workers,
        host=bind,
        # Forwarded headers are believed only from FLUX_PLAYGROUND_TRUSTED_PROXIES, by the
        # app itself (uvicorn's default would trust any local process's X-Forwarded-For).
        proxy_headers=False,
        port=port or settings.port,
        log_level="info",
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return bool(ipaddress.ip_address(host).is_loopback)
    except ValueError:
        return False  # a host name: it may resolve to anything


@app.command()
def demo(
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the result when done.")
    ] = True,
) -> None:
    """init + build-tiny + run configs/demo.toml on the CPU + serve. Reuses finished images."""
    init()
    build_tiny()
    run(DEMO_CONFIG, work=True, retry_failed=False, with_metrics=True)
    if serve_after:
        settings = get_settings()
        console.print(f"serving on http://{settings.host}:{settings.port}", highlight=False)
        serve()


def _offline_defaults() -> None:
    # The default paths never download anything: tiny models are built locally.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _enqueue(config: Path) -> int:
    from app.bench.benchmark import load_benchmark
    from app.bench.prompts import load_prompts
    from app.db import get_engine

    try:
        bench = load_benchmark(config)
        prompts = load_prompts(bench.prompts_path, limit=bench.prompt_limit)
    except InputFileError as err:
        raise _fail(str(err)) from None
    _migrate()
    if bench.device == "cpu" or all(v.model.startswith("tiny:") for v in bench.variants):
        _offline_defaults()
    from app.worker.runner import enqueue_run

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
        raise _fail(str(err), code=3) from None
    console.print(
        f"generated {report.generated} images; variants done: "
        f"{', '.join(report.variants_done) or '-'}",
        highlight=False,
    )
    for name, reason in report.variants_failed.items():
        err_console.print(f"[yellow]variant {name} failed:[/] {reason}", highlight=False)


@app.command()
def doctor(
    config: Annotated[
        Path,
        typer.Argument(help="Benchmark config (TOML).", show_default="configs/flux.toml"),
    ] = ROOT / "configs" / "flux.toml",
) -> None:
    """Check what of a benchmark config this machine can run, without downloading weights:
    torch and CUDA, the GPU and fp8, memory per variant, the compiler torch.compile needs,
    Hugging Face access and cache, disk space, onediff and torchao. Exits 1 when a check the
    config needs fails."""
    from rich.markup import escape

    from app.bench.benchmark import load_benchmark
    from app.bench.prompts import load_prompts

    try:
        bench = load_benchmark(config)
        prompts = load_prompts(bench.prompts_path, limit=bench.prompt_limit)
    except InputFileError as err:
        raise _fail(str(err)) from None
    # Not _offline_defaults(): the Hub check may go online, unless HF_HUB_OFFLINE says not.
    from app.worker.doctor import Status, run_checks

    checks = run_checks(bench, len(prompts), get_settings().media_dir)
    styles = {Status.OK: "green", Status.FAIL: "bold red", Status.SKIP: "dim"}
    table = Table("", "check", "detail", title=escape(f"{bench.name}: {bench.config_path}"))
    for check in checks:
        mark = f"[{styles[check.status]}]{check.status.value}[/]"
        table.add_row(mark, escape(check.name), escape(check.detail))
    console.print(table)
    failed = [check.name for check in checks if check.status is Status.FAIL]
    if failed:
        err_console.print(
            f"[bold red]{len(failed)} failed:[/] {escape(', '.join(failed))}", highlight=False
        )
        raise typer.Exit(1)
    console.print("every check this config needs passes", highlight=False)


@app.command()
def metrics(
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="Run id (see `runs`).")],
    variant: Annotated[str | None, typer.Option(help="Only this variant's images.")] = None,
    clip_model: Annotated[
        str | None,
        typer.Option(
            metavar="ID_OR_PATH",
            help="CLIP model for the CLIP score: Hub id, local path or tiny:clip. Default: "
            "tiny:clip for a run of tiny models, else openai/clip-vit-large-patch14.",
        ),
    ] = None,
) -> None:
    """Score a run's images and store the figures; a rerun updates them in place.

    Against the reference variant's image of the same prompt and seed: SSIM, PSNR (dB) and
    LPIPS. For every image: CLIP score, 100 x max(cos(image, prompt), 0). A metric that cannot
    run here (LPIPS without torchvision, a CLIP model that cannot load) is stored as
    unavailable with the reason and the others go on. Prints each variant's means with 95%
    intervals, clipped to the metric's range and at the decimals their width supports.
    """
    from app.db import get_engine, session_scope
    from app.models import Run
    from app.quality import QualityError, compute_run_metrics, default_clip_model, metric_summaries

    _migrate()
    settings = get_settings()
    engine = get_engine()
    with session_scope(engine) as session:
        if session.get(Run, run_id) is None:  # before torch is imported: a fast answer
            raise _fail(f"run {run_id} not found")
        clip_ref = clip_model or default_clip_model(session, run_id)
    if clip_ref.startswith("tiny:"):
        _offline_defaults()
    import torch

    from app.config import torch_threads

    threads = torch_threads("cpu", settings.cpu_threads)  # metrics run on the CPU
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        report = compute_run_metrics(
            engine,
            run_id,
            media_dir=settings.media_dir,
            models_dir=settings.models_dir,
            variant=variant,
            clip_model=clip_ref,
            show_progress=True,
        )
    except QualityError as err:
        raise _fail(str(err)) from None
    from rich.markup import escape

    table = Table(
        "variant",
        "metric",
        "model",
        "n",
        "mean [95% CI]",
        title=f"run {run_id}",
        caption="intervals clipped to the metric's range (CLIP score 0-100, SSIM up to 1)",
    )
    reasons: dict[tuple[str, str], set[str]] = {}
    with session_scope(engine) as session:
        for row in metric_summaries(session, run_id, variant=variant):
            shown = "unavailable" if row.mean is None and row.reason else row.display
            table.add_row(row.variant, row.metric, row.model, str(row.n), shown)
            if row.reason:
                reasons.setdefault((row.metric, row.model), set()).add(row.reason)
    console.print(table)
    console.print(f"scored {report.images} images", highlight=False)
    for (metric, model), why in reasons.items():
        for reason in sorted(why):
            err_console.print(
                f"[yellow]{metric} ({escape(model)}): unavailable:[/] {escape(reason)}",
                highlight=False,
            )


if __name__ == "__main__":
    app()
