"""A benchmark config as written in its TOML file: every key checked for type and range,
variants still unresolved (everything optional except the name, `base` not yet followed).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from app.bench.benchmark.options import (
    BatchSizeList,
    CacheSpec,
    CompileSpec,
    Device,
    Dtype,
    LoraSpec,
    OffloadMode,
    Pixels,
    QuantizeMode,
    SizeList,
    SmashSpec,
    StrictModel,
    TextEncoderQuantizeMode,
)


class VariantSpec(StrictModel):
    """A variant as written in the file: everything optional except the name."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    description: str = ""
    base: str | None = None
    model: str | None = None
    steps: Annotated[int, Field(ge=1, le=200)] | None = None
    guidance: Annotated[float, Field(ge=0, le=30)] | None = None
    max_sequence_length: Annotated[int, Field(ge=1, le=512)] | None = None
    dtype: Dtype | None = None
    lora: LoraSpec | None = None
    compile: CompileSpec | None = None
    quantize: QuantizeMode | None = None
    text_encoder_quantize: TextEncoderQuantizeMode | None = None
    offload: OffloadMode | None = None
    # Decode the image in overlapping tiles / one image of a batch at a time: less VAE
    # memory at large sizes and batches.
    vae_tiling: bool | None = None
    vae_slicing: bool | None = None
    cache: CacheSpec | None = None
    fuse_qkv: bool | None = None
    # The transformer from a GGUF file: local path (relative to the config), Hub file or tiny:.
    gguf: str | None = None
    smash: SmashSpec | None = None
    # A subset of the benchmark's sizes / batch sizes (a variant that is only meant for some).
    sizes: SizeList | None = None
    batch_sizes: BatchSizeList | None = None


class BenchmarkSpec(StrictModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    description: str = ""
    prompts: str = Field(description="prompt TSV, relative to the config file")
    prompt_limit: Annotated[int, Field(ge=1)] | None = None
    seeds: Annotated[list[Annotated[int, Field(ge=0, lt=2**63)]], Field(min_length=1)]
    width: Pixels = 1024
    height: Pixels = 1024
    # Several sizes instead of width/height: images at each, the first is the main one
    # (the one pages show first and the arena, speed-ups and costs use).
    sizes: SizeList | None = None
    # Images at the sizes after the first for the first N prompts only (a big size costs
    # more per image; the main size keeps every prompt). None: every prompt at every size.
    size_prompt_limit: Annotated[int, Field(ge=1)] | None = None
    # The steady-state series runs at each size and batch size (images stay at batch 1).
    batch_sizes: BatchSizeList = [1]  # noqa: RUF012 (a pydantic field, copied per model)
    device: Device = "cuda"
    hardware: str = Field(description="what the latency is measured on, e.g. 'NVIDIA H100 80GB'")
    usd_per_hour: Annotated[float, Field(ge=0)]
    warmup: Annotated[int, Field(ge=0, le=100)] = 2
    repeats: Annotated[int, Field(ge=1, le=1000)] = 10
    # Keep the images behind the admin token until an admin publishes the run (a blind
    # arena): changes no image or timing, so not part of the run's fingerprint.
    blind: bool = False
    # "open": anyone may vote; "panels": a panel study, invited raters only (and only their
    # votes count). Changes no image or timing: not part of the fingerprint either.
    arena: Literal["open", "panels"] = "open"
    variants: Annotated[list[VariantSpec], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> BenchmarkSpec:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must not repeat")
        if self.sizes is not None and {"width", "height"} & self.model_fields_set:
            raise ValueError("set either sizes or width/height, not both")
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variant names must be unique, repeated: {', '.join(dupes)}")
        return self
