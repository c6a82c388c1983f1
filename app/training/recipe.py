"""The whole training of the shapes models, stage by stage, resumable: `train_all` is what
`flux-playground train-tiny` runs.

1. the autoencoder on rendered scenes (app/training/autoencoder.py);
2. a dataset: training scenes as normalized latents, with their prompts tokenized;
3. the dev-like transformer (guidance embedding, FLUX.1 [dev]'s scheduler) with the text
   encoders (app/training/denoiser.py);
4. the teacher's pairs, then the schnell-like transformer and the turbo LoRA learnt from
   them by reflow (app/training/few_step.py);
5. the pipelines written as `FluxPipeline` folders with their manifest.

Every stage's checkpoint is under `work_dir`: run the command again after a kill and it goes
on from the last checkpoint. Seeds and the torch thread count are fixed (`Recipe`), so two
runs on one machine give the same weights.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from app.training import autoencoder, denoiser, export, few_step, manifest, parts
from app.training.flow import sigma_shift, tokenize
from app.training.loop import Progress, Stage, save_atomically, train

StageProgress = Callable[[str, int], Progress]  # (stage name, total steps) -> callback


@dataclass(frozen=True)
class Recipe:
    seed: int = 0
    threads: int = 2
    size: int = parts.TRAIN_SIZE
    # Sized to the 30-minute budget on a 2-core CPU (docs/benchmarks.md, "Shapes training"):
    # the first full run took 29.2 min with the autoencoder at 324 s, the dev-like
    # transformer 0.40 s a step at batch 32 (0.30 s when benchmarks/train_step_time.py times
    # it alone). The autoencoder now trains on 64x64 crops, 0.28 s a step at batch 12
    # (benchmarks/autoencoder_roundtrip.py: 1,200 steps in 339 s, 98% of held-out scenes
    # right after a round trip). The dev-like reference gets most of the time: its adherence
    # comes first, the few-step students learn from it.
    autoencoder_steps: int = 1200
    autoencoder_batch: int = 12
    dataset: int = 8000
    dev_steps: int = 2400
    dev_batch: int = 32
    pairs: int = 1024  # the teacher's (noise, image) pairs the few-step students learn from
    schnell_steps: int = 500
    turbo_steps: int = 300
    few_step_batch: int = 32
    checkpoint_every: int = 200

    def short(self) -> Recipe:
        """A schedule of a minute or two, for the test that checks the code runs end to end
        and the losses fall (not quality)."""
        return Recipe(
            seed=self.seed,
            threads=self.threads,
            size=64,
            autoencoder_steps=60,
            autoencoder_batch=8,
            dataset=256,
            dev_steps=60,
            dev_batch=16,
            pairs=64,
            schnell_steps=30,
            turbo_steps=30,
            few_step_batch=8,
            checkpoint_every=20,
        )


@dataclass
class Trained:
    stages: list[Stage]
    out: Path
    seconds: float


def _cached(path: Path, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`make()` once; a resumed run reads it back (it is deterministic, but minutes long)."""
    if path.exists():
        loaded: dict[str, Any] = torch.load(path, weights_only=False)
        return loaded
    value = make()
    save_atomically(value, path)
    return value


def train_all(
    recipe: Recipe,
    out: Path,
    work_dir: Path,
    *,
    command: str,
    repository: Path,
    progress: StageProgress | None = None,
) -> Trained:
    torch.set_num_threads(recipe.threads)
    started = time.perf_counter()
    # The code as it is now, when training starts: a commit made during the half hour (docs,
    # say) must not be named as the code that trained the weights.
    code_commit = manifest.code_commit(repository)
    clip_tokenizer, t5_tokenizer = parts.tokenizers()
    vae = parts.autoencoder(recipe.seed)

    def run(stage: Stage) -> Stage:
        stage.checkpoint_every = recipe.checkpoint_every
        callback = progress(stage.name, stage.steps) if progress else None
        return train(stage, work_dir, callback)

    stage_vae = run(
        autoencoder.autoencoder_stage(
            vae,
            steps=recipe.autoencoder_steps,
            batch=recipe.autoencoder_batch,
            size=recipe.size,
            seed=recipe.seed,
        )
    )

    def make_dataset() -> dict[str, Any]:
        latents, prompts = autoencoder.dataset(
            vae, count=recipe.dataset, size=recipe.size, seed=recipe.seed
        )
        return {"latents": latents, "prompts": prompts, "vae": dict(vae.config)}

    data = _cached(work_dir / "dataset.pt", make_dataset)
    latents = data["latents"]
    vae.register_to_config(
        shift_factor=data["vae"]["shift_factor"], scaling_factor=data["vae"]["scaling_factor"]
    )
    tokens = tokenize(data["prompts"], clip_tokenizer, t5_tokenizer, parts.TEXT_TOKENS)

    clip, t5 = parts.text_encoders(clip_tokenizer, t5_tokenizer, recipe.seed)
    dev = parts.transformer(guidance_embeds=True, seed=recipe.seed)
    image_tokens = latents.shape[-1] * latents.shape[-2] // 4
    dev_shift = sigma_shift(export.scheduler_config(True), image_tokens)
    stage_dev = run(
        denoiser.denoiser_stage(
            "dev",
            dev,
            clip,
            t5,
            tokens,
            latents,
            steps=recipe.dev_steps,
            batch=recipe.dev_batch,
            seed=recipe.seed + 2,
            shift=dev_shift,
        )
    )

    def make_pairs() -> dict[str, Any]:
        pairs = few_step.teacher_pairs(
            dev,
            clip,
            t5,
            tokens,
            count=recipe.pairs,
            latent_shape=tuple(latents.shape[1:]),
            shift=dev_shift,
            guidance=denoiser.GUIDANCE,
            seed=recipe.seed + 3,
        )
        return {"pairs": pairs}

    pairs: few_step.Pairs = _cached(work_dir / "pairs.pt", make_pairs)["pairs"]
    schnell = few_step.schnell_student(dev, recipe.seed + 4)
    stage_schnell = run(
        few_step.reflow_stage(
            "schnell",
            schnell,
            clip,
            t5,
            pairs,
            sigma_grid=few_step.schnell_grid(),
            guidance=None,
            steps=recipe.schnell_steps,
            batch=recipe.few_step_batch,
            seed=recipe.seed + 5,
            lr=5e-4,
        )
    )
    turbo = copy.deepcopy(dev)
    few_step.add_turbo_adapter(turbo, recipe.seed + 6)
    stage_turbo = run(
        few_step.reflow_stage(
            "turbo-lora",
            turbo,
            clip,
            t5,
            pairs,
            sigma_grid=few_step.turbo_grid(dev_shift),
            guidance=denoiser.GUIDANCE,
            steps=recipe.turbo_steps,
            batch=recipe.few_step_batch,
            seed=recipe.seed + 7,
            lr=1e-3,
        )
    )
    export.save(export.assemble(dev, vae, clip, clip_tokenizer, t5, t5_tokenizer), out / "dev")
    export.save(
        export.assemble(schnell, vae, clip, clip_tokenizer, t5, t5_tokenizer), out / "schnell"
    )
    export.save_lora(turbo, out / "turbo-lora")
    seconds = time.perf_counter() - started
    stages = [stage_vae, stage_dev, stage_schnell, stage_turbo]
    manifest.write(out, _record(recipe, stages, seconds, command, code_commit))
    return Trained(stages, out, seconds)


def _record(
    recipe: Recipe, stages: list[Stage], seconds: float, command: str, code_commit: str
) -> dict[str, Any]:
    return {
        "command": command,
        "code_commit": code_commit,
        "recipe": asdict(recipe),
        "training_seconds": round(seconds, 1),
        "machine": manifest.machine(),
        "stages": {
            stage.name: {
                "steps": stage.steps,
                "seconds": round(stage.seconds, 1),
                "first_loss": round(stage.losses[0], 5),
                "last_loss_mean_of_50": round(sum(stage.losses[-50:]) / len(stage.losses[-50:]), 5),
            }
            for stage in stages
        },
    }
