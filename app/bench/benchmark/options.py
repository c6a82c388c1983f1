"""The building blocks of a benchmark config: the strict base model, image sizes, and the
option tables a variant may set (LoRA, compile, cache, quantization and memory modes, pruna's
smash), each valid on its own. Which ones may go together is app/bench/benchmark/rules.py's.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_serializer,
    model_validator,
)

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


def no_repeats(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError("values must not repeat")
    return values


SizeList = Annotated[list[Size], Field(min_length=1), AfterValidator(no_repeats)]
BatchSizeList = Annotated[list[BatchSize], Field(min_length=1), AfterValidator(no_repeats)]


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
    list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]], AfterValidator(no_repeats)
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
