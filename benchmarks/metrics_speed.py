"""How fast are the automatic quality metrics (app/quality/) on the demo data, 2 threads?

Reads the demo run (`make demo`: data/flux-playground.db + media/, 5 variants × 64 prompts at
256×256) from a copy of the database; the media folder is only read. Timed, each as the
median of --repeats over all the run's images (fidelity: the images of variants that have a
reference), batches of --batch-size, inputs already decoded unless said otherwise:

1. PNG decode to an RGB float tensor (what every metric starts from);
2. ``ssim``, ``psnr_db`` and ``lpips`` against the reference image;
3. ``clip_score`` with each --clip-model (default: the tiny offline CLIP and CLIP ViT-L/14;
   the script sets HF_HUB_OFFLINE=1 unless told otherwise, so nothing is downloaded);
4. end to end: ``compute_run_metrics`` on the copy (decode, every metric, upserts), the
   first time (inserts) and again (updates).

A metric that cannot load here is listed with its reason.

    python benchmarks/metrics_speed.py [--db data/flux-playground.db] [--media media]

Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers reads it

import argparse
import datetime
import functools
import platform
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import torch
from sqlalchemy import select
from torchmetrics.functional.image import structural_similarity_index_measure

from app.db import make_engine, session_scope
from app.migrate import upgrade
from app.models import Generation, Prompt, Run, Variant
from app.quality import (
    FIDELITY_PARAMS,
    ClipScorer,
    compute_run_metrics,
    load_clip,
    load_image,
    load_lpips,
    psnr_db,
    ssim,
    to_tensor,
)
from app.worker.tiny_clip import resolve_clip_ref

ROOT = Path(__file__).resolve().parent.parent


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def batched(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "flux-playground.db")
    parser.add_argument("--media", type=Path, default=ROOT / "media")
    parser.add_argument("--run", type=int, help="Run id (default: the latest).")
    parser.add_argument(
        "--clip-model",
        action="append",
        help="CLIP for the CLIP score; repeat for several. "
        "Default: tiny:clip and openai/clip-vit-large-patch14.",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    clip_models = args.clip_model or ["tiny:clip", "openai/clip-vit-large-patch14"]
    torch.set_num_threads(args.threads)

    tmp = Path(tempfile.mkdtemp(prefix="metrics-speed-"))
    with sqlite3.connect(args.db) as src, sqlite3.connect(tmp / "copy.db") as dst:
        src.backup(dst)
    url = f"sqlite:///{tmp / 'copy.db'}"
    upgrade(url)  # the copy may predate the generation_metrics table
    engine = make_engine(url)
    models_dir = tmp / "models"

    # The run's images, and (image, reference image) pairs for the fidelity metrics.
    with session_scope(engine) as session:
        run_id = args.run or session.scalar(select(Run.id).order_by(Run.id.desc()))
        assert run_id is not None, "no run in the database: run `make demo` first"
        run = session.get(Run, run_id)
        assert run is not None
        size = f"{run.width}×{run.height}"
        rows = session.execute(
            select(Generation, Variant.reference_id, Prompt.text)
            .join(Variant, Variant.id == Generation.variant_id)
            .join(Prompt, Prompt.id == Generation.prompt_id)
            # The main size, what the metrics score (other sizes are for the scaling views).
            .where(
                Generation.run_id == run_id,
                Generation.width == run.width,
                Generation.height == run.height,
            )
        ).all()
    by_key = {(g.variant_id, g.prompt_id, g.seed): g for g, _, _ in rows}
    paths = [args.media / g.image_path for g, _, _ in rows]
    prompts = [text for *_, text in rows]
    pairs = [
        (args.media / g.image_path, args.media / by_key[(ref, g.prompt_id, g.seed)].image_path)
        for g, ref, _ in rows
        if ref is not None and (ref, g.prompt_id, g.seed) in by_key
    ]

    decode_s = median_time(lambda: [to_tensor(load_image(p)) for p in paths], args.repeats)
    images = [load_image(p) for p in paths]
    preds = torch.stack([to_tensor(load_image(a)) for a, _ in pairs])
    target = torch.stack([to_tensor(load_image(b)) for _, b in pairs])
    slices = batched(len(pairs), args.batch_size)

    table: list[tuple[str, str, int, str, str]] = [
        ("PNG decode", "PIL + numpy", len(paths), _rate(len(paths), decode_s), ""),
    ]
    for name, fn in (("ssim", ssim), ("psnr_db", psnr_db)):
        fn(preds[slices[0]], target[slices[0]])  # warm-up
        seconds = median_time(lambda fn=fn: [fn(preds[s], target[s]) for s in slices], args.repeats)
        table.append(
            (
                name,
                f"torchmetrics {version('torchmetrics')}",
                len(pairs),
                _rate(len(pairs), seconds),
                "",
            )
        )
    # app.quality.ssim hands torchmetrics channels-last tensors; the same call on the default
    # (NCHW) layout, side by side in this run, with the largest difference in value.
    contiguous_ssim = functools.partial(
        structural_similarity_index_measure,
        **{k: v for k, v in FIDELITY_PARAMS["ssim"].items() if k != "torchmetrics"},
        reduction="none",
    )
    seconds = median_time(
        lambda: [contiguous_ssim(preds[s], target[s]) for s in slices], args.repeats
    )
    difference = max(
        float((contiguous_ssim(preds[s], target[s]) - ssim(preds[s], target[s])).abs().max())
        for s in slices
    )
    note = f"the layout app.quality.ssim replaced; values differ by <= {difference:.1e}"
    table.append(
        ("ssim (NCHW input)", "torchmetrics", len(pairs), _rate(len(pairs), seconds), note)
    )
    lpips = load_lpips()
    if isinstance(lpips, str):
        table.append(("lpips", "lpips-alex", len(pairs), "-", f"unavailable: {lpips}"))
    else:
        seconds = median_time(lambda: [lpips(preds[s], target[s]) for s in slices], args.repeats)
        table.append(("lpips", "lpips-alex", len(pairs), _rate(len(pairs), seconds), ""))

    for ref in clip_models:
        scorer = load_clip(ref, resolve_clip_ref(ref, models_dir))
        if not isinstance(scorer, ClipScorer):
            table.append(("clip_score", ref, len(paths), "-", f"unavailable: {scorer}"))
            continue

        def score(scorer: ClipScorer = scorer) -> None:
            for s in batched(len(images), args.batch_size):
                scorer.score(images[s], prompts[s])

        score()  # warm-up
        seconds = median_time(score, args.repeats)
        table.append(
            ("clip_score", ref, len(paths), _rate(len(paths), seconds), "processor + model")
        )

    clip_ref = clip_models[0]
    for label in ("end to end, first (inserts)", "end to end, again (updates)"):
        start = time.perf_counter()
        report = compute_run_metrics(
            engine,
            run_id,
            media_dir=args.media,
            resolve_clip=functools.partial(resolve_clip_ref, models_dir=models_dir),
            clip_model=clip_ref,
            batch_size=args.batch_size,
            device="cpu",
        )
        seconds = time.perf_counter() - start
        table.append(
            (
                label,
                f"all metrics, CLIP {clip_ref}",
                report.images,
                _rate(report.images, seconds),
                f"{seconds:.1f} s incl. model loading",
            )
        )
    engine.dispose()
    shutil.rmtree(tmp)

    machine = platform.processor() or platform.machine()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"Quality metrics, run {run_id}: {len(paths)} images {size}, {len(pairs)} with a reference"
    )
    print(f"(`python benchmarks/metrics_speed.py`, {datetime.date.today()}, {machine},")
    print(f"{os.cpu_count()} CPUs, load average {load} at the end, torch {torch.__version__}")
    print(f"with {args.threads} threads, transformers {version('transformers')}, ", end="")
    print(f"batch {args.batch_size}, median of {args.repeats})\n")
    print("| metric | model | images | images/s | note |\n|---|---|---:|---:|---|")
    for metric, model, n, rate, note in table:
        print(f"| {metric} | {model} | {n} | {rate} | {note.replace('|', '/')} |")


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}" if n / seconds >= 100 else f"{n / seconds:.1f}"


if __name__ == "__main__":
    main()
