"""Variant config -> ready diffusers `FluxPipeline`: LoRA, fused QKV, quantization, cache, compile.

`load_pipeline` checks the environment first, so a variant that cannot run here (no CUDA, no
onediffx, no fp8-capable GPU) fails at load time with a reason a user can read, and the rest of
the benchmark goes on. `generate` makes one image, the same for the same seed on the same setup.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path

import PIL.Image
import torch
from diffusers.hooks import FirstBlockCacheConfig

# From its module: for a type checker, `diffusers.FluxPipeline` is a no-torch placeholder.
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline
from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from app.bench.benchmark import LoraSpec, Variant, resolve_local
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
    check_environment(variant, device)
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
    return generate_batch(
        pipe, variant, prompts=[prompt], seeds=[seed], width=width, height=height
    )[0]


# Test hook: "WxH:B,..." makes a call at that size and batch size raise the device's
# out-of-memory error, as a GPU too small for it would (the tests' way to a "does not fit"
# on a CPU machine). Unset in normal use.
FAKE_OOM_ENV = "FLUX_PLAYGROUND_TEST_OOM_AT"


def generate_batch(
    pipe: FluxPipeline,
    variant: Variant,
    *,
    prompts: list[str],
    seeds: list[int],
    width: int,
    height: int,
) -> list[PIL.Image.Image]:
    """One call making len(prompts) images, each from its own seeded generator: image i is
    what a batch-1 call with prompts[i] and seeds[i] makes, up to the numerics of batching
    (which the batch-vs-single comparison measures)."""
    shape = f"{width}x{height}:{len(prompts)}"
    if shape in os.environ.get(FAKE_OOM_ENV, "").split(","):
        raise torch.OutOfMemoryError(f"CUDA out of memory (test hook {FAKE_OOM_ENV}={shape})")
    if pipe.transformer.is_cache_enabled:
        # diffusers resets the cache at the end of a call; a call that raised did not get
        # there and would leave its residuals to the next image.
        pipe.transformer._reset_stateful_cache()
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    with torch.inference_mode():
        result = pipe(
            prompt=prompts if len(prompts) > 1 else prompts[0],
            num_inference_steps=variant.steps,
            guidance_scale=variant.guidance,
            max_sequence_length=variant.max_sequence_length,
            width=width,
            height=height,
            # One generator for one image, as before batches existed (same latents).
            generator=generators if len(generators) > 1 else generators[0],
        )
    images: list[PIL.Image.Image] = list(result.images)
    return images


def check_environment(variant: Variant, device: str) -> None:
    """Raise `VariantUnavailable` with a one-line reason if this machine cannot run it.

    Called before anything touches the device: on a machine without CUDA, any CUDA call
    (even resetting memory counters) fails with a raw error instead of this reason.
    """
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
        # The nexfort backend is a package of its own: without it onediffx fails only after
        # the whole pipeline (34 GB for FLUX.1-dev) has been loaded.
        backend = variant.compile.onediff_backend
        needed = ["onediffx"] + (["nexfort"] if backend == "nexfort" else ["oneflow"])
        missing = [name for name in needed if importlib.util.find_spec(name) is None]
        if missing:
            raise VariantUnavailable(
                f"the onediff compile backend ({backend}) needs {' and '.join(missing)}: "
                "pip install 'flux-playground[onediff]'"
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
    # 2. The model, on the CPU: tiny refs are built locally, local paths are relative to the
    # config. What reaches the device, and when, is decided below so that a memory-saving
    # variant never holds the full-precision transformer on the device when it can avoid it.
    pipe = FluxPipeline.from_pretrained(
        _resolve(variant.model, models_dir, config_dir),
        dtype=DTYPES[variant.dtype],
        # On the CPU the weights stay where they are loaded: read them into the process, or
        # the file mapping keeps every original weight resident (and in the peak RSS) even
        # after quantization replaced it. On CUDA the mapping only feeds the copy to the GPU.
        disable_mmap=device == "cpu",
    )
    pipe.set_progress_bar_config(disable=True)

    # 3. LoRA, loaded and fused on the device (fusing FLUX on the CPU took minutes), then
    # unloaded, so inference pays no peft overhead. A LoRA that adapts nothing is an error.
    if variant.lora is not None:
        pipe.transformer.to(device)
        _load_lora(pipe, variant.lora, _resolve(variant.lora.path, models_dir, config_dir))

    # 4. One matmul for q, k and v (and for the text stream's added projections); the unfused
    # projections are dropped, or quantization would process (and keep) them too.
    if variant.fuse_qkv:
        fuse_qkv_projections(pipe.transformer)

    # 5. Quantize the transformer's linear layers (the text encoders and VAE stay as they
    # are). torchao moves each layer to the device just before quantizing it, so a
    # bf16 transformer never sits whole on the GPU; fp8 kernels exist only there.
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
        quantize_(pipe.transformer, config, device=device)

    # 6. Everything else (text encoders, VAE, the transformer's remaining layers).
    pipe.to(device)

    # 7. First-block cache: skip the other blocks while the first block's output barely changes.
    if variant.cache is not None:
        pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=variant.cache.threshold))

    # 8. Compile last, so the graph sees the final modules. Compilation itself happens on the
    # first call, which is why the runner times that call separately. Static shapes unless
    # the config asks: a dynamic graph would time something other than the steady state.
    if variant.compile is not None:
        spec = variant.compile
        if spec.backend == "torch":
            pipe.transformer.compile(mode=spec.mode, fullgraph=spec.fullgraph, dynamic=spec.dynamic)
        else:
            from onediffx import compile_pipe

            pipe = compile_pipe(pipe, backend=spec.onediff_backend)
    return pipe


def fuse_qkv_projections(transformer: torch.nn.Module) -> None:
    """Fuse every attention's q/k/v (and added q/k/v) projections, then drop the originals.

    diffusers keeps the unfused layers (so that it can unfuse); nothing here unfuses, and
    kept, they would double the attention weights in memory and in quantization time.
    """
    transformer.fuse_qkv_projections()  # type: ignore[operator]
    for module in transformer.modules():
        if getattr(module, "fused_projections", False):
            for name in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj"):
                if isinstance(getattr(module, name, None), torch.nn.Module):
                    delattr(module, name)


def _load_lora(pipe: FluxPipeline, lora: LoraSpec, path: str) -> None:
    """Load a LoRA and check that every layer it adapts exists in the pipeline.

    diffusers only logs a warning for keys that match nothing, and a LoRA for another model
    would then load as a no-op: `dev-turbo` would run as plain dev at 8 steps, labelled Turbo.
    """
    state_dict = pipe.lora_state_dict(path, weight_name=lora.weight_name)
    wanted = _lora_layers(state_dict)
    if not wanted:
        raise VariantUnavailable(f"LoRA {lora.path}: no LoRA weights found in the file")
    layers = {
        f"{component}.{name}"
        for component in ("transformer", "text_encoder")
        for name, _ in getattr(pipe, component).named_modules()
    }
    unused = sorted(wanted - layers)
    if len(unused) == len(wanted):
        raise VariantUnavailable(
            f"LoRA {lora.path} matches no layer of {pipe.transformer.__class__.__name__} "
            f"(its first layers: {', '.join(unused[:3])}): a LoRA for another model?"
        )
    if unused:
        raise VariantUnavailable(
            f"LoRA {lora.path}: {len(unused)} of its {len(wanted)} layers match nothing "
            f"in the pipeline (e.g. {', '.join(unused[:3])})"
        )
    pipe.load_lora_weights(dict(state_dict), adapter_name=LORA_ADAPTER)
    if lora.fuse:
        pipe.fuse_lora(lora_scale=lora.scale)
        pipe.unload_lora_weights()
    else:
        pipe.set_adapters(LORA_ADAPTER, adapter_weights=lora.scale)


def _lora_layers(state_dict: dict[str, torch.Tensor]) -> set[str]:
    """The layers a (diffusers-format) LoRA state dict adapts: "transformer.x.attn.to_q"."""
    layers = set()
    for key in state_dict:
        for marker in (".lora_A.", ".lora_B."):
            if marker in key:
                layers.add(key.split(marker)[0])
    return layers


def _resolve(ref: str, models_dir: Path, config_dir: Path) -> str:
    if ref.startswith("tiny:"):
        return tiny.resolve_ref(ref, models_dir)
    return resolve_local(config_dir, ref)
