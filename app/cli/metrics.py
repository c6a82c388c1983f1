"""`metrics`: score a run's images (app/quality/) and print each variant's means. The tiny
CLIP's folder comes from the worker's tiny models, which this top layer may import."""

from __future__ import annotations

import functools
from typing import Annotated

import typer
from rich.table import Table

from app.cli.common import console, err_console, fail, migrate, offline_defaults
from app.config import get_settings


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
    from app.worker.tiny_clip import resolve_clip_ref

    migrate()
    settings = get_settings()
    engine = get_engine()
    with session_scope(engine) as session:
        if session.get(Run, run_id) is None:  # before torch is imported: a fast answer
            raise fail(f"run {run_id} not found")
        clip_ref = clip_model or default_clip_model(session, run_id)
    if clip_ref.startswith("tiny:"):
        offline_defaults()
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
            resolve_clip=functools.partial(resolve_clip_ref, models_dir=settings.models_dir),
            variant=variant,
            clip_model=clip_ref,
            show_progress=True,
        )
    except QualityError as err:
        raise fail(str(err)) from None
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
