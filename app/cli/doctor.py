"""`doctor`: what of a benchmark config this machine can run, checked without downloading
weights (the checks themselves are app/worker/doctor/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from app.cli.common import ROOT, console, err_console, fail
from app.config import get_settings
from app.errors import InputFileError


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
        raise fail(str(err)) from None
    # Not offline_defaults(): the Hub check may go online, unless HF_HUB_OFFLINE says not.
    from app.worker.doctor.check import Status
    from app.worker.doctor.checkup import run_checks

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
