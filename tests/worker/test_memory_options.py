"""Memory-saving options on the tiny real FLUX pipelines, on the CPU.

What runs on a CPU runs here for real: images made, and the quantized component's weights
smaller than the plain pipeline's (bytes counted inside torchao's and bitsandbytes' packed
tensors). What needs a CUDA GPU fails before any weight loads, with its reason; where the
reason is a library's own refusal, a test shows the library refusing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bitsandbytes as bnb
import diffusers
import numpy as np
import pytest
import torch
from diffusers import FluxPipeline
from torchao.prototype.quantization.int4 import Int4OpaqueTensor
from torchao.quantization import Int8Tensor

from app.bench.benchmark import CompileSpec, Variant
from app.worker import pipelines
from app.worker.pipelines import (
    check_environment,
    generate,
    generate_batch,
    int4_group_size,
    load_pipeline,
    parameter_bytes,
)
from app.worker.tiny import build_wide_model
from app.worker.unavailable import VariantUnavailable
from tests.worker.test_pipelines import _variant

SIZE = 64
PROMPT = "a red fox in the snow"


def _load(variant: Variant, models_dir: Path) -> FluxPipeline:
    return load_pipeline(variant, device="cpu", models_dir=models_dir, config_dir=models_dir)


def _image(pipe: FluxPipeline, variant: Variant, size: int = SIZE) -> np.ndarray:
    image = generate(pipe, variant, prompt=PROMPT, seed=0, width=size, height=size)
    return np.asarray(image).astype(np.int16)


def _linears(module: torch.nn.Module) -> list[torch.nn.Linear]:
    return [m for m in module.modules() if isinstance(m, torch.nn.Linear)]


def _t5_linears(pipe: FluxPipeline) -> list[torch.nn.Linear]:
    return _linears(pipe.text_encoder_2.encoder)


@pytest.fixture(scope="module")
def plain(tiny_models: Path) -> tuple[FluxPipeline, np.ndarray]:
    """The dev pipeline with no option, and its seed-0 image: what the options are held to."""
    variant = _variant()
    pipe = _load(variant, tiny_models)
    return pipe, _image(pipe, variant)


# --- torchao int4 weight-only, on the CPU kernel ----------------------------------------


def test_int4_group_size_largest_that_divides() -> None:
    assert int4_group_size(3072) == 128  # FLUX's hidden width
    assert int4_group_size(15360) == 128  # its single blocks' proj_out
    assert int4_group_size(64) == 64  # its x_embedder (16 latent channels packed 2x2)
    assert int4_group_size(160) == 32  # the tiny single blocks' proj_out
    assert int4_group_size(48) is None


def test_int4_weight_only_quantizes_transformer_on_cpu(
    tiny_models: Path, plain: tuple[FluxPipeline, np.ndarray]
) -> None:
    plain_pipe, plain_image = plain
    variant = _variant(quantize="int4_weight_only")
    pipe = _load(variant, tiny_models)

    image = _image(pipe, variant)

    weights = [m.weight for m in _linears(pipe.transformer)]
    assert weights and all(isinstance(w, Int4OpaqueTensor) for w in weights)
    # Every tiny width found a group size: 32 (most layers), 64 (x_embedder), 128 (the
    # feed-forward's output and the time embedding).
    assert {w.block_size[1] for w in weights} == {32, 64, 128}
    # 4-bit weights plus a float32 scale and zero point per group of (mostly) 32 weights:
    # about 6 bits a weight against float32's 32.
    assert parameter_bytes(pipe.transformer) < 0.3 * parameter_bytes(plain_pipe.transformer)
    # The T5 encoder keeps its float weights.
    assert all(m.weight.dtype == torch.float32 for m in _t5_linears(pipe))
    assert image.shape == plain_image.shape
    assert 0 < np.abs(image - plain_image).mean() < 20


# --- the T5 text encoder ----------------------------------------------------------------


@pytest.fixture(scope="module")
def wide_text(tiny_models: Path) -> tuple[Path, FluxPipeline, np.ndarray]:
    """tiny:schnell with a 64-wide T5 (and a 128-wide transformer): the tiny T5's 32-wide
    layers are narrower than bitsandbytes' CPU 4-bit kernel packs (blocks of 64 weights; it
    fails on them with "shape '[32, 0]' is invalid"); real T5-XXL's are 4096 wide and more.
    Its plain pipeline and seed-0 image too."""
    model = build_wide_model(tiny_models, heads=1, dtype=torch.float32, text_width=64)
    variant = _variant(model=str(model), guidance=0.0)
    pipe = _load(variant, tiny_models)
    return model, pipe, _image(pipe, variant)


def _is_int8_tensor(layer: torch.nn.Linear) -> bool:
    return isinstance(layer.weight, Int8Tensor)


def _is_nf4(layer: torch.nn.Linear) -> bool:
    return isinstance(layer, bnb.nn.Linear4bit) and layer.weight.quant_type == "nf4"


def _is_llm_int8(layer: torch.nn.Linear) -> bool:
    return isinstance(layer, bnb.nn.Linear8bitLt) and layer.weight.dtype == torch.int8


@pytest.mark.parametrize(
    ("mode", "quantized", "float_layers"),
    [
        ("int8_weight_only", _is_int8_tensor, set()),
        # transformers keeps T5's feed-forward output (`wo`) in full precision under
        # bitsandbytes (T5's _keep_in_fp32_modules), real T5-XXL's as well.
        ("nf4", _is_nf4, {"wo"}),
        ("int8", _is_llm_int8, {"wo"}),
    ],
)
def test_text_encoder_quantize_runs_on_cpu(
    tiny_models: Path,
    wide_text: tuple[Path, FluxPipeline, np.ndarray],
    mode: str,
    quantized: Any,
    float_layers: set[str],
) -> None:
    model, plain_pipe, plain_image = wide_text
    variant = _variant(model=str(model), guidance=0.0, text_encoder_quantize=mode)
    pipe = _load(variant, tiny_models)

    image = _image(pipe, variant)

    layers = dict(pipe.text_encoder_2.encoder.named_modules())
    t5 = {name: m for name, m in layers.items() if isinstance(m, torch.nn.Linear)}
    assert all(quantized(m) for name, m in t5.items() if name.split(".")[-1] not in float_layers)
    kept = {name.split(".")[-1] for name, m in t5.items() if type(m.weight) is torch.nn.Parameter}
    assert kept == float_layers
    assert parameter_bytes(pipe.text_encoder_2) < parameter_bytes(plain_pipe.text_encoder_2)
    # The transformer and CLIP keep their float weights.
    assert all(type(m.weight) is torch.nn.Parameter for m in _linears(pipe.transformer))
    assert all(type(m.weight) is torch.nn.Parameter for m in _linears(pipe.text_encoder))
    # Still the same prompt, up to the encoder's rounding.
    assert image.shape == plain_image.shape
    assert np.abs(image - plain_image).mean() < 10


# --- the VAE ------------------------------------------------------------------------------


def _count_decodes(pipe: FluxPipeline) -> list[int]:
    calls = [0]
    pipe.vae.decoder.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_vae_tiling_decodes_in_tiles(
    tiny_models: Path, plain: tuple[FluxPipeline, np.ndarray]
) -> None:
    plain_pipe = plain[0]
    variant = _variant(vae_tiling=True)
    pipe = _load(variant, tiny_models)
    # The VAE tiles images larger than its sample size (1024 pixels, as FLUX's): 64-pixel
    # tiles here, so that a 128-pixel image is decoded in tiles as a 2048-pixel FLUX image
    # would be: 3 x 3 of them, each overlapping the next by a quarter.
    pipe.vae.tile_sample_min_size, pipe.vae.tile_latent_min_size = 64, 8
    decodes, plain_decodes = _count_decodes(pipe), _count_decodes(plain_pipe)

    tiled = _image(pipe, variant, size=128)
    whole = _image(plain_pipe, _variant(), size=128)

    assert pipe.vae.use_tiling and not plain_pipe.vae.use_tiling
    assert plain_decodes == [1]
    assert decodes[0] == 9
    assert tiled.shape == whole.shape == (128, 128, 3)
    # Decoded tile by tile (group norms over a tile, blended seams), not as the whole: with
    # random weights no closer than that.
    assert not np.array_equal(tiled, whole)


def test_vae_slicing_decodes_one_image_at_a_time(
    tiny_models: Path, plain: tuple[FluxPipeline, np.ndarray]
) -> None:
    plain_pipe = plain[0]
    variant = _variant(vae_slicing=True)
    pipe = _load(variant, tiny_models)
    decodes, plain_decodes = _count_decodes(pipe), _count_decodes(plain_pipe)
    batch: dict[str, Any] = {
        "prompts": [PROMPT, "a blue house"],
        "seeds": [0, 1],
        "width": SIZE,
        "height": SIZE,
    }

    sliced = generate_batch(pipe, variant, **batch)
    together = generate_batch(plain_pipe, _variant(), **batch)

    assert (decodes, plain_decodes) == ([2], [1])
    for a, b in zip(sliced, together, strict=True):
        assert np.abs(np.asarray(a).astype(np.int16) - np.asarray(b).astype(np.int16)).max() <= 1


# --- what needs a CUDA GPU fails before loading, with its reason ----------------------------


@pytest.mark.parametrize("mode", ["nf4", "int8"])
def test_bitsandbytes_transformer_on_cpu_unavailable(tiny_models: Path, mode: str) -> None:
    with pytest.raises(
        VariantUnavailable,
        match=rf"quantize = '{mode}' \(bitsandbytes\) needs a CUDA GPU: "
        rf"diffusers {diffusers.__version__} quantizes a transformer",
    ):
        _load(_variant(quantize=mode), tiny_models)


def test_bitsandbytes_transformer_refused_by_diffusers_without_gpu(tiny_models: Path) -> None:
    # Why the check above exists: past it, diffusers itself refuses (after reading the
    # config, before any weight), although bitsandbytes has a CPU backend.
    with pytest.raises(RuntimeError, match="No GPU found"):
        pipelines._load(
            _variant(quantize="nf4"), device="cpu", models_dir=tiny_models, config_dir=tiny_models
        )


@pytest.mark.parametrize("mode", ["model", "sequential", "group"])
def test_offload_on_cpu_unavailable(tiny_models: Path, mode: str) -> None:
    with pytest.raises(VariantUnavailable, match=rf"offload = '{mode}' needs a CUDA GPU"):
        _load(_variant(offload=mode), tiny_models)


def test_group_offload_refused_by_diffusers_on_cpu(tiny_models: Path) -> None:
    # Past the check, diffusers refuses group offloading's CUDA stream. (Model and sequential
    # offloading would run, moving the weights from CPU memory to CPU memory: nothing to
    # measure, hence the check.)
    with pytest.raises(ValueError, match="requires an onload device whose backend implements"):
        pipelines._load(
            _variant(offload="group"), device="cpu", models_dir=tiny_models, config_dir=tiny_models
        )


def test_bitsandbytes_missing_named_before_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = pipelines.importlib.util.find_spec
    monkeypatch.setattr(
        pipelines.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "bitsandbytes" else find_spec(name, *args),
    )

    with pytest.raises(
        VariantUnavailable,
        match=r"bitsandbytes is not installed \(needed by nf4\): "
        r"pip install -e '\.\[worker,bitsandbytes\]'",
    ):
        check_environment(_variant(text_encoder_quantize="nf4"), "cpu")


def _fake_gpu(monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int]) -> None:
    """check_environment on a CUDA machine described as data (nothing loads)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *_: capability)


def test_check_environment_int4_needs_sm80_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_gpu(monkeypatch, (7, 5))
    variant = _variant(quantize="int4_weight_only", dtype="bfloat16")

    with pytest.raises(VariantUnavailable, match=r"compute capability >= 8\.0.*not 7\.5"):
        check_environment(variant, "cuda")


def test_check_environment_memory_options_pass_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_gpu(monkeypatch, (8, 9))
    variant = _variant(
        dtype="bfloat16",
        quantize="nf4",
        text_encoder_quantize="int8",
        offload="group",
        vae_tiling=True,
        compile=CompileSpec(),
    )

    check_environment(variant, "cuda")
    check_environment(variant.model_copy(update={"quantize": "int4_weight_only"}), "cuda")
