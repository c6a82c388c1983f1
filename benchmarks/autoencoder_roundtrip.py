"""How much of a scene survives the shapes autoencoder: train it for N steps (the recipe's
batch and size), encode and decode the held-out scenes of prompts/shapes-64.tsv, and judge the
rendered and the decoded images with the adherence oracle. A transformer cannot score above
what its decoder gives back, so this is the ceiling of the trained models' adherence.

    .venv/bin/python benchmarks/autoencoder_roundtrip.py [--steps 300] [--grid ae.png]

Trains from scratch in a temporary folder every time: the stage resumes from checkpoints, and
a kept folder would resume a run of older code.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from app.bench.prompts import load_prompts
from app.quality.adherence import judge
from app.training import autoencoder, parts
from app.training.loop import train
from app.training.recipe import Recipe
from app.training.shapes import render, spec_from_json

ROOT = Path(__file__).resolve().parents[1]


def side_by_side(
    top: list[Image.Image], bottom: list[Image.Image], columns: int = 8
) -> Image.Image:
    """Rows of `columns` images, each rendered one above its decoded twin."""
    size = top[0].width
    rows = -(-len(top) // columns)
    grid = Image.new("RGB", (size * columns, 2 * size * rows))
    for k, (a, b) in enumerate(zip(top, bottom, strict=True)):
        x, y = (k % columns) * size, (k // columns) * 2 * size
        grid.paste(a, (x, y))
        grid.paste(b, (x, y + size))
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--prompts", type=Path, default=ROOT / "prompts" / "shapes-64.tsv")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--grid", type=Path, help="write the first 16 pairs here (PNG)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = Recipe()
    vae = parts.autoencoder(recipe.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work_dir:
        stage = train(
            autoencoder.autoencoder_stage(
                vae,
                steps=args.steps,
                batch=recipe.autoencoder_batch,
                size=recipe.size,
                seed=recipe.seed,
            ),
            Path(work_dir),
            None,
        )
    seconds = time.perf_counter() - started
    specs = [spec_from_json(row.spec) for row in load_prompts(args.prompts) if row.spec]
    rendered = [render(spec, recipe.size, seed=i) for i, spec in enumerate(specs)]
    with torch.no_grad():
        decoded = autoencoder.to_images(vae.decode(autoencoder.raw_latents(vae, rendered)).sample)

    def right(images: list[Image.Image]) -> float:
        return sum(judge(i, s).correct for i, s in zip(images, specs, strict=True)) / len(specs)

    last = stage.losses[-20:]
    print(
        f"{args.steps} steps in {seconds:.0f} s, loss {stage.losses[0]:.3f} -> "
        f"{sum(last) / len(last):.3f}; fully right: rendered {right(rendered):.1%}, "
        f"after the round trip {right(decoded):.1%} ({len(specs)} scenes)"
    )
    if args.grid:
        side_by_side(rendered[:16], decoded[:16]).save(args.grid)


if __name__ == "__main__":
    main()
