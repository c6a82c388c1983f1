"""A benchmark config resolved: each variant's full settings (inheritance followed), the
benchmark's sizes, batch sizes and prompt path, and its fingerprint (what makes a rerun
resume the same run).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

from app.bench.benchmark.options import (
    CacheSpec,
    CompileSpec,
    Device,
    Dtype,
    LoraSpec,
    OffloadMode,
    QuantizeMode,
    Size,
    SmashSpec,
    StrictModel,
    TextEncoderQuantizeMode,
)

T = TypeVar("T")


class Variant(StrictModel):
    """A variant with inheritance resolved: the full set of settings that made its images."""

    name: str
    description: str = ""
    base: str | None = None
    model: str
    steps: int
    guidance: float = 3.5
    max_sequence_length: int = 512
    dtype: Dtype = "bfloat16"
    lora: LoraSpec | None = None
    compile: CompileSpec | None = None
    quantize: QuantizeMode | None = None
    text_encoder_quantize: TextEncoderQuantizeMode | None = None
    offload: OffloadMode | None = None
    vae_tiling: bool = False
    vae_slicing: bool = False
    cache: CacheSpec | None = None
    fuse_qkv: bool = False
    gguf: str | None = None
    smash: SmashSpec | None = None
    # None: every size / batch size of the benchmark (Benchmark.sizes_of / batch_sizes_of).
    sizes: list[Size] | None = None
    batch_sizes: list[int] | None = None

    @property
    def optimizations(self) -> dict[str, Any]:
        """The speed-related settings, for display and for storing beside each image."""
        return {
            "compile": self.compile.model_dump() if self.compile else None,
            "quantize": self.quantize,
            "cache": self.cache.model_dump() if self.cache else None,
            "fuse_qkv": self.fuse_qkv,
            "text_encoder_quantize": self.text_encoder_quantize,
            "offload": self.offload,
            "vae_tiling": self.vae_tiling,
            "vae_slicing": self.vae_slicing,
            "gguf": self.gguf,
            "smash": self.smash.model_dump() if self.smash else None,
        }


class Benchmark(StrictModel):
    """A validated config: the spec's settings plus resolved variants and the prompt path."""

    name: str
    description: str
    config_path: Path
    prompts_path: Path
    prompt_limit: int | None
    seeds: list[int]
    width: int  # the main size: sizes[0]
    height: int
    sizes: list[Size]
    size_prompt_limit: int | None = None
    batch_sizes: list[int]
    device: Device
    hardware: str
    usd_per_hour: float
    warmup: int
    repeats: int
    blind: bool
    arena: str
    variants: list[Variant]

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    def sizes_of(self, variant: Variant) -> list[Size]:
        """The sizes a variant makes images and series at, in the benchmark's order."""
        return narrowed(self.sizes, variant.sizes)

    def batch_sizes_of(self, variant: Variant) -> list[int]:
        return narrowed(self.batch_sizes, variant.batch_sizes)

    def prompts_at(self, size: Size, prompts: list[T]) -> list[T]:
        """The prompts that get images at `size`: all at the main size, the first
        size_prompt_limit at the others."""
        if size == self.sizes[0] or self.size_prompt_limit is None:
            return prompts
        return prompts[: self.size_prompt_limit]

    @property
    def is_single_shape(self) -> bool:
        """One size at batch 1, as every config was before sizes and batch sizes."""
        return len(self.sizes) == 1 and self.batch_sizes == [1]

    def fingerprint(self) -> str:
        """Hash of everything that changes the images or the timings, the hardware included
        (a cost is only computed for the hardware its latency was measured on); not the price,
        which may change without invalidating the measurements."""
        payload = self.model_dump(
            mode="json", exclude={"config_path", "usd_per_hour", "blind", "arena"}
        )
        payload["prompts_path"] = self.prompts_path.name
        # A config of one size at batch 1 keeps the fingerprint it had before sizes and batch
        # sizes existed: rerunning it resumes its run instead of starting a new one.
        if self.is_single_shape:
            del payload["sizes"], payload["batch_sizes"]
        if self.size_prompt_limit is None:
            del payload["size_prompt_limit"]
        for variant in payload["variants"]:
            for key in ("sizes", "batch_sizes"):
                if variant[key] is None:
                    del variant[key]
            # Likewise the memory options: a config that sets none keeps its fingerprint.
            for key in ("text_encoder_quantize", "offload", "vae_tiling", "vae_slicing"):
                if not variant[key]:
                    del variant[key]
            for key in ("gguf", "smash"):  # the same for these
                if variant[key] is None:
                    del variant[key]
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def shapes_of_run(
    config: dict[str, Any], width: int, height: int, variant: Variant
) -> tuple[list[Size], list[int]]:
    """A stored run's sizes and batch sizes for one of its variants (narrowed as the variant
    says). `config` is the run's stored Benchmark JSON; a run stored before sizes existed
    had one size, width x height, at batch 1."""
    sizes = [Size.model_validate(s) for s in config.get("sizes") or [f"{width}x{height}"]]
    batches = list(config.get("batch_sizes") or [1])
    return narrowed(sizes, variant.sizes), narrowed(batches, variant.batch_sizes)


def narrowed(values: list[T], own: list[T] | None) -> list[T]:
    """The benchmark's values a variant keeps, in the benchmark's order (None: all)."""
    return [v for v in values if own is None or v in own]
