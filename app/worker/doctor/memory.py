"""Device memory per variant: an estimate from public file sizes, following the order in
which the worker loads a variant, checked against free GPU memory (or RAM on the CPU)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.bench.benchmark import Benchmark, Variant
from app.worker.doctor.check import Check, Status
from app.worker.doctor.figures import (
    ACTIVATION_GB_PER_MEGAPIXEL,
    DTYPE_FACTOR,
    FLUX_CLIP_VAE_GB,
    FLUX_MODELS,
    FLUX_T5_GB,
    FLUX_TRANSFORMER_GB,
    LORA_GB,
    MEGAPIXEL,
    QUANTIZED_FACTOR,
    TINY_GB,
)
from app.worker.doctor.machine import TorchFacts


@dataclass(frozen=True)
class MemoryEstimate:
    load_gb: float  # the peak while loading, before the first image
    steady_gb: float  # the weights as they stay, plus the activation allowance
    activation_gb: float
    load_why: str = ""  # why loading needs more than generating, when it does
    offload: str | None = None

    @property
    def peak_gb(self) -> float:
        return max(self.load_gb, self.steady_gb)


def estimate_memory(variant: Variant, width: int, height: int) -> MemoryEstimate | None:
    """Device memory one variant needs, from public file sizes; None for an unknown model.

    Follows the order in which `app.worker.pipelines` loads a variant: the LoRA is loaded and
    fused with the whole transformer on the device; torchao quantizes layer by layer onto
    the device and bitsandbytes while loading, so without a LoRA the unquantized transformer
    never sits there whole. Offloaded, only the largest component is on the GPU at a time.
    """
    if variant.model.startswith("tiny:"):
        return MemoryEstimate(load_gb=TINY_GB, steady_gb=TINY_GB, activation_gb=0.0)
    if variant.model not in FLUX_MODELS:
        return None
    factor = DTYPE_FACTOR[variant.dtype]
    transformer = FLUX_TRANSFORMER_GB * factor
    t5 = FLUX_T5_GB * factor
    clip_vae = FLUX_CLIP_VAE_GB * factor
    lora = LORA_GB * factor if variant.lora is not None else 0.0
    # A quantized component keeps its mode's bytes per weight, whatever the dtype; a GGUF
    # transformer its file's (and the model's own transformer never loads).
    if variant.gguf is not None:
        kept = FLUX_TRANSFORMER_GB * gguf_factor(variant.gguf)
    elif variant.quantize:
        kept = FLUX_TRANSFORMER_GB * QUANTIZED_FACTOR[variant.quantize]
    else:
        kept = transformer
    kept_t5 = (
        FLUX_T5_GB * QUANTIZED_FACTOR[variant.text_encoder_quantize]
        if variant.text_encoder_quantize
        else t5
    )
    # A fused LoRA is merged into the weights and unloaded; an unfused one stays beside them.
    adapter = lora if variant.lora is not None and not variant.lora.fuse else 0.0
    fusing = transformer + lora if variant.lora is not None else 0.0
    if variant.offload is None:
        weights = kept + adapter + kept_t5 + clip_vae
        load = max(fusing, weights)
        why = "LoRA fused before quantizing"
    else:
        # The weights wait in CPU memory; on the GPU, the component that runs: at most the
        # largest (model offloading; sequential and group offloading hold less, so for them
        # this is an upper bound). While loading, what is quantized on the GPU (torchao onto
        # the device, bitsandbytes as it loads) stays there until the offload takes it out.
        weights = max(kept + adapter, kept_t5, clip_vae)
        on_gpu = (kept if variant.quantize else 0.0) + (
            kept_t5 if variant.text_encoder_quantize else 0.0
        )
        load = max(fusing, on_gpu)
        why = (
            "LoRA fused before offloading"
            if fusing >= on_gpu
            else "quantized on the GPU before offloading"
        )
    activations = ACTIVATION_GB_PER_MEGAPIXEL * width * height / MEGAPIXEL
    return MemoryEstimate(
        load_gb=load,
        steady_gb=weights + activations,
        activation_gb=activations,
        load_why=why,
        offload=variant.offload,
    )


def gguf_factor(ref: str) -> float:
    """A GGUF transformer's bytes against bf16's, from the quantization its file name says
    (city96's files: Q8_0, Q6_K, Q5_K_S, Q4_0, ...): n bits per weight plus ~0.5 for the
    block scales; F16/BF16 files are bf16's size; an unnamed one is counted as bf16."""
    found = re.search(r"[-_.]Q(\d)(?:_|\.|$)", ref, flags=re.IGNORECASE)
    return (int(found.group(1)) + 0.5) / 16 if found else 1.0


def _describe(estimate: MemoryEstimate, size: str) -> str:
    offload = f" ({estimate.offload} offload)" if estimate.offload else ""
    if estimate.load_gb > estimate.steady_gb:
        return (
            f"needs ~{estimate.load_gb:.1f} GB while loading ({estimate.load_why}), "
            f"~{estimate.steady_gb:.1f} GB at {size} after{offload}"
        )
    return f"needs ~{estimate.peak_gb:.1f} GB at {size}{offload}"


def check_memory(bench: Benchmark, facts: TorchFacts, ram_gb: float) -> list[Check]:
    """One row per variant: its estimated need against free GPU memory (or free RAM on the
    CPU). The worker loads one variant at a time, so each must fit alone."""
    rows = []
    size = f"{bench.width}x{bench.height}"
    for variant in bench.variants:
        name = f"memory: {variant.name}"
        estimate = estimate_memory(variant, bench.width, bench.height)
        if estimate is None:
            rows.append(Check(name, Status.SKIP, f"unknown model: no estimate ({variant.model})"))
            continue
        need = _describe(estimate, size)
        if bench.device == "cpu":
            free, where = ram_gb, "RAM available"
        elif facts.gpu is None:
            rows.append(Check(name, Status.FAIL, f"no CUDA GPU; {need}"))
            continue
        else:
            free, where = facts.gpu.free_gb, "free on the GPU"
        status = Status.OK if estimate.peak_gb <= free else Status.FAIL
        rows.append(Check(name, status, f"{need}; {free:.1f} GB {where}"))
    return rows
