"""FLUX's rectified-flow objective, written so training sees what `FluxPipeline` does at
inference: the same text encoding, the same 2x2 latent packing and position ids, the same
timestep input (sigma, which the pipeline passes as t / 1000) and the same shift of sigmas
(the scheduler's `shift`, or with dynamic shifting exp(mu) from the image's token count).

A noisy latent is x_s = (1 - s) * x0 + s * noise (the scheduler's `scale_noise`); an Euler
step moves x by (s_next - s) * v, so the model is trained to predict v = noise - x0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.models.transformers.transformer_flux import FluxTransformer2DModel
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline, calculate_shift
from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5Tokenizer

CLIP_MAX_LENGTH = 77


@dataclass(frozen=True)
class TokenIds:
    """A batch of prompts tokenized as the pipeline tokenizes them."""

    clip: torch.Tensor  # (B, 77)
    t5: torch.Tensor  # (B, max_sequence_length)


def tokenize(
    prompts: list[str], clip: CLIPTokenizer, t5: T5Tokenizer, max_sequence_length: int
) -> TokenIds:
    def ids(tokenizer: Any, length: int) -> torch.Tensor:
        out = tokenizer(
            prompts, padding="max_length", max_length=length, truncation=True, return_tensors="pt"
        )
        return out.input_ids

    return TokenIds(ids(clip, CLIP_MAX_LENGTH), ids(t5, max_sequence_length))


def encode(
    ids: TokenIds, clip: CLIPTextModel, t5: T5EncoderModel
) -> tuple[torch.Tensor, torch.Tensor]:
    """(T5 sequence, CLIP pooled): `FluxPipeline.encode_prompt`'s two calls, with gradients."""
    pooled = clip(ids.clip, output_hidden_states=False).pooler_output
    sequence = t5(ids.t5, output_hidden_states=False)[0]
    return sequence, pooled


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, 16, H, W) latents to (B, H/2 * W/2, 64) tokens, as the pipeline packs them."""
    b, c, h, w = latents.shape
    return FluxPipeline._pack_latents(latents, b, c, h, w)


def image_ids(latent_height: int, latent_width: int) -> torch.Tensor:
    return FluxPipeline._prepare_latent_image_ids(
        1, latent_height // 2, latent_width // 2, torch.device("cpu"), torch.float32
    )


def sigma_shift(scheduler_config: dict[str, Any], image_tokens: int) -> float:
    """The factor by which the scheduler shifts sigmas for an image of this many tokens."""
    if scheduler_config.get("use_dynamic_shifting"):
        mu = calculate_shift(
            image_tokens,
            scheduler_config["base_image_seq_len"],
            scheduler_config["max_image_seq_len"],
            scheduler_config["base_shift"],
            scheduler_config["max_shift"],
        )
        return math.exp(mu)
    return float(scheduler_config["shift"])


def sample_sigmas(batch: int, shift: float, generator: torch.Generator) -> torch.Tensor:
    """Logit-normal sigmas (SD3's sampling, which FLUX trains with), shifted as the scheduler
    shifts its own: s' = shift * s / (1 + (shift - 1) * s)."""
    s = torch.sigmoid(torch.randn(batch, generator=generator))
    return shift * s / (1 + (shift - 1) * s)


def velocity(
    transformer: FluxTransformer2DModel,
    noisy: torch.Tensor,
    sigmas: torch.Tensor,
    sequence: torch.Tensor,
    pooled: torch.Tensor,
    guidance: float | None,
) -> torch.Tensor:
    """The transformer's prediction on packed noisy latents, called as the pipeline calls it."""
    b, _, h, w = noisy.shape
    guidance_input = None
    if transformer.config["guidance_embeds"]:
        if guidance is None:
            raise ValueError("this transformer has a guidance embedding: pass a guidance value")
        guidance_input = torch.full((b,), guidance, dtype=torch.float32)
    out: torch.Tensor = transformer(
        hidden_states=pack(noisy),
        timestep=sigmas,
        guidance=guidance_input,
        pooled_projections=pooled,
        encoder_hidden_states=sequence,
        txt_ids=torch.zeros(sequence.shape[1], 3),
        img_ids=image_ids(h, w),
        return_dict=False,
    )[0]
    return out


def flow_loss(
    transformer: FluxTransformer2DModel,
    latents: torch.Tensor,
    sequence: torch.Tensor,
    pooled: torch.Tensor,
    *,
    shift: float,
    guidance: float | None,
    generator: torch.Generator,
) -> torch.Tensor:
    """Mean squared error of the predicted velocity on one batch of clean latents."""
    sigmas = sample_sigmas(latents.shape[0], shift, generator)
    noise = torch.randn(latents.shape, generator=generator)
    s = sigmas.view(-1, 1, 1, 1)
    noisy = (1 - s) * latents + s * noise
    predicted = velocity(transformer, noisy, sigmas, sequence, pooled, guidance)
    return torch.nn.functional.mse_loss(predicted, pack(noise - latents))
