"""The shape of the scale benchmark's synthetic deployment: its sizes (SCALES), the variants
with their latencies and true ratings, and the environment the worker would have stored.

Kept apart from the build so that the smoke test can read a size's counts (and the measure
side the repository root) without the build's code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.bench.benchmark import CacheSpec, CompileSpec, LoraSpec, Variant
from app.quality import DEFAULT_CLIP_MODEL, LPIPS_MODEL

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Scale:
    runs: int  # the latest one big, the others older and small
    variants: int  # of the latest run
    prompts: int
    seeds: int
    old_variants: int
    old_prompts: int
    old_seeds: int
    raters: int  # the arena, on the latest run only
    networks: int
    votes: int
    careless: int  # raters who answer attention checks at random (and get flagged)
    panels: int


SCALES = {
    "full": Scale(10, 12, 1632, 4, 4, 64, 2, 20_000, 5_000, 1_000_000, 300, 4),
    "small": Scale(10, 12, 164, 4, 4, 8, 2, 2_000, 500, 100_000, 30, 4),
    "tiny": Scale(2, 3, 10, 2, 2, 5, 1, 50, 20, 500, 3, 2),
}

PARTI = ROOT / "prompts" / "PartiPrompts.tsv"
PARTI_64 = ROOT / "prompts" / "parti-64.tsv"
BATCH = 10_000
IMAGE_SIDE = 64
THUMB_SIDE = 256  # what app/worker/images.py bounds thumbnails to
PANEL_SHARE = 0.05
ATTENTION_SHARE = 0.03
TIE_SHARE, BOTH_BAD_SHARE = 0.10, 0.03
# A rater's votes per session come seconds apart, sessions hours or days apart.
VOTE_GAP_S, SESSION_GAP_S, NEW_SESSION = 8.0, 86_400.0, 0.03
VOTING_DAYS = 30

SCHNELL = {
    "model": "black-forest-labs/FLUX.1-schnell",
    "steps": 4,
    "guidance": 0.0,
    "max_sequence_length": 256,
}
DEV = {"model": "black-forest-labs/FLUX.1-dev", "steps": 28, "guidance": 3.5}
TURBO = LoraSpec(
    path="alimama-creative/FLUX.1-Turbo-Alpha",
    weight_name="diffusion_pytorch_model.safetensors",
)


@dataclass(frozen=True)
class VariantShape:
    name: str
    base: str | None
    settings: dict[str, Any]
    latency_s: float  # median per image on the H100 of the config, roughly
    rating: float  # true Bradley–Terry strength on the Elo scale, for the votes
    quantized: bool = False


# References first, so the first N of the list make sense for every scale: like
# configs/flux.toml, each optimized variant inherits from (and is compared with) schnell or dev.
VARIANTS = [
    VariantShape("schnell", None, SCHNELL, 0.62, 1000),
    VariantShape("dev", None, DEV, 4.1, 1090),
    VariantShape(
        "schnell-fast",
        "schnell",
        {
            "fuse_qkv": True,
            "quantize": "int8_dynamic",
            "compile": CompileSpec(mode="max-autotune", fullgraph=True),
        },
        0.41,
        985,
        quantized=True,
    ),
    VariantShape("dev-turbo", "dev", {"steps": 8, "lora": TURBO}, 1.22, 1060),
    VariantShape(
        "schnell-int8", "schnell", {"quantize": "int8_weight_only"}, 0.58, 995, quantized=True
    ),
    VariantShape(
        "dev-fast",
        "dev",
        {"cache": CacheSpec(threshold=0.08), "compile": CompileSpec(mode="max-autotune")},
        2.35,
        1070,
    ),
    VariantShape("schnell-compile", "schnell", {"compile": CompileSpec()}, 0.52, 1000),
    VariantShape(
        "dev-fp8",
        "dev",
        {"quantize": "fp8_dynamic", "compile": CompileSpec(mode="max-autotune-no-cudagraphs")},
        2.9,
        1080,
        quantized=True,
    ),
    VariantShape("schnell-cache", "schnell", {"cache": CacheSpec(threshold=0.1)}, 0.47, 975),
    VariantShape("dev-onediff", "dev", {"compile": CompileSpec(backend="onediff")}, 3.3, 1090),
    VariantShape("schnell-fp8", "schnell", {"quantize": "fp8_dynamic"}, 0.5, 990, quantized=True),
    VariantShape("dev-int8", "dev", {"quantize": "int8_weight_only"}, 3.8, 1085, quantized=True),
]

ENVIRONMENT: dict[str, Any] = {
    "host": "gpu-01",
    "platform": "Linux-6.8.0-x86_64-with-glibc2.39",
    "python": "3.11.11",
    "cpu": "AMD EPYC 9654 96-Core Processor",
    "cpu_count": 26,
    "torch_threads": 13,
    "device": "cuda",
    "packages": {
        "torch": "2.13.0+cu128",
        "diffusers": "0.42.1",
        "transformers": "5.24.0",
        "torchao": "0.18.0",
        "peft": "0.21.2",
        "accelerate": "1.15.0",
    },
    "gpu": "NVIDIA H100 80GB HBM3",
    "gpu_memory_gb": 85.0,
    "compute_capability": "9.0",
    "cuda": "12.8",
    "cudnn": 91002,
    "driver": "570.124.06",
}
LPIPS_REASON = (
    f"cannot load LPIPS ({LPIPS_MODEL}): RuntimeError: the AlexNet backbone weights are not "
    "in the torch hub cache and the Hub cannot be reached"
)
CLIP_PARAMS = {
    "transformers": ENVIRONMENT["packages"]["transformers"],
    "path": DEFAULT_CLIP_MODEL,
    "max_length": 77,
}


def resolved_variants(count: int) -> list[tuple[VariantShape, Variant]]:
    """The first `count` shapes, with inheritance resolved as app/bench/benchmark/ does."""
    shapes = VARIANTS[:count]
    by_name = {shape.name: shape for shape in shapes}
    out = []
    for shape in shapes:
        settings = {"dtype": "bfloat16", **(by_name[shape.base].settings if shape.base else {})}
        settings |= shape.settings
        description = f"{shape.name}, synthetic (benchmarks/scale.py)"
        out.append(
            (shape, Variant(name=shape.name, base=shape.base, description=description, **settings))
        )
    return out
