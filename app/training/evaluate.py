"""How well a trained pipeline draws what it is asked: images for held-out specs, through the
pipeline exactly as the worker calls it, judged by the adherence oracle."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline
from PIL import Image

from app.quality.adherence import judge
from app.training.parts import TEXT_TOKENS, TRAIN_SIZE
from app.training.shapes import SceneSpec, category_of, prompt_of


@dataclass(frozen=True)
class Evaluation:
    steps: int
    correct: float  # share of images with every attribute right
    score: float  # mean share of attributes right
    per_category: dict[str, float]  # share fully right per category

    def line(self) -> str:
        categories = ", ".join(f"{k} {v:.0%}" for k, v in sorted(self.per_category.items()))
        return (
            f"{self.steps} steps: {self.correct:.0%} right ({categories}); score {self.score:.2f}"
        )


@torch.no_grad()
def generate(
    pipe: FluxPipeline,
    prompts: list[str],
    *,
    steps: int,
    seed: int,
    size: int = TRAIN_SIZE,
    guidance: float = 3.5,
    batch: int = 16,
) -> list[Image.Image]:
    images: list[Image.Image] = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start : start + batch]
        generator = [torch.Generator().manual_seed(seed + start + i) for i in range(len(chunk))]
        out = pipe(
            chunk,
            height=size,
            width=size,
            num_inference_steps=steps,
            guidance_scale=guidance,
            max_sequence_length=TEXT_TOKENS,
            generator=generator,
        )
        images += out.images
    return images


def evaluate(
    pipe: FluxPipeline,
    specs: list[SceneSpec],
    *,
    steps: int,
    seed: int = 0,
    size: int = TRAIN_SIZE,
    guidance: float = 3.5,
) -> Evaluation:
    prompts = [prompt_of(s) for s in specs]
    images = generate(pipe, prompts, steps=steps, seed=seed, size=size, guidance=guidance)
    verdicts = [judge(image, spec) for image, spec in zip(images, specs, strict=True)]
    by_category: dict[str, list[bool]] = defaultdict(list)
    for spec, verdict in zip(specs, verdicts, strict=True):
        by_category[category_of(spec)].append(verdict.correct)
    return Evaluation(
        steps=steps,
        correct=sum(v.correct for v in verdicts) / len(verdicts),
        score=sum(v.score for v in verdicts) / len(verdicts),
        per_category={k: sum(v) / len(v) for k, v in by_category.items()},
    )
