"""Variant config -> ready diffusers `FluxPipeline`: LoRA, fused QKV, quantization, cache, compile.

`load_pipeline` checks the environment first, so a variant that cannot run here (no CUDA, no
onediffx, no fp8-capable GPU) fails at load time with a reason a user can read, and the rest of
the benchmark goes on. `generate` makes one image, the same for the same seed on the same setup.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import diffusers
import PIL.Image
import torch
from diffusers.hooks import FirstBlockCacheConfig

# From its module: for a type checker, `diffusers.FluxPipeline` is a no-torch placeholder.
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline
from diffusers.quantizers import PipelineQuantizationConfig
from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from app.bench.benchmark import BITSANDBYTES_MODES, LoraSpec, Variant, resolve_local
from app.worker import gguf, pruna_backend, tiny
from app.worker.unavailable import VariantUnavailable

# The worker draws its own progress bars; the libraries' per-load bars would bury them.
# (Their log level is set in app/worker/__init__.py, before they are imported: that also
# hides per-prompt notices such as CLIP's 77-token truncation, expected with FLUX prompts.)
diffusers_logging.disable_progress_bar()
transformers_logging.disable_progress_bar()
# bitsandbytes' LLM.int8 logs at every call that it multiplies float32 inputs in float16
# (the CPU tests' dtype): known, and not news at every step.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
LORA_ADAPTER = "lora"


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
    _check_memory_options(variant, device)
    if variant.quantize == "fp8_dynamic":
        capability = torch.cuda.get_device_capability() if device == "cuda" else None
        if capability is None or capability < (8, 9):
            found = f"compute capability {capability[0]}.{capability[1]}" if capability else "CPU"
            raise VariantUnavailable(
                "fp8_dynamic quantization needs a CUDA GPU with compute capability >= 8.9 "
                f"(Ada, Hopper or newer), not {found}"
            )
    if variant.gguf is not None and importlib.util.find_spec("gguf") is None:
        raise VariantUnavailable("gguf needs the gguf package: pip install -e '.[worker]'")
    if variant.smash is not None:
        pruna_backend.check_environment(variant.smash, device)


def _check_memory_options(variant: Variant, device: str) -> None:
    """The quantization and offload modes this machine cannot run, before any weight loads."""
    bitsandbytes = [
        mode
        for mode in (variant.quantize, variant.text_encoder_quantize)
        if mode in BITSANDBYTES_MODES
    ]
    if bitsandbytes and importlib.util.find_spec("bitsandbytes") is None:
        raise VariantUnavailable(
            f"bitsandbytes is not installed (needed by {bitsandbytes[0]}): "
            "pip install -e '.[worker,bitsandbytes]'"
        )
    if variant.quantize in BITSANDBYTES_MODES and device != "cuda":
        # bitsandbytes itself has a CPU backend (the T5 encoder's modes run there, through
        # transformers), but diffusers' quantizer refuses to load without a GPU ("No GPU found").
        raise VariantUnavailable(
            f"quantize = '{variant.quantize}' (bitsandbytes) needs a CUDA GPU: diffusers "
            f"{diffusers.__version__} quantizes a transformer with bitsandbytes only on a GPU"
        )
    if variant.offload is not None and device != "cuda":
        raise VariantUnavailable(
            f"offload = '{variant.offload}' needs a CUDA GPU: it keeps the weights in CPU "
            "memory and moves them to the GPU as they are used"
        )
    if variant.quantize == "int4_weight_only" and device == "cuda":
        capability = torch.cuda.get_device_capability()
        if capability < (8, 0):
            raise VariantUnavailable(
                "int4_weight_only needs compute capability >= 8.0 on CUDA (torchao's tinygemm "
                f"int4 kernel), not {capability[0]}.{capability[1]}"
            )


def _load(variant: Variant, *, device: str, models_dir: Path, config_dir: Path) -> FluxPipeline:
    # 2. The model, on the CPU: tiny refs are built locally, local paths are relative to the
    # config. What reaches the device, and when, is decided below so that a memory-saving
    # variant never holds the full-precision transformer on the device when it can avoid it.
    # The bitsandbytes modes quantize here, each weight as it is read (diffusers places a
    # bitsandbytes model on the GPU as it loads it, already quantized).
    pipe = FluxPipeline.from_pretrained(
        _resolve(variant.model, models_dir, config_dir),
        dtype=DTYPES[variant.dtype],
        # On the CPU the weights stay where they are loaded: read them into the process, or
        # the file mapping keeps every original weight resident (and in the peak RSS) even
        # after quantization replaced it. On CUDA the mapping only feeds the copy to the GPU.
        disable_mmap=device == "cpu",
        quantization_config=_bitsandbytes_config(variant),
        # A GGUF variant's transformer comes from its file: the model's is not even downloaded.
        **_gguf_transformer(variant, models_dir, config_dir),
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

    # 5. torchao modes: quantize the transformer's (and the T5 encoder's) linear layers; CLIP
    # and the VAE stay as they are. torchao moves each layer to the device just before
    # quantizing it, so a bf16 transformer never sits whole on the GPU; fp8 kernels exist
    # only there.
    if variant.quantize is not None and variant.quantize not in BITSANDBYTES_MODES:
        torchao_quantize(pipe.transformer, variant.quantize, device)
    if variant.text_encoder_quantize == "int8_weight_only":
        torchao_quantize(pipe.text_encoder_2, variant.text_encoder_quantize, device)

    # 6. Everything else to the device (text encoders, VAE, the transformer's remaining
    # layers), or, offloaded, each component or layer only while it runs.
    if variant.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif variant.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    elif variant.offload == "group":
        # Group offloading starts from weights in CPU memory (the other two move them there
        # themselves). Leaf level, on a CUDA stream: the next layers' weights are copied in
        # while the current one computes, diffusers' advice for speed.
        pipe.to("cpu")
        pipe.enable_group_offload(
            onload_device=torch.device(device), offload_type="leaf_level", use_stream=True
        )
    else:
        pipe.to(device)
    if variant.vae_tiling:
        pipe.vae.enable_tiling()
    if variant.vae_slicing:
        pipe.vae.enable_slicing()

    # 7. First-block cache: skip the other blocks while the first block's output barely changes.
    if variant.cache is not None:
        pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=variant.cache.threshold))

    # 8. Compile last, so the graph sees the final modules. Compilation itself happens on the
    # first call, which is why the runner times that call separately. Static shapes unless
    # the config asks: a dynamic graph would time something other than the steady state.
    if variant.compile is not None:
        spec = variant.compile
        if spec.backend == "torch":
            if variant.quantize in BITSANDBYTES_MODES:
                # bitsandbytes layers make tensors whose shape depends on the data (diffusers'
                # advice for compiling them); this process is this variant's alone.
                torch._dynamo.config.capture_dynamic_output_shape_ops = True
            pipe.transformer.compile(mode=spec.mode, fullgraph=spec.fullgraph, dynamic=spec.dynamic)
        else:
            from onediffx import compile_pipe

            pipe = compile_pipe(pipe, backend=spec.onediff_backend)

    # 9. Pruna's smash, last like compile: its compilers and cachers see the final modules.
    # The variant then calls pruna's wrapper of the pipeline (app/worker/pruna_backend.py).
    if variant.smash is not None:
        pipe = pruna_backend.smash(pipe, variant.smash, device)
    return pipe


def _bitsandbytes_config(variant: Variant) -> PipelineQuantizationConfig | None:
    """The bitsandbytes modes as diffusers applies them while loading: diffusers' config for
    the transformer, transformers' for the T5 encoder (each library loads its own models)."""
    mapping: dict[str, Any] = {}
    if variant.quantize in BITSANDBYTES_MODES:
        from diffusers.quantizers.quantization_config import BitsAndBytesConfig

        mapping["transformer"] = BitsAndBytesConfig(
            **_bitsandbytes_settings(variant.quantize, variant)
        )
    if variant.text_encoder_quantize in BITSANDBYTES_MODES:
        from transformers import BitsAndBytesConfig as TransformersBitsAndBytesConfig

        mapping["text_encoder_2"] = TransformersBitsAndBytesConfig(
            **_bitsandbytes_settings(variant.text_encoder_quantize, variant)
        )
    return PipelineQuantizationConfig(quant_mapping=mapping) if mapping else None


def _bitsandbytes_settings(mode: str, variant: Variant) -> dict[str, Any]:
    if mode == "nf4":
        # 4-bit NormalFloat weights, computing in the variant's dtype: diffusers' FLUX recipe.
        return {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_compute_dtype": DTYPES[variant.dtype],
        }
    # LLM.int8: int8 weights, and the activation columns with outliers (above the default
    # threshold, 6.0) multiplied in 16-bit.
    return {"load_in_8bit": True}


def torchao_quantize(module: torch.nn.Module, mode: str, device: str) -> None:
    """Quantize a module's linear layers in place with torchao, each moved to `device` first."""
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Int8DynamicActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
        quantize_,
    )

    if mode == "int4_weight_only":
        _int4_quantize(module, device)
        return
    config = {
        "int8_weight_only": Int8WeightOnlyConfig,
        "int8_dynamic": Int8DynamicActivationInt8WeightConfig,
        "fp8_dynamic": Float8DynamicActivationFloat8WeightConfig,
    }[mode]()
    quantize_(module, config, device=device)


# int4 quantizes each row in groups of weights, each group with its own scale and zero point.
# 128 is torchao's default; a layer whose input width 128 does not divide takes the largest
# of 64 and 32 that does: FLUX's 64-wide x_embedder, and most layers of the tiny pipelines
# (32 or 160 wide), which one group size of 128 would leave unquantized. A width none of
# them divides stays as it is.
INT4_GROUP_SIZES = (128, 64, 32)


def int4_group_size(in_features: int) -> int | None:
    return next((size for size in INT4_GROUP_SIZES if in_features % size == 0), None)


def _int4_quantize(module: torch.nn.Module, device: str) -> None:
    from torchao.prototype.quantization.int4 import PrototypeInt4WeightOnlyConfig
    from torchao.quantization import Int4WeightOnlyConfig, quantize_

    for size in INT4_GROUP_SIZES:
        config: Int4WeightOnlyConfig | PrototypeInt4WeightOnlyConfig
        if device == "cuda":
            # tinygemm, the int4 kernel in torch itself ("plain" would need the mslk package).
            config = Int4WeightOnlyConfig(group_size=size, int4_packing_format="tile_packed_to_4d")
        else:
            # torchao 0.18's CPU int4 kernel (aten._weight_int4pack_mm_for_cpu) is reached
            # through its prototype config: Int4WeightOnlyConfig's packing formats are for
            # CUDA, XPU and NPU only (its CPU "opaque" format moved there).
            config = PrototypeInt4WeightOnlyConfig(group_size=size)

        def this_size(layer: torch.nn.Module, _name: str, size: int = size) -> bool:
            return isinstance(layer, torch.nn.Linear) and int4_group_size(layer.in_features) == size

        quantize_(module, config, filter_fn=this_size, device=device)


def parameter_bytes(module: torch.nn.Module) -> int:
    """The bytes a module's parameters and buffers take, looking inside torchao's quantized
    tensors (whose own numel * element_size is the float size they stand for)."""

    def size(tensor: torch.Tensor) -> int:
        if hasattr(tensor, "__tensor_flatten__"):
            names, _ = tensor.__tensor_flatten__()
            return sum(size(getattr(tensor, name)) for name in names)
        return tensor.numel() * tensor.element_size()

    return sum(size(t) for t in (*module.parameters(), *module.buffers()))


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


def _gguf_transformer(variant: Variant, models_dir: Path, config_dir: Path) -> dict[str, Any]:
    if variant.gguf is None:
        return {}
    model = _resolve(variant.model, models_dir, config_dir)
    return {
        "transformer": gguf.load_transformer(
            variant.gguf,
            model=model,
            dtype=DTYPES[variant.dtype],
            models_dir=models_dir,
            config_dir=config_dir,
        )
    }


def _resolve(ref: str, models_dir: Path, config_dir: Path) -> str:
    if ref.startswith("tiny:"):
        return tiny.resolve_ref(ref, models_dir)
    return resolve_local(config_dir, ref)
