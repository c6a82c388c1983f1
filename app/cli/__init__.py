"""The `flux-playground` command line (Typer + Rich).

Heavy imports (torch, diffusers, uvicorn) happen inside the commands that need them, so
`--help` is instant and the web-only install never touches torch.

One module per group of commands; this one assembles `app` (the entry point
`flux-playground = "app.cli:app"`), registering the commands in the order `--help` lists them.
"""

from __future__ import annotations

import typer

from app.cli import bundles, demo, doctor, jobs, leaderboard, metrics, prepare, serve, train
from app.cli.common import fail
from app.config import get_settings

app = typer.Typer(
    help="Benchmark text-to-image variants: images, latency, cost and human preference.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _check_settings() -> None:
    """Bad settings (environment or .env) get one line, not a traceback."""
    from pydantic import ValidationError

    try:
        get_settings()
    except ValidationError as err:
        first = err.errors()[0]
        name = "FLUX_PLAYGROUND_" + "_".join(str(p) for p in first["loc"]).upper()
        raise fail(f"setting {name}: {first['msg']}") from None


app.command()(prepare.init)
app.command("build-tiny")(prepare.build_tiny)
app.command("train-tiny")(train.train_tiny)
app.command()(jobs.run)
app.command()(jobs.worker)
app.command()(jobs.runs)
app.command("export")(bundles.export_run)
app.command("import")(bundles.import_run)
app.command()(leaderboard.leaderboard)
app.command()(serve.serve)
app.command()(demo.demo)
app.command()(doctor.doctor)
app.command()(metrics.metrics)
