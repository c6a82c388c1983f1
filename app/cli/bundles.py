"""Run bundles between machines: `export` writes a run's rows and images to a tar, `import`
checks one against its manifest and loads it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import console, fail, migrate
from app.config import get_settings


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
        raise fail(str(err)) from None
    except OSError as err:
        raise fail(f"{err.filename or path}: {err.strerror or err}") from None
    console.print(
        f"exported run {report.run_id} [bold]{escape(report.name)}[/]: {sum(report.rows.values())} "
        f"rows, {report.files} files, {report.size / 1e6:.1f} MB -> {report.path}",
        highlight=False,
    )


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
        raise fail(f"{bundle}: bundle not found")
    migrate()
    try:
        report = import_bundle(get_engine(), bundle, get_settings().media_dir, show_progress=True)
    except BundleError as err:
        raise fail(f"{bundle}: {err}") from None
    except OSError as err:
        raise fail(f"{err.filename or bundle}: {err.strerror or err}") from None
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
