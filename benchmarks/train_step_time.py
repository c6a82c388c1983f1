"""Seconds per training step of the shapes models on this machine, for sizing the recipe
(app/training/recipe.py) to the 30-minute budget of issue 22.

    .venv/bin/python benchmarks/train_step_time.py --threads 2

Times the autoencoder stage and the dev-like transformer stage (text encoders trained with
it) at the recipe's batch sizes: a few warm-up steps, then the median of timed steps.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from app.training import autoencoder, denoiser, export, parts
from app.training.flow import sigma_shift, tokenize
from app.training.loop import Stage
from app.training.recipe import Recipe


def time_stage(stage: Stage, steps: int, warmup: int = 2) -> float:
    parameters = [p for m in stage.modules.values() for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)
    samples = []
    for step in range(warmup + steps):
        started = time.perf_counter()
        loss = stage.loss(step, torch.Generator().manual_seed(step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        if step >= warmup:
            samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--dev-batch", type=int, action="append")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = Recipe(threads=args.threads)
    vae = parts.autoencoder(0)
    ae = autoencoder.autoencoder_stage(
        vae, steps=1, batch=recipe.autoencoder_batch, size=recipe.size, seed=0
    )
    print(f"autoencoder batch {recipe.autoencoder_batch}: {time_stage(ae, args.steps):.3f} s/step")
    started = time.perf_counter()
    latents, prompts = autoencoder.dataset(vae, count=512, size=recipe.size, seed=0)
    per_1000 = (time.perf_counter() - started) / 512 * 1000
    print(f"dataset: {per_1000:.1f} s per 1000 scenes (render + encode)")
    clip_tok, t5_tok = parts.tokenizers()
    tokens = tokenize(prompts, clip_tok, t5_tok, parts.TEXT_TOKENS)
    clip, t5 = parts.text_encoders(clip_tok, t5_tok, 0)
    dev = parts.transformer(guidance_embeds=True, seed=0)
    shift = sigma_shift(export.scheduler_config(True), latents.shape[-1] * latents.shape[-2] // 4)
    for batch in args.dev_batch or [recipe.dev_batch]:
        stage = denoiser.denoiser_stage(
            "dev", dev, clip, t5, tokens, latents, steps=1, batch=batch, seed=0, shift=shift
        )
        print(f"dev transformer batch {batch}: {time_stage(stage, args.steps):.3f} s/step")


if __name__ == "__main__":
    main()
