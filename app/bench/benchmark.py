"""Benchmark configs: load a TOML file, validate it, resolve variant inheritance.

A config names a prompt set, seeds, a resolution, the hardware price and a list of variants.
A variant may name a `base`: it inherits every setting the base has and overrides what it
sets itself; the base is also its *reference* for speed-up and quality comparisons.

Every error is an `InputFileError` that names the file, the line where we can find it, the key
and the reason, so the CLI can print one line and exit.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_serializer,
    model_validator,
)

from app.errors import InputFileError

T = TypeVar("T")
Dtype = Literal["bfloat16", "float16", "float32"]
# How the transformer's linear layers are quantized. Two libraries, applied differently:
# - torchao (`quantize_` on the loaded model, layer by layer onto the device):
#   int8_weight_only, int8_dynamic (int8 activations too), fp8_dynamic, int4_weight_only.
# - bitsandbytes (while loading, through diffusers' PipelineQuantizationConfig, so the
#   full-precision weights never reach the GPU): nf4 (4-bit NormalFloat) and int8, which is
#   bitsandbytes' LLM.int8 (int8 weights, outlier columns in 16-bit), not torchao's
#   int8_weight_only.
QuantizeMode = Literal[
    "int8_weight_only", "int8_dynamic", "fp8_dynamic", "int4_weight_only", "nf4", "int8"
]
# The T5 text encoder (9.5 GB of FLUX.1-dev in bf16), same libraries, same two ways. Weight-only
# modes: the encoder runs once per prompt, so activation quantization would buy no speed.
TextEncoderQuantizeMode = Literal["int8_weight_only", "nf4", "int8"]
BITSANDBYTES_MODES = frozenset({"nf4", "int8"})
# Where the weights wait between uses (diffusers): "model" moves one whole component to the
# GPU when it runs; "sequential" each layer; "group" groups of layers, prefetched on a CUDA
# stream. All keep the weights in CPU memory instead of on the GPU.
OffloadMode = Literal["model", "sequential", "group"]
Device = Literal["cpu", "cuda"]


class StrictModel(BaseModel):
    # Unknown keys are typos more often than not: reject them instead of ignoring them.
    model_config = ConfigDict(extra="forbid", frozen=True)


Pixels = Annotated[int, Field(ge=64, le=4096, multiple_of=16)]
BatchSize = Annotated[int, Field(ge=1, le=64)]
_SIZE = re.compile(r"^\s*(\d+)\s*[x×X]\s*(\d+)\s*$")


class Size(StrictModel):
    """An image size, written "WIDTHxHEIGHT" in a config ("1344x768"); FLUX wants both
    multiples of 16."""

    width: Pixels
    height: Pixels

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            found = _SIZE.match(value)
            if found is None:
                raise ValueError(f"a size is written WIDTHxHEIGHT, e.g. 1024x1024, not {value!r}")
            return {"width": int(found.group(1)), "height": int(found.group(2))}
        return value

    @model_serializer
    def _as_text(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def _no_repeats(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError("values must not repeat")
    return values


SizeList = Annotated[list[Size], Field(min_length=1), AfterValidator(_no_repeats)]
BatchSizeList = Annotated[list[BatchSize], Field(min_length=1), AfterValidator(_no_repeats)]


class LoraSpec(StrictModel):
    path: str = Field(description="Hub id, local .safetensors file/folder, or tiny:<name>")
    weight_name: str | None = None
    scale: Annotated[float, Field(gt=0, le=4)] = 1.0
    fuse: bool = True


class CompileSpec(StrictModel):
    backend: Literal["torch", "onediff"] = "torch"
    # torch.compile options
    mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = (
        "default"
    )
    fullgraph: bool = False
    # False: one static graph per input shape, the steady state a benchmark times, and no
    # silent switch to a dynamic graph when a later call changes a shape. True: dynamic shapes.
    dynamic: bool = False
    # Compile into a new, empty Inductor/Triton cache folder, so compile_s is a cold compile
    # even when an earlier run left cached kernels on this machine.
    fresh_cache: bool = False
    # onediffx.compile_pipe backend
    onediff_backend: Literal["nexfort", "oneflow"] = "nexfort"


class CacheSpec(StrictModel):
    # diffusers FirstBlockCache: skip the remaining blocks when the first block's residual
    # changed by less than this fraction since the previous step.
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.08


# An algorithm as pruna names it ("torch_compile", "fora", "hqq_diffusers"). Whether pruna has
# it, in that group and for the device, the worker asks the installed pruna (it may be
# another release than the one these docs were written against).
AlgorithmList = Annotated[
    list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]], AfterValidator(_no_repeats)
]


class SmashSpec(StrictModel):
    """Pruna's `smash` on the loaded pipeline (app/worker/pruna_backend.py)."""

    compilers: AlgorithmList = []
    quantizers: AlgorithmList = []
    cachers: AlgorithmList = []
    # Hyperparameters, named as pruna does: the algorithm's name, then the parameter's
    # ({ fora_interval = 3, torch_compile_mode = "max-autotune" }).
    options: dict[str, bool | int | float | str] = {}

    @model_validator(mode="after")
    def _check(self) -> SmashSpec:
        if not self.algorithms:
            raise ValueError("smash needs at least one of compilers, quantizers or cachers")
        for option in self.options:
            if not any(option.startswith(f"{name}_") for name in self.algorithms):
                raise ValueError(
                    f"smash option {option!r} belongs to no listed algorithm (an option is "
                    "named <algorithm>_<hyperparameter>, e.g. fora_interval)"
                )
        return self

    @property
    def algorithms(self) -> list[str]:
        return [*self.compilers, *self.quantizers, *self.cachers]


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
    batch_sizes: BatchSizeList = [1]
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


def load_benchmark(path: Path | str) -> Benchmark:
    """Read and validate a benchmark config. Raises InputFileError with file, line and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(path, "config file not found") from None
    except UnicodeDecodeError as err:
        raise InputFileError(path, f"not UTF-8 text ({err.reason})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # Python 3.11's TOMLDecodeError has no lineno attribute; the message carries it.
        message = str(err)
        found = re.search(r"\(at line (\d+), column \d+\)$", message)
        line = int(found.group(1)) if found else None
        reason = message[: found.start()].strip() if found else message
        raise InputFileError(path, f"invalid TOML: {reason}", line=line) from None

    try:
        spec = BenchmarkSpec.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = _dotted(first["loc"])
        raise InputFileError(
            path, _reason(first), line=_locate(text, first["loc"]), key=loc or None
        ) from None

    variants = _resolve_variants(path, text, spec.variants)
    prompts_path = (path.parent / spec.prompts).resolve()
    if not prompts_path.is_file():
        raise InputFileError(
            path,
            f"prompt file not found: {spec.prompts} (looked at {prompts_path})",
            line=_locate(text, ("prompts",)),
            key="prompts",
        )
    sizes = spec.sizes or [Size(width=spec.width, height=spec.height)]
    for index, variant in enumerate(variants):
        _check_variant(path, text, index, variant, spec.device)
        _check_narrowing(path, text, index, variant, sizes, spec.batch_sizes)
    return Benchmark(
        name=spec.name,
        description=spec.description,
        config_path=path.resolve(),
        prompts_path=prompts_path,
        prompt_limit=spec.prompt_limit,
        seeds=spec.seeds,
        width=sizes[0].width,
        height=sizes[0].height,
        sizes=sizes,
        size_prompt_limit=spec.size_prompt_limit,
        batch_sizes=spec.batch_sizes,
        device=spec.device,
        hardware=spec.hardware,
        usd_per_hour=spec.usd_per_hour,
        warmup=spec.warmup,
        repeats=spec.repeats,
        blind=spec.blind,
        arena=spec.arena,
        variants=variants,
    )


def _resolve_variants(path: Path, text: str, specs: list[VariantSpec]) -> list[Variant]:
    by_name = {spec.name: (index, spec) for index, spec in enumerate(specs)}
    resolved: dict[str, Variant] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> Variant:
        if name in resolved:
            return resolved[name]
        index, spec = by_name[name]
        settings: dict[str, Any] = {}
        if spec.base is not None:
            if spec.base not in by_name:
                known = ", ".join(sorted(by_name))
                raise InputFileError(
                    path,
                    f"unknown base variant {spec.base!r} (known: {known})",
                    line=_locate(text, ("variants", index, "base")),
                    key=f"variants[{index}].base",
                )
            if spec.base in chain:
                cycle = " -> ".join((*chain, spec.base))
                raise InputFileError(
                    path,
                    f"variants inherit from each other in a cycle: {cycle}",
                    line=_locate(text, ("variants", index, "base")),
                    key=f"variants[{index}].base",
                )
            parent = resolve(spec.base, (*chain, spec.base))
            # A child inherits its base's settings, but not its name, description or base.
            settings = parent.model_dump(exclude={"name", "description", "base"})
        settings.update(spec.model_dump(exclude_unset=True))
        for required in ("model", "steps"):
            if settings.get(required) is None:
                raise InputFileError(
                    path,
                    f"variant {spec.name!r} has no {required} (set it, or a base that has one)",
                    line=_locate(text, ("variants", index, "name")),
                    key=f"variants[{index}].{required}",
                )
        variant = Variant.model_validate(settings)
        resolved[name] = variant
        return variant

    return [resolve(spec.name, (spec.name,)) for spec in specs]


def _check_variant(path: Path, text: str, index: int, variant: Variant, device: Device) -> None:
    """Settings that are each valid alone but impossible together, or a model that is missing."""

    def fail(key: str, reason: str) -> None:
        raise InputFileError(
            path,
            reason,
            line=_locate(text, ("variants", index, key)) or _locate(text, ("variants", index)),
            key=f"variants[{index}].{key}",
        )

    if variant.model.startswith("tiny:"):
        if variant.model not in ("tiny:schnell", "tiny:dev"):
            fail("model", f"unknown tiny model {variant.model!r} (tiny:schnell or tiny:dev)")
    elif _looks_local(variant.model):
        local = (path.parent / variant.model).resolve()
        if not (local / "model_index.json").is_file():
            fail("model", f"model folder not found or not a diffusers pipeline: {local}")
    elif not re.fullmatch(r"[\w.-]+/[\w.-]+", variant.model):
        fail("model", f"not a Hub id (owner/name) nor a local path: {variant.model!r}")
    if variant.lora is not None and variant.lora.path.startswith("tiny:"):
        if variant.lora.path != "tiny:turbo-lora":
            fail("lora", f"unknown tiny LoRA {variant.lora.path!r} (tiny:turbo-lora)")
    elif variant.lora is not None and _looks_local(variant.lora.path):
        local = (path.parent / variant.lora.path).resolve()
        if not local.exists():
            fail("lora", f"LoRA file not found: {local}")
    if variant.fuse_qkv and variant.lora is not None and not variant.lora.fuse:
        # Fusing the projections copies the base weights and would drop an unfused LoRA.
        fail("fuse_qkv", "fuse_qkv needs the LoRA fused (lora.fuse = true)")
    if variant.cache is not None and variant.compile is not None and variant.compile.fullgraph:
        # The cache decides per step whether to run the blocks: a graph break by design.
        fail("cache", "the first-block cache cannot be compiled with fullgraph = true")
    if device == "cpu" and variant.dtype == "float16":
        fail("dtype", "float16 is not supported on the CPU; use float32 or bfloat16")
    if variant.compile is not None and variant.compile.backend == "onediff" and device == "cpu":
        fail("compile", "the onediff backend needs device = 'cuda'")
    _check_memory_options(variant, device, fail)
    if variant.gguf is not None:
        _check_gguf(path, variant, fail)
    if variant.smash is not None:
        _check_smash(variant, fail)


TINY_GGUFS = {"tiny:schnell-q8": "tiny:schnell"}  # each tiny GGUF and the model it is from
_HUB_FILE = re.compile(r"^(https://(huggingface\.co|hf\.co)/)?[\w.-]+/[\w.-]+/.+$")


def _check_gguf(path: Path, variant: Variant, fail: Callable[[str, str], None]) -> None:
    """The GGUF file exists (when local) and nothing else quantizes or rewrites its weights."""
    ref = str(variant.gguf)
    if ref.startswith("tiny:"):
        if ref not in TINY_GGUFS:
            fail("gguf", f"unknown tiny GGUF {ref!r} ({', '.join(TINY_GGUFS)})")
        if variant.model != TINY_GGUFS[ref]:
            fail(
                "gguf", f"{ref} is {TINY_GGUFS[ref]}'s transformer: set model = {TINY_GGUFS[ref]!r}"
            )
    elif not ref.endswith(".gguf"):
        fail("gguf", f"not a .gguf file: {ref!r}")
    elif _looks_local(ref):
        local = (path.parent / ref).expanduser().resolve()
        if not local.is_file():
            fail("gguf", f"GGUF file not found: {local}")
    elif not _HUB_FILE.match(ref):
        fail(
            "gguf", f"not a local path (./, ../, /) nor a Hub file (owner/repo/file.gguf): {ref!r}"
        )
    if variant.quantize is not None:
        fail(
            "gguf",
            f"the GGUF transformer is quantized already: remove quantize ({variant.quantize})",
        )
    if variant.fuse_qkv:
        # diffusers' fuse concatenates the packed GGUF bytes into a plain Linear.
        fail("gguf", "fuse_qkv cannot fuse GGUF weights: remove fuse_qkv")
    if variant.lora is not None and variant.lora.fuse:
        # Fusing adds the LoRA into the weights; GGUF weights are packed and read-only.
        fail("gguf", "a LoRA cannot be fused into GGUF weights: set lora.fuse = false")
    if variant.smash is not None and variant.smash.quantizers:
        fail("gguf", "the GGUF transformer is quantized already: remove smash.quantizers")


def _check_smash(variant: Variant, fail: Callable[[str, str], None]) -> None:
    """One tool per job: pruna's algorithms do not stack with the same kind of option here."""
    smash = variant.smash
    assert smash is not None
    for group, own, key in (
        ("compilers", variant.compile, "compile"),
        ("quantizers", variant.quantize, "quantize"),
        ("cachers", variant.cache, "cache"),
    ):
        if getattr(smash, group) and own is not None:
            fail("smash", f"smash.{group} and {key} do the same job: set one of them")


def _check_memory_options(
    variant: Variant, device: Device, fail: Callable[[str, str], None]
) -> None:
    """Quantization and offloading settings that cannot work together, or not on `device`.

    A component never gets a bitsandbytes and a torchao mode at once: `quantize` is the
    transformer's one mode and `text_encoder_quantize` the T5 encoder's, and the two may
    come from different libraries (each quantizes only its own component).
    """
    quantize, offload = variant.quantize, variant.offload
    torchao = quantize is not None and quantize not in BITSANDBYTES_MODES
    if offload is not None and device == "cpu":
        # Offloading keeps weights in CPU memory and moves them to the GPU as they are used:
        # on the CPU there is nowhere to move them.
        fail("offload", f"offload = '{offload}' needs device = 'cuda'")
    if offload == "sequential" and variant.compile is not None:
        # accelerate's hooks bring every layer's weights in from the CPU at each call, layer
        # by layer: nothing torch.compile can make one graph of. diffusers compiles with
        # model and group offloading only.
        fail("offload", "sequential offload cannot be compiled; use offload = 'model' or 'group'")
    if torchao and offload is not None and variant.compile is not None:
        # Offloading moves weights with module.to(), which cannot swap a torchao tensor inside
        # a compiled module ("_apply(): Couldn't swap Linear.weight"): diffusers skips its
        # torchao compile-with-offload tests for that.
        fail("offload", f"a torchao mode ({quantize}) with offload cannot be compiled")
    if quantize in BITSANDBYTES_MODES and variant.fuse_qkv:
        # bitsandbytes quantizes while loading, so the fuse would concatenate packed 4-bit /
        # int8 weights into a plain Linear. torchao modes quantize after the fuse and work.
        fail(
            "fuse_qkv",
            f"fuse_qkv cannot fuse bitsandbytes weights (quantize = '{quantize}' packs them "
            "while loading); use a torchao mode such as int8_weight_only",
        )
    if quantize == "int4_weight_only" and device == "cuda" and variant.dtype != "bfloat16":
        # torchao's CUDA int4 kernel (tinygemm) takes bfloat16 weights only.
        fail("quantize", "int4_weight_only on CUDA needs dtype = 'bfloat16'")


def _check_narrowing(
    path: Path, text: str, index: int, variant: Variant, sizes: list[Size], batches: list[int]
) -> None:
    """A variant's sizes and batch sizes narrow the benchmark's; they cannot add to them."""
    for key, own, allowed, show in (
        ("sizes", variant.sizes, sizes, lambda s: s.label),
        ("batch_sizes", variant.batch_sizes, batches, str),
    ):
        extra = [show(v) for v in own or () if v not in allowed]
        if extra:
            raise InputFileError(
                path,
                f"variant {variant.name!r} lists {key} the benchmark does not: "
                f"{', '.join(extra)} (the benchmark's: {', '.join(show(v) for v in allowed)})",
                line=_locate(text, ("variants", index, key)) or _locate(text, ("variants", index)),
                key=f"variants[{index}].{key}",
            )


def _looks_local(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~"))


def resolve_local(config_dir: Path, ref: str) -> str:
    """A local model/LoRA path relative to the config's folder; Hub ids and tiny: refs unchanged."""
    if _looks_local(ref):
        return str((config_dir / Path(ref).expanduser()).resolve())
    return ref


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _reason(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _locate(text: str, loc: tuple[int | str, ...]) -> int | None:
    """Best-effort line number of a key in a TOML text (tomllib gives none).

    Handles the shapes our configs use: top-level keys, and keys of the N-th `[[variants]]`
    table (inline tables or `[variants.lora]` sub-tables count as part of that variant).
    """
    lines = text.splitlines()
    start, end = 0, len(lines)
    parts = list(loc)
    if len(parts) >= 2 and parts[0] == "variants" and isinstance(parts[1], int):
        headers = [i for i, line in enumerate(lines) if line.strip().startswith("[[variants]]")]
        if parts[1] >= len(headers):
            return None
        start = headers[parts[1]]
        following = [i for i in headers if i > start]
        end = following[0] if following else len(lines)
        parts = parts[2:]
        if not parts:
            return start + 1
    else:
        # Top-level keys come before the first table header.
        tables = [i for i, line in enumerate(lines) if line.strip().startswith("[")]
        end = tables[0] if tables else len(lines)
    key = next((p for p in parts if isinstance(p, str)), None)
    if key is None:
        return start + 1 if start else None
    pattern = re.compile(rf"^\s*(\[+\s*)?[\w.]*\b{re.escape(key)}\b\s*(=|\])")
    for i in range(start, end):
        if pattern.match(lines[i]):
            return i + 1
    return start + 1 if start else None
