"""GGUF transformer checkpoints: the tiny schnell's Q8_0 file, built offline, loaded through
diffusers' GGUF path into a real pipeline, and its failures."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import gguf
import pytest
import torch
from diffusers import FluxPipeline
from diffusers.quantizers.gguf.utils import GGUFLinear, GGUFParameter
from sqlalchemy import Engine, select

from app.bench.benchmark import LoraSpec, Variant, load_benchmark
from app.bench.prompts import load_prompts
from app.db import session_scope
from app.models import Generation
from app.models import Variant as VariantRow
from app.quality import ssim, to_tensor
from app.worker.doctor.check import Status
from app.worker.doctor.software import check_gguf
from app.worker.enqueue import enqueue_run
from app.worker.pipelines import generate, load_pipeline
from app.worker.runner import Worker
from app.worker.tiny import TINY_GGUFS
from app.worker.unavailable import VariantUnavailable

ROOT = Path(__file__).resolve().parents[2]
SIZE = 64


def _variant(**settings: Any) -> Variant:
    defaults: dict[str, Any] = {
        "name": "v",
        "model": "tiny:schnell",
        "steps": 4,
        "guidance": 0.0,
        "dtype": "float32",
        "max_sequence_length": 32,
    }
    return Variant(**(defaults | settings))


def _load(variant: Variant, models: Path, config_dir: Path | None = None) -> FluxPipeline:
    return load_pipeline(variant, device="cpu", models_dir=models, config_dir=config_dir or models)


def _image(pipe: FluxPipeline, variant: Variant, seed: int = 0) -> torch.Tensor:
    image = generate(
        pipe, variant, prompt="a red fox in the snow", seed=seed, width=SIZE, height=SIZE
    )
    return to_tensor(image)


def _weight_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def _gguf_file(models: Path) -> Path:
    return models / TINY_GGUFS["tiny:schnell-q8"]


def test_tiny_gguf_built_offline_and_deterministic(tiny_models: Path, tmp_path: Path) -> None:
    # A second build in another process (tests run with HF_HUB_OFFLINE=1), by the ref's first
    # use: anything written in hash or time order would differ.
    code = "import sys; from pathlib import Path; from app.worker.tiny import resolve_ref; "
    code += "print(resolve_ref('tiny:schnell-q8', Path(sys.argv[1])))"
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )

    first, second = _gguf_file(tiny_models), _gguf_file(tmp_path)

    assert done.stdout.strip() == str(second)
    assert first.read_bytes() == second.read_bytes()
    reader = gguf.GGUFReader(first)
    types = {t.name: t.tensor_type for t in reader.tensors}
    pipe = FluxPipeline.from_pretrained(tiny_models / "tiny-flux-schnell")
    # Every weight of the transformer, in diffusers' key layout; matrices Q8_0, vectors F32.
    assert set(types) == set(pipe.transformer.state_dict())
    q8 = gguf.GGMLQuantizationType.Q8_0
    assert types["transformer_blocks.0.attn.to_q.weight"] == q8
    assert types["transformer_blocks.0.attn.to_q.bias"] == gguf.GGMLQuantizationType.F32
    assert sum(t == q8 for t in types.values()) > len(types) / 3


def test_gguf_variant_makes_images_close_to_float(tiny_models: Path) -> None:
    plain_variant, q8_variant = _variant(), _variant(gguf="tiny:schnell-q8")
    plain_pipe, q8_pipe = _load(plain_variant, tiny_models), _load(q8_variant, tiny_models)

    plain, q8 = _image(plain_pipe, plain_variant), _image(q8_pipe, q8_variant)

    linears = [m for m in q8_pipe.transformer.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(isinstance(m, GGUFLinear) for m in linears)
    assert all(isinstance(m.weight, GGUFParameter) for m in linears)
    # Q8_0: 34 bytes per 32 weights instead of 128 in float32 (biases and norms stay float).
    assert _weight_bytes(q8_pipe.transformer) < 0.4 * _weight_bytes(plain_pipe.transformer)
    # The same model up to Q8_0 rounding: close, not equal (a loose bound for random weights).
    similarity = float(ssim(q8[None], plain[None])[0])
    assert similarity > 0.8
    assert not torch.equal(q8, plain)
    # The same seed gives the same image.
    assert torch.equal(_image(q8_pipe, q8_variant), q8)


def test_gguf_local_path_relative_to_config_dir(tiny_models: Path) -> None:
    variant = _variant(model="./tiny-flux-schnell", gguf=f"./{TINY_GGUFS['tiny:schnell-q8']}")

    pipe = _load(variant, Path("/nonexistent"), config_dir=tiny_models)

    assert isinstance(pipe.transformer.x_embedder, GGUFLinear)


def test_gguf_with_unfused_lora_matches_float_with_lora(tiny_models: Path) -> None:
    # The LoRA is made for tiny:dev; its layers exist in schnell's transformer too. peft wraps
    # the GGUF layers and adds its own product to their output (fusing cannot work: config).
    lora = LoraSpec(path="tiny:turbo-lora", scale=4.0, fuse=False)
    on_gguf, on_float = _variant(gguf="tiny:schnell-q8", lora=lora), _variant(lora=lora)
    plain = _variant(gguf="tiny:schnell-q8")

    with_lora = _image(_load(on_gguf, tiny_models), on_gguf)
    float_lora = _image(_load(on_float, tiny_models), on_float)
    without = _image(_load(plain, tiny_models), plain)

    assert (with_lora - without).abs().mean() > 5 / 255
    assert float(ssim(with_lora[None], float_lora[None])[0]) > 0.99


def test_gguf_missing_file_fails_naming_it(tiny_models: Path, tmp_path: Path) -> None:
    variant = _variant(gguf="./missing.gguf")

    with pytest.raises(VariantUnavailable, match=f"GGUF file not found: {tmp_path}/missing.gguf"):
        _load(variant, tiny_models, config_dir=tmp_path)


def test_gguf_not_a_gguf_file_fails(tiny_models: Path, tmp_path: Path) -> None:
    (tmp_path / "weights.gguf").write_bytes(b"PK\x03\x04 a zip, renamed")

    with pytest.raises(VariantUnavailable, match="not a GGUF file"):
        _load(_variant(gguf="./weights.gguf"), tiny_models, config_dir=tmp_path)


def test_gguf_truncated_file_fails(tiny_models: Path, tmp_path: Path) -> None:
    whole = _gguf_file(tiny_models).read_bytes()
    (tmp_path / "cut.gguf").write_bytes(whole[: len(whole) // 2])

    with pytest.raises(VariantUnavailable, match=r"damaged or truncated GGUF file .*cut\.gguf"):
        _load(_variant(gguf="./cut.gguf"), tiny_models, config_dir=tmp_path)


def test_gguf_for_another_model_fails(tiny_models: Path) -> None:
    # schnell's transformer has no guidance embedder; dev's has one.
    variant = _variant(model="tiny:dev", gguf="tiny:schnell-q8")

    with pytest.raises(
        VariantUnavailable,
        match=r"GGUF tiny:schnell-q8 does not fit .*tiny-flux-dev's transformer: its keys",
    ):
        _load(variant, tiny_models)


def test_doctor_gguf_row(tmp_path: Path) -> None:
    config = tmp_path / "bench.toml"
    (tmp_path / "prompts.tsv").write_text("prompt\tcategory\tchallenge\na cat\tAnimals\tBasic\n")
    config.write_text(CONFIG)

    check = check_gguf(load_benchmark(config))

    assert check.status == Status.OK
    assert check.detail == f"{metadata.version('gguf')}, for schnell-q8"


CONFIG = """
name = "gguf"
prompts = "prompts.tsv"
seeds = [0]
width = 64
height = 64
device = "cpu"
hardware = "test"
usd_per_hour = 1.0
warmup = 1
repeats = 2

[[variants]]
name = "schnell-q8"
model = "tiny:schnell"
gguf = "tiny:schnell-q8"
steps = 2
guidance = 0.0
max_sequence_length = 32
dtype = "float32"
"""


def test_gguf_variant_through_the_worker(engine: Engine, tmp_path: Path, tiny_models: Path) -> None:
    (tmp_path / "prompts.tsv").write_text(
        "prompt\tcategory\tchallenge\na cat\tAnimals\tBasic\na red fox\tAnimals\tBasic\n"
    )
    (tmp_path / "bench.toml").write_text(CONFIG)
    bench = load_benchmark(tmp_path / "bench.toml")
    run_id = enqueue_run(engine, bench, load_prompts(bench.prompts_path))
    media = tmp_path / "media"
    worker = Worker(
        engine, media_dir=media, models_dir=tiny_models, show_progress=False, lock_dir=tmp_path
    )

    worker.work(run_id)

    with session_scope(engine) as session:
        rows = {v.name: v for v in session.scalars(select(VariantRow))}
        assert {name: v.status.value for name, v in rows.items()} == {"schnell-q8": "done"}
        images = session.scalars(
            select(Generation).where(Generation.variant_id == rows["schnell-q8"].id)
        ).all()
        assert len(images) == 2
        assert all(g.optimizations["gguf"] == "tiny:schnell-q8" for g in images)
        assert all((media / g.image_path).is_file() for g in images)
