"""Variant config -> ready diffusers `FluxPipeline`: LoRA, fused QKV, quantization, cache, compile.

`load_pipeline` checks the environment first, so a variant that cannot run here (no CUDA, no
onediffx, no fp8-capable GPU) fails at load time with a reason a user can read, and the rest of
the benchmark goes on. `generate` makes one image, the same for the same seed on the same setup.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

import PIL.Image
import torch
from diffusers.hooks import FirstBlockCacheConfig

# From its module: for a type checker, `diffusers.FluxPipeline` is a no-torch placeholder.
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline
from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from app.benchmark import Variant, resolve_local
from app.worker import tiny

# The worker draws its own progress bars; the libraries' per-load bars would bury them.
# (Their log level is set in app/worker/__init__.py, before they are imported: that also
# hides per-prompt notices such as CLIP's 77-token truncation, expected with FLUX prompts.)
diffusers_logging.disable_progress_bar()
transformers_logging.disable_progress_bar()

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
LORA_ADAPTER = "lora"


class VariantUnavailable(RuntimeError):
    """The environment cannot run this variant; `str(err)` is the reason shown to users."""


def set_cpu_threads(n: int) -> None:
    """Use `n` CPU threads. More threads than cores made a tiny pipeline 80x slower here."""
    torch.set_num_threads(n)
    # Inter-op threads can only be set once per process and before any parallel work; after
    # that the existing pool stays, which is harmless: diffusers does not use inter-op work.
    if torch.get_num_interop_threads() != n:
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(n)


def load_pipeline(
    variant: Variant, *, device: str, models_dir: Path, config_dir: Path
) -> FluxPipeline:
    """Build the pipeline a variant describes, on `device`, ready for `generate`.

    Raises `VariantUnavailable` when this environment cannot run the variant.
    """
    # 1. Check the environment before loading gigabytes of weights.
    _check_environment(variant, device)
    if variant.fuse_qkv and variant.lora is not None and not variant.lora.fuse:
        # fuse_projections copies the base weights and would silently drop an unfused LoRA.
        raise ValueError(f"variant {variant.name!r}: fuse_qkv needs lora.fuse = true")
    try:
        return _load(variant, device=device, models_dir=models_dir, config_dir=config_dir)
    except (ImportError, NotImplementedError, torch.cuda.OutOfMemoryError) as err:
        raise VariantUnavailable(f"{type(err).__name__}: {err}") from err


def generate(
    pipe: FluxPipeline, variant: Variant, *, prompt: str, seed: int, width: int, height: int
) -> PIL.Image.Image:
    """One image. The same seed gives the same image on the same setup (seeded on the CPU)."""
    if pipe.transformer.is_cache_enabled:
        # diffusers resets the cache at the end of a call; a call that raised did not get
        # there and would leave its residuals to the next image.
        pipe.transformer._reset_stateful_cache()
    with torch.inference_mode():
        result = pipe(
            prompt=prompt,
            num_inference_steps=variant.steps,
            guidance_scale=variant.guidance,
            max_sequence_length=variant.max_sequence_length,
            width=width,
            height=height,
            generator=torch.Generator("cpu").manual_seed(seed),
        )
    image: PIL.Image.Image = result.images[0]
    return image


def _check_environment(variant: Variant, device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        build = "" if torch.version.cuda else ", built without CUDA"
        raise VariantUnavailable(
            f"device 'cuda' but CUDA is not available (torch {torch.__version__}{build})"
        )
    if device == "cpu" and variant.dtype == "float16":
        raise VariantUnavailable("float16 is not supported on the CPU; use float32 or bfloat16")
    if device == "cuda" and variant.dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise VariantUnavailable(f"{torch.cuda.get_device_name()} does not support bfloat16")
    if variant.compile is not None and variant.compile.backend == "onediff":
        if device != "cuda":
            raise VariantUnavailable("the onediff compile backend needs a CUDA GPU")
        if importlib.util.find_spec("onediffx") is None:
            raise VariantUnavailable(
                "the onediff compile backend needs onediffx: pip install 'flux-playground[onediff]'"
            )
    if variant.quantize == "fp8_dynamic":
        capability = torch.cuda.get_device_capability() if device == "cuda" else None
        if capability is None or capability < (8, 9):
            found = f"compute capability {capability[0]}.{capability[1]}" if capability else "CPU"
            raise VariantUnavailable(
                "fp8_dynamic quantization needs a CUDA GPU with compute capability >= 8.9 "
                f"(Ada, Hopper or newer), not {found}"
            )


def _load(variant: Variant, *, device: str, models_dir: Path, config_dir: Path) -> FluxPipeline:
    # 2. The model: tiny refs are built locally, local paths are relative to the config.
    pipe = FluxPipeline.from_pretrained(
        _resolve(variant.model, models_dir, config_dir), dtype=DTYPES[variant.dtype]
    )

    # 3. LoRA. Fused into the weights and unloaded, so inference pays no peft overhead.
    if variant.lora is not None:
        lora = variant.lora
        pipe.load_lora_weights(
            _resolve(lora.path, models_dir, config_dir),
            weight_name=lora.weight_name,
            adapter_name=LORA_ADAPTER,
        )
        if lora.fuse:
            pipe.fuse_lora(lora_scale=lora.scale)
            pipe.unload_lora_weights()
        else:
            pipe.set_adapters(LORA_ADAPTER, adapter_weights=lora.scale)

    # 4. One matmul for q, k and v (and for the text stream's added projections).
    if variant.fuse_qkv:
        pipe.transformer.fuse_qkv_projections()

    # 5. Move before quantizing: torchao quantizes on the device the weights are on, and fp8
    # kernels exist only there.
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)

    # 6. Quantize the transformer's linear layers (the text encoders and VAE stay as they are).
    if variant.quantize is not None:
        from torchao.quantization import (
            Float8DynamicActivationFloat8WeightConfig,
            Int8DynamicActivationInt8WeightConfig,
            Int8WeightOnlyConfig,
            quantize_,
        )

        config = {
            "int8_weight_only": Int8WeightOnlyConfig,
            "int8_dynamic": Int8DynamicActivationInt8WeightConfig,
            "fp8_dynamic": Float8DynamicActivationFloat8WeightConfig,
        }[variant.quantize]()
        quantize_(pipe.transformer, config)

    # 7. First-block cache: skip the other blocks while the first block's output barely changes.
    if variant.cache is not None:
        pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=variant.cache.threshold))

    # 8. Compile last, so the graph sees the final modules. Compilation itself happens on the
    # first call, which is why the runner times that call separately.
    if variant.compile is not None:
        spec = variant.compile
        if spec.backend == "torch":
            pipe.transformer.compile(mode=spec.mode, fullgraph=spec.fullgraph)
        else:
            from onediffx import compile_pipe

            pipe = compile_pipe(pipe, backend=spec.onediff_backend)
    return pipe


def _resolve(ref: str, models_dir: Path, config_dir: Path) -> str:
    if ref.startswith("tiny:"):
        return tiny.resolve_ref(ref, models_dir)
    return resolve_local(config_dir, ref)
