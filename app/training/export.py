"""Trained parts into `FluxPipeline` folders, the layout `FluxPipeline.from_pretrained` and
the worker load (and the layout of a real FLUX checkpoint), and back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.transformers.transformer_flux import FluxTransformer2DModel
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline
from diffusers.schedulers.scheduling_flow_match_euler_discrete import (
    FlowMatchEulerDiscreteScheduler,
)
from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5Tokenizer

from app.worker import tiny
from app.worker.tiny import DEV_SCHEDULER, SCHNELL_SCHEDULER


def scheduler_config(guidance_embeds: bool) -> dict[str, Any]:
    """FLUX.1 [dev]'s scheduler (shift 3, dynamic shifting) for the dev-like model, schnell's
    (no shift) for the few-step one: the configs of the real checkpoints."""
    return DEV_SCHEDULER if guidance_embeds else SCHNELL_SCHEDULER


def assemble(
    transformer: FluxTransformer2DModel,
    vae: AutoencoderKL,
    clip: CLIPTextModel,
    clip_tokenizer: CLIPTokenizer,
    t5: T5EncoderModel,
    t5_tokenizer: T5Tokenizer,
) -> FluxPipeline:
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(
            **scheduler_config(transformer.config["guidance_embeds"])
        ),
        vae=vae,
        text_encoder=clip,
        tokenizer=clip_tokenizer,
        text_encoder_2=t5,
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )


def save(pipe: FluxPipeline, out: Path) -> Path:
    pipe.save_pretrained(out)
    return out


def save_lora(transformer: FluxTransformer2DModel, out: Path) -> Path:
    """The turbo adapter alone (app/worker/tiny.py's layout, diffusers' and the published
    Turbo LoRAs'), with its rank and alpha in the metadata."""
    from app.training.few_step import LORA_ALPHA, LORA_RANK, LORA_TARGETS

    return tiny.save_lora(transformer, out, rank=LORA_RANK, alpha=LORA_ALPHA, targets=LORA_TARGETS)
