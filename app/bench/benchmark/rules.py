"""The cross-field rules of a resolved variant: settings that are each valid alone but
impossible together or on the benchmark's device, models and files that are missing, and
sizes or batch sizes a variant adds instead of narrowing. Each failure is an InputFileError
at the variant's line and key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from app.bench.benchmark.options import BITSANDBYTES_MODES, Device, Size
from app.bench.benchmark.paths import looks_local
from app.bench.benchmark.resolved import Variant
from app.bench.benchmark.toml_lines import locate
from app.errors import InputFileError


def check_variant(path: Path, text: str, index: int, variant: Variant, device: Device) -> None:
    """Settings that are each valid alone but impossible together, or a model that is missing."""

    def fail(key: str, reason: str) -> None:
        raise InputFileError(
            path,
            reason,
            line=locate(text, ("variants", index, key)) or locate(text, ("variants", index)),
            key=f"variants[{index}].{key}",
        )

    if variant.model.startswith("tiny:"):
        if variant.model not in ("tiny:schnell", "tiny:dev"):
            fail("model", f"unknown tiny model {variant.model!r} (tiny:schnell or tiny:dev)")
    elif looks_local(variant.model):
        local = (path.parent / variant.model).resolve()
        if not (local / "model_index.json").is_file():
            fail("model", f"model folder not found or not a diffusers pipeline: {local}")
    elif not re.fullmatch(r"[\w.-]+/[\w.-]+", variant.model):
        fail("model", f"not a Hub id (owner/name) nor a local path: {variant.model!r}")
    if variant.lora is not None and variant.lora.path.startswith("tiny:"):
        if variant.lora.path != "tiny:turbo-lora":
            fail("lora", f"unknown tiny LoRA {variant.lora.path!r} (tiny:turbo-lora)")
    elif variant.lora is not None and looks_local(variant.lora.path):
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
    elif looks_local(ref):
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


def check_narrowing(
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
                line=locate(text, ("variants", index, key)) or locate(text, ("variants", index)),
                key=f"variants[{index}].{key}",
            )
