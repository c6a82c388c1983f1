"""An offline tiny CLIP: a real transformers `CLIPModel` with small random weights.

The CLIP score (app/quality/) loads its model with `CLIPModel.from_pretrained` and
`CLIPProcessor.from_pretrained`, the code path `openai/clip-vit-large-patch14` takes; this
model lets that path run in the demo and the tests with no network. Its scores mean nothing
(random weights); they are finite and deterministic, which is what the tests need.

Built by app/worker/model_folders.py's `build_atomically`: deterministic (fixed seed, byte-identical
files), idempotent (a marker file holding `BUILD_VERSION`) and atomic (built under a temporary
name beside the target, then renamed). The tokenizer is tiny.py's offline byte-level BPE.
"""

from __future__ import annotations

from pathlib import Path

from app.worker.model_folders import build_atomically

# torch, transformers and tiny.py (diffusers) are imported in _write_clip, where a folder is
# written: the metrics command resolves `tiny:clip` on every run and should not pay ~1.5 s of
# imports for a folder that is already built.

# Bump when anything below changes what is written: folders with another version are rebuilt.
BUILD_VERSION = "1"

TINY_CLIP_REF = "tiny:clip"
TINY_CLIP_DIR = "tiny-clip"

IMAGE_SIZE = 32
PATCH_SIZE = 8
HIDDEN = 32
PROJECTION_DIM = 16


def build_tiny_clip(models_dir: Path, *, force: bool = False) -> Path:
    """Build the tiny CLIP into `models_dir/tiny-clip` unless it is already there."""
    models_dir.mkdir(parents=True, exist_ok=True)
    return build_atomically(
        models_dir / TINY_CLIP_DIR, _write_clip, force=force, version=BUILD_VERSION
    )


def resolve_clip_ref(ref: str, models_dir: Path) -> str:
    """`tiny:clip` becomes its local path (built on first use); Hub ids and paths pass."""
    if not ref.startswith("tiny:"):
        return ref
    if ref != TINY_CLIP_REF:
        raise ValueError(f"unknown tiny CLIP model {ref!r} (known: {TINY_CLIP_REF})")
    return str(build_tiny_clip(models_dir))


def _write_clip(out: Path) -> None:
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPVisionConfig
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from app.worker.tiny import SEED, _clip_tokenizer, clip_text_config

    tokenizer = _clip_tokenizer()
    text_config = clip_text_config(tokenizer, hidden_size=HIDDEN, projection_dim=PROJECTION_DIM)
    vision_config = CLIPVisionConfig(
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        hidden_size=HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        projection_dim=PROJECTION_DIM,
        hidden_act="quick_gelu",
    )
    config = CLIPConfig(
        text_config=text_config.to_dict(),
        vision_config=vision_config.to_dict(),
        projection_dim=PROJECTION_DIM,
    )
    torch.manual_seed(SEED)
    model = CLIPModel(config)
    # The PIL backend directly: `CLIPImageProcessor` would warn that torchvision is missing and
    # fall back to it anyway. The saved config names `CLIPImageProcessor`, so a machine with
    # torchvision loads its default backend.
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(out)
    processor.save_pretrained(out)
