"""The offline tiny CLIP: deterministic, idempotent, and a real CLIPModel that scores."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from PIL import Image

from app.worker.tiny_clip import TINY_CLIP_DIR, build_tiny_clip, resolve_clip_ref


def test_tiny_clip_builds_byte_identical(tmp_path: Path) -> None:
    first = build_tiny_clip(tmp_path / "a")
    second = build_tiny_clip(tmp_path / "b")
    files = sorted(p.name for p in first.iterdir())
    assert {"config.json", "model.safetensors", "processor_config.json"} <= set(files)
    assert files == sorted(p.name for p in second.iterdir())
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_tiny_clip_build_is_idempotent(tmp_path: Path) -> None:
    path = build_tiny_clip(tmp_path)
    weights = path / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    assert build_tiny_clip(tmp_path) == path
    assert weights.stat().st_mtime_ns == mtime  # not rebuilt
    assert [p.name for p in tmp_path.iterdir()] == [TINY_CLIP_DIR]  # no temp folder left


def test_tiny_clip_resolves_refs(tiny_models: Path) -> None:
    assert resolve_clip_ref("tiny:clip", tiny_models) == str(tiny_models / TINY_CLIP_DIR)
    assert resolve_clip_ref("openai/clip-vit-large-patch14", tiny_models) == (
        "openai/clip-vit-large-patch14"
    )
    with pytest.raises(ValueError, match="unknown tiny CLIP model 'tiny:dev'"):
        resolve_clip_ref("tiny:dev", tiny_models)


def test_tiny_clip_gives_a_finite_clip_score(tiny_models: Path) -> None:
    from app.quality import ClipScorer, load_clip

    scorer = load_clip("tiny:clip", resolve_clip_ref("tiny:clip", tiny_models))
    assert isinstance(scorer, ClipScorer), scorer
    images = [Image.new("RGB", (64, 64), color) for color in ("red", "blue")]
    long_prompt = "a photo of a cat " * 40  # past the 77-token context: truncated
    scores = scorer.score(images, ["a red bicycle", long_prompt])
    assert len(scores) == 2
    assert all(math.isfinite(s) and 0.0 <= s <= 100.0 for s in scores)
    assert scorer.score(images, ["a red bicycle", long_prompt]) == scores  # deterministic
