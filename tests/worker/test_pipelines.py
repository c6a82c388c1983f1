"""Variant -> pipeline on the tiny real FLUX pipelines: each CPU path runs and does what it says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import FluxPipeline
from peft.tuners.tuners_utils import BaseTunerLayer
from torchao.quantization import Int8Tensor

from app.bench.benchmark import CacheSpec, CompileSpec, LoraSpec, Variant
from app.worker.pipelines import (
    check_environment,
    generate,
    load_pipeline,
    set_cpu_threads,
)
from app.worker.unavailable import VariantUnavailable

SIZE = 64


def _variant(**settings: Any) -> Variant:
    defaults: dict[str, Any] = {
        "name": "v",
        "model": "tiny:dev",
        "steps": 4,
        "dtype": "float32",
        "max_sequence_length": 32,
    }
    return Variant(**(defaults | settings))


def _load(variant: Variant, models_dir: Path, *, device: str = "cpu") -> FluxPipeline:
    return load_pipeline(variant, device=device, models_dir=models_dir, config_dir=models_dir)


def _image(pipe: FluxPipeline, variant: Variant, seed: int = 0) -> np.ndarray:
    image = generate(
        pipe, variant, prompt="a red fox in the snow", seed=seed, width=SIZE, height=SIZE
    )
    return np.asarray(image).astype(np.int16)


def _transformer_linears(pipe: FluxPipeline) -> list[torch.nn.Linear]:
    return [m for m in pipe.transformer.modules() if isinstance(m, torch.nn.Linear)]


@pytest.fixture(scope="module")
def plain_dev(tiny_models: Path) -> tuple[Variant, np.ndarray]:
    """The dev variant with no options, and its image for seed 0: the reference to compare to."""
    variant = _variant()
    return variant, _image(_load(variant, tiny_models), variant)


def test_generate_image_size(tiny_models: Path) -> None:
    variant = _variant(model="tiny:schnell", guidance=0.0)
    pipe = _load(variant, tiny_models)

    image = generate(pipe, variant, prompt="a cat", seed=0, width=96, height=64)

    assert image.size == (96, 64)
    assert image.mode == "RGB"


def test_generate_same_seed_pixel_identical(tiny_models: Path) -> None:
    variant = _variant()
    pipe = _load(variant, tiny_models)

    assert np.array_equal(_image(pipe, variant, seed=3), _image(pipe, variant, seed=3))


def test_generate_different_seed_differs(tiny_models: Path) -> None:
    variant = _variant()
    pipe = _load(variant, tiny_models)

    assert np.abs(_image(pipe, variant, seed=1) - _image(pipe, variant, seed=2)).mean() > 1


def test_load_pipeline_local_path_relative_to_config_dir(tiny_models: Path) -> None:
    variant = _variant(model="./tiny-flux-schnell")

    pipe = load_pipeline(
        variant, device="cpu", models_dir=Path("/nonexistent"), config_dir=tiny_models
    )

    assert not pipe.transformer.config.guidance_embeds


def test_lora_fused_changes_output_and_leaves_no_adapter(
    tiny_models: Path, plain_dev: tuple[Variant, np.ndarray]
) -> None:
    _, plain = plain_dev
    variant = _variant(lora=LoraSpec(path="tiny:turbo-lora", fuse=True))
    pipe = _load(variant, tiny_models)

    fused = _image(pipe, variant)

    assert np.abs(fused - plain).mean() > 1
    assert not any(isinstance(m, BaseTunerLayer) for m in pipe.transformer.modules())
    assert pipe.get_list_adapters() == {}


def test_lora_fused_matches_unfused_adapter(tiny_models: Path) -> None:
    fused_variant = _variant(lora=LoraSpec(path="tiny:turbo-lora", scale=0.7, fuse=True))
    adapter_variant = _variant(lora=LoraSpec(path="tiny:turbo-lora", scale=0.7, fuse=False))
    adapter_pipe = _load(adapter_variant, tiny_models)

    fused = _image(_load(fused_variant, tiny_models), fused_variant)
    adapter = _image(adapter_pipe, adapter_variant)

    assert any(isinstance(m, BaseTunerLayer) for m in adapter_pipe.transformer.modules())
    assert np.abs(fused - adapter).max() <= 1


@pytest.mark.parametrize(
    ("mode", "dynamic_activations"), [("int8_weight_only", False), ("int8_dynamic", True)]
)
def test_quantize_int8_replaces_linear_weights(
    tiny_models: Path, plain_dev: tuple[Variant, np.ndarray], mode: str, dynamic_activations: bool
) -> None:
    _, plain = plain_dev
    variant = _variant(quantize=mode)
    pipe = _load(variant, tiny_models)

    weights = [m.weight for m in _transformer_linears(pipe)]
    quantized = _image(pipe, variant)

    assert weights
    assert all(isinstance(w, Int8Tensor) and w.qdata.dtype == torch.int8 for w in weights)
    assert all((w.act_quant_kwargs is not None) == dynamic_activations for w in weights)
    # The text encoders and the VAE keep their float weights.
    assert (
        pipe.text_encoder_2.encoder.block[0].layer[0].SelfAttention.q.weight.dtype == torch.float32
    )
    # Still the same model, up to int8 rounding.
    assert quantized.shape == plain.shape
    assert 0 < np.abs(quantized - plain).mean() < 5


def _count_tail_block_runs(pipe: FluxPipeline) -> list[int]:
    """How many times the last transformer block really computed (not skipped by the cache)."""
    runs = [0]
    tail = pipe.transformer.single_transformer_blocks[-1]
    tail.proj_out.register_forward_hook(lambda *_: runs.__setitem__(0, runs[0] + 1))
    return runs


def test_cache_large_threshold_skips_blocks(tiny_models: Path) -> None:
    plain_variant = _variant(steps=8)
    cached_variant = _variant(steps=8, cache=CacheSpec(threshold=0.95))
    plain_pipe, cached_pipe = _load(plain_variant, tiny_models), _load(cached_variant, tiny_models)
    plain_runs, cached_runs = (
        _count_tail_block_runs(plain_pipe),
        _count_tail_block_runs(cached_pipe),
    )

    plain = _image(plain_pipe, plain_variant)
    cached = _image(cached_pipe, cached_variant)

    assert plain_runs == [8]
    assert 1 <= cached_runs[0] < 8
    assert np.abs(cached - plain).mean() > 0


def test_cache_reproducible_across_calls(tiny_models: Path) -> None:
    variant = _variant(steps=8, cache=CacheSpec(threshold=0.5))
    pipe = _load(variant, tiny_models)
    runs = _count_tail_block_runs(pipe)

    first = _image(pipe, variant)
    second = _image(pipe, variant)

    assert runs[0] < 16  # the cache did skip some steps
    assert np.array_equal(first, second)


def test_cache_reproducible_after_interrupted_call(tiny_models: Path) -> None:
    variant = _variant(steps=8, cache=CacheSpec(threshold=0.95))
    pipe = _load(variant, tiny_models)
    clean = _image(pipe, variant, seed=1)

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    # A call that dies after its first step leaves its cached residuals behind; with the same
    # seed and another prompt they are close enough to be reused by the next image.
    with pytest.raises(KeyboardInterrupt):
        pipe(
            prompt="a red dog at night",
            num_inference_steps=8,
            width=SIZE,
            height=SIZE,
            max_sequence_length=32,
            generator=torch.Generator("cpu").manual_seed(1),
            callback_on_step_end=interrupt,
        )

    assert np.array_equal(_image(pipe, variant, seed=1), clean)


def test_fuse_qkv_fuses_projections(
    tiny_models: Path, plain_dev: tuple[Variant, np.ndarray]
) -> None:
    _, plain = plain_dev
    variant = _variant(fuse_qkv=True)
    pipe = _load(variant, tiny_models)

    fused = _image(pipe, variant)

    double = [block.attn for block in pipe.transformer.transformer_blocks]
    single = [block.attn for block in pipe.transformer.single_transformer_blocks]
    assert all(attn.fused_projections and hasattr(attn, "to_qkv") for attn in double + single)
    assert all(hasattr(attn, "to_added_qkv") for attn in double)
    assert np.abs(fused - plain).max() <= 1
    # The unfused projections are gone: the fused model has exactly the plain one's weights.
    unfused = ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj")
    assert not any(hasattr(attn, name) for attn in double + single for name in unfused)
    plain_pipe = _load(_variant(), tiny_models)
    assert _parameters(pipe) == _parameters(plain_pipe)


def _parameters(pipe: FluxPipeline) -> int:
    return sum(p.numel() for p in pipe.transformer.parameters())


def _write_lora(tiny_models: Path, folder: Path, rename: Callable[[str], str]) -> Path:
    """The tiny Turbo LoRA with its keys renamed: a LoRA made for another model."""
    from safetensors.torch import load_file, save_file

    source = tiny_models / "tiny-flux-dev-turbo-lora" / "pytorch_lora_weights.safetensors"
    out = folder / "other-lora.safetensors"
    save_file({rename(key): value for key, value in load_file(source).items()}, out)
    return out


def test_lora_matching_no_layer_fails_naming_it(tiny_models: Path, tmp_path: Path) -> None:
    path = _write_lora(tiny_models, tmp_path, lambda key: key.replace("attn.", "attention."))
    variant = _variant(lora=LoraSpec(path=str(path)))

    with pytest.raises(VariantUnavailable, match=rf"LoRA {path} matches no layer"):
        load_pipeline(variant, device="cpu", models_dir=tiny_models, config_dir=tmp_path)


def test_lora_with_unused_layers_fails_counting_them(tiny_models: Path, tmp_path: Path) -> None:
    # Only the first double block's q projection points at a layer that does not exist.
    q = "transformer.transformer_blocks.0.attn.to_q."
    path = _write_lora(
        tiny_models,
        tmp_path,
        lambda key: key.replace(q, q.replace("to_q", "to_z")) if key.startswith(q) else key,
    )
    variant = _variant(lora=LoraSpec(path=str(path)))

    with pytest.raises(VariantUnavailable, match=r"1 of its \d+ layers match nothing.*to_z"):
        load_pipeline(variant, device="cpu", models_dir=tiny_models, config_dir=tmp_path)


def test_all_eager_optimizations_together(
    tiny_models: Path, plain_dev: tuple[Variant, np.ndarray]
) -> None:
    variant = _variant(
        lora=LoraSpec(path="tiny:turbo-lora"),
        fuse_qkv=True,
        quantize="int8_dynamic",
        cache=CacheSpec(threshold=0.3),
    )
    pipe = _load(variant, tiny_models)

    first, second = _image(pipe, variant), _image(pipe, variant)

    assert first.shape == plain_dev[1].shape
    assert np.array_equal(first, second)
    assert isinstance(pipe.transformer.transformer_blocks[0].attn.to_qkv.weight, Int8Tensor)


# torch.compile matching eager: through the worker, with its one cold compile, in
# tests/worker/test_isolation.py::test_isolation_global_torch_state_does_not_cross_variants.


def test_load_pipeline_onediff_unavailable(tiny_models: Path) -> None:
    variant = _variant(compile=CompileSpec(backend="onediff"))

    with pytest.raises(VariantUnavailable, match="onediff"):
        _load(variant, tiny_models)


def test_check_environment_onediff_names_the_missing_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As on a CUDA machine without onediff: the check names nexfort too, before any load.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    variant = _variant(compile=CompileSpec(backend="onediff", onediff_backend="nexfort"))

    with pytest.raises(VariantUnavailable, match="needs onediffx and nexfort"):
        check_environment(variant, "cuda")


def test_load_pipeline_fp8_on_cpu_unavailable(tiny_models: Path) -> None:
    variant = _variant(quantize="fp8_dynamic")

    with pytest.raises(VariantUnavailable, match=r"CUDA GPU with compute capability >= 8\.9"):
        _load(variant, tiny_models)


def test_load_pipeline_cuda_without_cuda_unavailable(
    tiny_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # So the test means the same on a GPU machine.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    with pytest.raises(VariantUnavailable, match="CUDA is not available"):
        _load(_variant(), tiny_models, device="cuda")


def test_load_pipeline_float16_on_cpu_unavailable(tiny_models: Path) -> None:
    with pytest.raises(VariantUnavailable, match="float16 is not supported on the CPU"):
        _load(_variant(dtype="float16"), tiny_models)


def test_load_pipeline_fuse_qkv_with_unfused_lora_rejected(tiny_models: Path) -> None:
    variant = _variant(fuse_qkv=True, lora=LoraSpec(path="tiny:turbo-lora", fuse=False))

    with pytest.raises(ValueError, match=r"fuse_qkv needs lora\.fuse = true"):
        _load(variant, tiny_models)


def test_set_cpu_threads_twice() -> None:
    set_cpu_threads(2)
    set_cpu_threads(2)

    assert torch.get_num_threads() == 2
