"""GGUF transformer checkpoints: a variant's `gguf` file becomes its pipeline's transformer.

diffusers reads the file (`FluxTransformer2DModel.from_single_file` with a
`GGUFQuantizationConfig`): the quantized linear weights stay quantized in memory as
`GGUFParameter`s and each `GGUFLinear` dequantizes its weight to the compute dtype in every
forward. The architecture comes from the variant's `model` (its `transformer/config.json`, a
few KB from the Hub for real FLUX); the model's own transformer weights are never loaded nor
downloaded.

A real FLUX GGUF (city96/FLUX.1-schnell-gguf and the like) is in the original BFL key layout
(`double_blocks.0.img_attn.qkv.weight`), which diffusers converts to its own as it loads. A
file already in diffusers' layout is taken as it is; the tiny one (app/worker/tiny.py) is
one of those, because diffusers' conversion assumes FLUX's 3072-wide blocks.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers.models.transformers.transformer_flux import FluxTransformer2DModel
from diffusers.quantizers.quantization_config import GGUFQuantizationConfig

from app.bench.benchmark import resolve_local
from app.worker import tiny
from app.worker.unavailable import VariantUnavailable

HUB_URL = "https://huggingface.co/"
# Every GGUF file starts with these four bytes.
MAGIC = b"GGUF"


def resolve(ref: str, models_dir: Path, config_dir: Path) -> str:
    """The file a `gguf` setting names: a local path (relative to the config), a `tiny:`
    file, or a Hub file as the URL diffusers downloads ("owner/repo/file.gguf" is short for
    "https://huggingface.co/owner/repo/file.gguf")."""
    if ref.startswith("tiny:"):
        return tiny.resolve_ref(ref, models_dir)
    local = resolve_local(config_dir, ref)  # a Hub reference comes back unchanged
    if Path(local).is_absolute():
        return local
    return ref if ref.startswith(("https://", "http://")) else HUB_URL + ref


def load_transformer(
    ref: str, *, model: str, dtype: torch.dtype, models_dir: Path, config_dir: Path
) -> FluxTransformer2DModel:
    """The transformer of GGUF file `ref`, for the pipeline at `model` (a folder or Hub id)."""
    path = resolve(ref, models_dir, config_dir)
    if not path.startswith(("https://", "http://")):
        _check_file(Path(path))
    try:
        transformer = FluxTransformer2DModel.from_single_file(
            path,
            config=model,
            subfolder="transformer",
            quantization_config=GGUFQuantizationConfig(compute_dtype=dtype),
            dtype=dtype,
        )
    except ValueError as err:  # a weight of another shape: a file for another model
        raise VariantUnavailable(f"GGUF {ref} does not fit {model}'s transformer: {err}") from err
    except (KeyError, IndexError) as err:
        # Keys that are not exactly the transformer's send the file through diffusers'
        # conversion from the original FLUX layout, which fails on any other.
        raise VariantUnavailable(
            f"GGUF {ref} does not fit {model}'s transformer: its keys are neither that "
            f"transformer's nor FLUX's original layout ({type(err).__name__}: {err})"
        ) from err
    # A weight the file lacks stays an empty placeholder, and diffusers only logs it: a
    # schnell file (no guidance embedder) converted for dev's transformer, for one.
    missing = [name for name, p in transformer.named_parameters() if p.is_meta]
    if missing:
        raise VariantUnavailable(
            f"GGUF {ref} lacks {len(missing)} weights of {model}'s transformer "
            f"(e.g. {', '.join(missing[:3])}): a file for another model?"
        )
    return transformer


def _check_file(path: Path) -> None:
    """A missing or damaged file fails with what is wrong with it, before diffusers reads it
    (whose errors name neither the file nor the problem)."""
    if not path.is_file():
        raise VariantUnavailable(f"GGUF file not found: {path}")
    with path.open("rb") as f:
        magic = f.read(len(MAGIC))
    if magic != MAGIC:
        raise VariantUnavailable(f"not a GGUF file (it does not start with 'GGUF'): {path}")
    from gguf import GGUFReader

    try:
        # Reads the header and the tensor table (memory-mapped: no weights are read).
        GGUFReader(path)
    except (ValueError, IndexError, OSError) as err:
        raise VariantUnavailable(f"damaged or truncated GGUF file {path}: {err}") from err
