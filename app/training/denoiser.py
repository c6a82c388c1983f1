"""Stage 2: the tiny `FluxTransformer2DModel` with FLUX's rectified-flow objective, and the
text encoders trained with it.

Why the text encoders are trained rather than frozen: FLUX's text ids are all zero (the
transformer sees no text positions), so word order reaches it only through the encoders; a
random two-layer T5 keeps each word's identity but little of its order, and "a red circle
left of a blue square" must differ from "a blue circle left of a red square". They are tiny
(two layers, 64 wide), so training them costs little.

The dev-like model has a guidance embedding, as FLUX.1 [dev]: it is trained at one guidance
value (`GUIDANCE`), so the embedding is a learned constant, not a distilled classifier-free
guidance (there is no teacher to distill from); the pipeline passes the value as it does for
real FLUX.
"""

from __future__ import annotations

import torch
from diffusers.models.transformers.transformer_flux import FluxTransformer2DModel
from transformers import CLIPTextModel, T5EncoderModel

from app.training.flow import TokenIds, encode, flow_loss
from app.training.loop import Stage

GUIDANCE = 3.5  # the value FLUX.1 [dev]'s pipelines use


def denoiser_stage(
    name: str,
    transformer: FluxTransformer2DModel,
    clip: CLIPTextModel,
    t5: T5EncoderModel,
    tokens: TokenIds,
    latents: torch.Tensor,
    *,
    steps: int,
    batch: int,
    seed: int,
    shift: float,
    lr: float = 1e-3,
) -> Stage:
    guidance = GUIDANCE if transformer.config["guidance_embeds"] else None

    def loss(step: int, generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(latents), (batch,), generator=generator)
        sequence, pooled = encode(TokenIds(tokens.clip[index], tokens.t5[index]), clip, t5)
        return flow_loss(
            transformer,
            latents[index],
            sequence,
            pooled,
            shift=shift,
            guidance=guidance,
            generator=generator,
        )

    modules = {"transformer": transformer, "clip": clip, "t5": t5}
    return Stage(name, modules, loss, steps=steps, lr=lr, seed=seed, warmup=100)
