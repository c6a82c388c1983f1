"""`demo`: everything at once on the CPU (schema, tiny models, the demo benchmark, serve)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import ROOT, console
from app.cli.jobs import run
from app.cli.prepare import build_tiny, init
from app.cli.serve import serve
from app.config import get_settings

DEMO_CONFIG = ROOT / "configs" / "demo.toml"


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
