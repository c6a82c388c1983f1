"""The tiny offline FLUX pipelines: deterministic, idempotent, atomic, loadable like real FLUX."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diffusers import FluxPipeline
from safetensors import safe_open

from app.worker.model_folders import MARKER
from app.worker.tiny import (
    BUILD_VERSION,
    TINY_LORAS,
    TINY_MODELS,
    build_tiny_models,
    resolve_ref,
)

ROOT = Path(__file__).resolve().parents[2]


def _files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


def test_build_tiny_models_deterministic(tmp_path: Path) -> None:
    build_tiny_models(tmp_path / "a")
    # The second build in another process, so anything in hash order would show up.
    code = "import sys; from pathlib import Path; from app.worker.tiny import build_tiny_models; "
    code += "build_tiny_models(Path(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "b")], check=True, cwd=ROOT)

    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")

    assert first.keys() == second.keys()
    assert sum(name.endswith(".safetensors") for name in first) == 9  # 4 per pipeline + LoRA
    for name in first:
        assert first[name].read_bytes() == second[name].read_bytes(), name


def test_build_tiny_models_idempotent(tmp_path: Path) -> None:
    build_tiny_models(tmp_path)
    before = {name: p.stat().st_mtime_ns for name, p in _files(tmp_path).items()}

    paths = build_tiny_models(tmp_path)

    assert {name: p.stat().st_mtime_ns for name, p in _files(tmp_path).items()} == before
    assert set(paths) == {*TINY_MODELS, *TINY_LORAS}
    # Only the finished folders: no temporary build folder is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*TINY_MODELS.values(), *(Path(rel).parent.name for rel in TINY_LORAS.values())]
    )


def test_build_tiny_models_rebuilds_other_version(tmp_path: Path) -> None:
    paths = build_tiny_models(tmp_path)
    schnell = paths["tiny:schnell"]
    (schnell / MARKER).write_text("0-old\n")
    (schnell / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"half")

    build_tiny_models(tmp_path)

    assert (schnell / MARKER).read_text().strip() == BUILD_VERSION
    FluxPipeline.from_pretrained(schnell)


def test_resolve_ref_tiny_and_other_refs(tmp_path: Path) -> None:
    assert resolve_ref("tiny:dev", tmp_path) == str(tmp_path / "tiny-flux-dev")
    assert resolve_ref("tiny:turbo-lora", tmp_path) == str(tmp_path / TINY_LORAS["tiny:turbo-lora"])
    assert Path(resolve_ref("tiny:turbo-lora", tmp_path)).is_file()
    assert resolve_ref("black-forest-labs/FLUX.1-dev", tmp_path) == "black-forest-labs/FLUX.1-dev"
    with pytest.raises(ValueError, match="unknown tiny model 'tiny:pro'"):
        resolve_ref("tiny:pro", tmp_path)


@pytest.mark.parametrize("ref", ["tiny:schnell", "tiny:dev"])
def test_tiny_pipeline_loads_with_real_flux_shapes(tiny_paths: dict[str, Path], ref: str) -> None:
    pipe = FluxPipeline.from_pretrained(tiny_paths[ref], dtype=torch.float32)

    transformer = pipe.transformer.config
    assert pipe.tokenizer.model_max_length == 77
    assert pipe.tokenizer_2.model_max_length == 512
    assert pipe.vae_scale_factor == 8
    assert pipe.vae.config.latent_channels == 16
    assert transformer.in_channels == 64
    assert transformer.pooled_projection_dim == pipe.text_encoder.config.hidden_size
    assert transformer.joint_attention_dim == pipe.text_encoder_2.config.d_model
    assert sum(transformer.axes_dims_rope) == transformer.attention_head_dim
    # Prompt words split into a few tokens each, not into <unk>.
    clip_ids = pipe.tokenizer("a photo of a cat").input_ids
    t5_ids = pipe.tokenizer_2("a photo of a cat").input_ids
    assert pipe.tokenizer.unk_token_id not in clip_ids[1:-1]
    assert pipe.tokenizer_2.unk_token_id not in t5_ids
    assert len(t5_ids) == 6  # five words and </s>


def test_tiny_guidance_embedding_dev_only(tiny_paths: dict[str, Path]) -> None:
    schnell = FluxPipeline.from_pretrained(tiny_paths["tiny:schnell"])
    dev = FluxPipeline.from_pretrained(tiny_paths["tiny:dev"])

    assert not schnell.transformer.config.guidance_embeds
    assert not hasattr(schnell.transformer.time_text_embed, "guidance_embedder")
    assert dev.transformer.config.guidance_embeds
    assert hasattr(dev.transformer.time_text_embed, "guidance_embedder")
    # Like the real schedulers: schnell fixed shift 1, dev resolution-dependent shifting.
    assert not schnell.scheduler.config.use_dynamic_shifting
    assert schnell.scheduler.config.shift == 1.0
    assert dev.scheduler.config.use_dynamic_shifting


def test_tiny_lora_has_alpha_metadata(tiny_paths: dict[str, Path]) -> None:
    with safe_open(tiny_paths["tiny:turbo-lora"], "pt") as f:
        metadata = json.loads(f.metadata()["lora_adapter_metadata"])
        keys = set(f.keys())
        lora_b = f.get_tensor("transformer.transformer_blocks.0.attn.to_q.lora_B.weight")

    assert metadata["transformer.lora_alpha"] == 8
    assert metadata["transformer.r"] == 4
    for module in ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "to_add_out"):
        assert f"transformer.transformer_blocks.1.attn.{module}.lora_A.weight" in keys
    assert "transformer.single_transformer_blocks.1.attn.to_q.lora_B.weight" in keys
    assert lora_b.shape[1] == 4
    assert lora_b.abs().sum() > 0


def test_tiny_build_removes_stale_temp_folders_of_killed_builds(tmp_path: Path) -> None:
    import os

    from app.worker.tiny import build_tiny_models

    stale = tmp_path / ".tiny-flux-schnell.killed"
    fresh = tmp_path / ".tiny-flux-schnell.running"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "half.safetensors").write_bytes(b"x")
    os.utime(stale, (0, 0))  # a build killed long ago
    build_tiny_models(tmp_path)
    assert not stale.exists()
    assert fresh.exists()  # maybe another process's build in progress: left alone
