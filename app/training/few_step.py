"""Stage 3: few-step models from the dev-like one, by reflow ("Flow Straight and Fast", Liu et
al. 2022; InstaFlow): the dev-like teacher carries noise to an image along its own, curved
path in many Euler steps; a student trained on those (noise, image) pairs learns straight
paths, which one to four Euler steps follow.

- schnell-like: FLUX.1 [schnell]'s architecture (no guidance embedding), initialized from
  the teacher's weights and trained on the pairs at the sigmas schnell's scheduler (no
  shift) visits at 1, 2, 4 and 8 steps. FLUX.1 [schnell] itself was distilled adversarially
  (latent adversarial diffusion distillation); reflow is the distillation a CPU budget
  allows, and it is a distillation all the same: the student learns the teacher's images,
  not the training scenes.
- turbo LoRA: a low-rank adapter on the frozen teacher, trained on the same pairs at the
  sigmas the dev scheduler visits at 4 and 8 steps, as the published FLUX.1 [dev] Turbo LoRAs
  are few-step adapters of [dev].

The students share the teacher's text encoders, frozen: the pipelines then differ only in
their transformer (or adapter), as the real [schnell] / [dev] / Turbo differ.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.models.transformers.transformer_flux import FluxTransformer2DModel
from peft import LoraConfig
from transformers import CLIPTextModel, T5EncoderModel

from app.training.flow import TokenIds, encode, pack, velocity
from app.training.loop import Stage
from app.worker import tiny

TEACHER_STEPS = 16
SCHNELL_STEP_COUNTS = (1, 2, 4, 8)
TURBO_STEP_COUNTS = (4, 8)
LORA_RANK = 8
LORA_ALPHA = 8
LORA_TARGETS = tiny.LORA_TARGETS  # FLUX.1-Turbo-Alpha's: every block's attention projections


@dataclass(frozen=True)
class Pairs:
    """The teacher's (noise, image latent) pairs, with the prompts' tokens."""

    noise: torch.Tensor  # (N, 16, h, w)
    images: torch.Tensor  # (N, 16, h, w), normalized latents as the VAE decodes them
    tokens: TokenIds


def shifted(sigmas: np.ndarray, shift: float) -> np.ndarray:
    """The scheduler's shift of sigmas (static `shift`, or exp(mu) with dynamic shifting)."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def pipeline_sigmas(steps: int, shift: float) -> np.ndarray:
    """The sigmas `FluxPipeline` steps through for `steps` steps, with the final 0."""
    return np.append(shifted(np.linspace(1.0, 1.0 / steps, steps), shift), 0.0)


def unpack(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, h/2 * w/2, 64) tokens back to (B, 16, h, w) latents: `pack`'s inverse."""
    b = tokens.shape[0]
    grid = tokens.view(b, height // 2, width // 2, 16, 2, 2)
    return grid.permute(0, 3, 1, 4, 2, 5).reshape(b, 16, height, width)


@torch.no_grad()
def teacher_pairs(
    teacher: FluxTransformer2DModel,
    clip: CLIPTextModel,
    t5: T5EncoderModel,
    tokens: TokenIds,
    *,
    count: int,
    latent_shape: tuple[int, int, int],
    shift: float,
    guidance: float,
    seed: int,
    batch: int = 64,
) -> Pairs:
    """`count` prompts drawn from `tokens`, each carried from fresh noise to an image by the
    teacher in TEACHER_STEPS Euler steps of the dev scheduler, as the pipeline would."""
    generator = torch.Generator().manual_seed(seed)
    index = torch.randint(len(tokens.t5), (count,), generator=generator)
    chosen = TokenIds(tokens.clip[index], tokens.t5[index])
    noise = torch.randn((count, *latent_shape), generator=generator)
    sigmas = pipeline_sigmas(TEACHER_STEPS, shift)
    teacher.eval()
    images = []
    for start in range(0, count, batch):
        part = slice(start, start + batch)
        sequence, pooled = encode(TokenIds(chosen.clip[part], chosen.t5[part]), clip, t5)
        x = noise[part].clone()
        for s, s_next in itertools.pairwise(sigmas):
            sig = torch.full((len(x),), float(s))
            v = velocity(teacher, x, sig, sequence, pooled, guidance)
            x = x + float(s_next - s) * unpack(v, *latent_shape[1:])
        images.append(x)
    return Pairs(noise, torch.cat(images), chosen)


def reflow_stage(
    name: str,
    student: FluxTransformer2DModel,
    clip: CLIPTextModel,
    t5: T5EncoderModel,
    pairs: Pairs,
    *,
    sigma_grid: np.ndarray,
    guidance: float | None,
    steps: int,
    batch: int,
    seed: int,
    lr: float,
) -> Stage:
    """The student predicts v = noise - image on the straight line between a pair, at the
    sigmas its scheduler visits (half the samples) or anywhere on the line (the others)."""
    grid = torch.tensor(sigma_grid, dtype=torch.float32)
    for module in (clip, t5):
        module.requires_grad_(False)

    def loss(step: int, generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(pairs.noise), (batch,), generator=generator)
        on_grid = grid[torch.randint(len(grid), (batch,), generator=generator)]
        anywhere = torch.rand(batch, generator=generator)
        sigmas = torch.where(torch.rand(batch, generator=generator) < 0.5, on_grid, anywhere)
        with torch.no_grad():
            ids = TokenIds(pairs.tokens.clip[index], pairs.tokens.t5[index])
            sequence, pooled = encode(ids, clip, t5)
        z, x0 = pairs.noise[index], pairs.images[index]
        s = sigmas.view(-1, 1, 1, 1)
        predicted = velocity(student, (1 - s) * x0 + s * z, sigmas, sequence, pooled, guidance)
        return torch.nn.functional.mse_loss(predicted, pack(z - x0))

    return Stage(name, {"transformer": student}, loss, steps=steps, lr=lr, seed=seed, warmup=50)


def schnell_student(teacher: FluxTransformer2DModel, seed: int) -> FluxTransformer2DModel:
    """[schnell]'s architecture (no guidance embedding) with the teacher's weights where the
    two have the same parameters (all but the guidance embedder)."""
    from app.training import parts

    student = parts.transformer(guidance_embeds=False, seed=seed)
    state = {k: v for k, v in teacher.state_dict().items() if "guidance_embedder" not in k}
    missing, unexpected = student.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"schnell student: missing {missing}, unexpected {unexpected}")
    return student


def schnell_grid() -> np.ndarray:
    return np.unique(np.concatenate([pipeline_sigmas(n, 1.0)[:-1] for n in SCHNELL_STEP_COUNTS]))


def turbo_grid(shift: float) -> np.ndarray:
    return np.unique(np.concatenate([pipeline_sigmas(n, shift)[:-1] for n in TURBO_STEP_COUNTS]))


def add_turbo_adapter(transformer: FluxTransformer2DModel, seed: int) -> None:
    """A LoRA on the attention projections (FLUX.1-Turbo-Alpha's targets); the base frozen.
    peft zeroes lora_B, so the adapter starts as a no-op: the teacher at few steps."""
    transformer.requires_grad_(False)
    torch.manual_seed(seed)
    transformer.add_adapter(
        LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, target_modules=LORA_TARGETS)
    )
