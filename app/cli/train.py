"""`train-tiny`: train the shapes models (app/training/) on this machine, resumably, and write
them as `FluxPipeline` folders with their manifest."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import ROOT, console, fail, offline_defaults

DEFAULT_OUT = ROOT / "weights" / "shapes"


def train_tiny(
    out: Annotated[
        Path, typer.Option(help="Where the pipelines and MANIFEST.json go.")
    ] = DEFAULT_OUT,
    work_dir: Annotated[
        Path,
        typer.Option(help="Checkpoints: run the command again to go on from the last one."),
    ] = ROOT / ".training",
    threads: Annotated[int, typer.Option(min=1, help="torch threads (fixed: same weights).")] = 2,
    seed: Annotated[int, typer.Option(help="The seed every stage derives its own from.")] = 0,
    short: Annotated[
        bool, typer.Option(help="A schedule of a minute or two (checks the code, not quality).")
    ] = False,
) -> None:
    """Train the shapes world's tiny FLUX (autoencoder, dev-like, schnell-like, turbo LoRA)."""
    offline_defaults()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from app.training.recipe import Recipe, train_all

    recipe = Recipe(seed=seed, threads=threads)
    if short:
        recipe = recipe.short()
    bar = Progress(
        TextColumn("[bold]{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )

    def stage_progress(name: str, total: int):
        task = bar.add_task(name, total=total, loss=float("nan"))
        return lambda done, loss: bar.update(task, completed=done, loss=loss)

    command = shlex.join(["flux-playground", *sys.argv[1:]])
    try:
        with bar:
            trained = train_all(
                recipe, out, work_dir, command=command, repository=ROOT, progress=stage_progress
            )
    except KeyboardInterrupt:
        raise fail(f"interrupted: run the same command to go on from {work_dir}", 130) from None
    for stage in trained.stages:
        tail = stage.losses[-50:]
        console.print(
            f"{stage.name}: {stage.steps} steps in {stage.seconds:.0f} s, "
            f"loss {stage.losses[0]:.4f} -> {sum(tail) / len(tail):.4f}",
            highlight=False,
        )
    console.print(f"weights: {trained.out} ({trained.seconds / 60:.1f} min)", highlight=False)
