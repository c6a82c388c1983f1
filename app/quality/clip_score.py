"""Prompt alignment: the CLIP score, 100 × max(cos(image embedding, prompt embedding), 0).

torchmetrics' CLIPScore definition, computed with a transformers CLIP model: a Hub id, a local
path or `tiny:clip`. Where a ref's files live is the caller's to say (`load_clip`'s `path`):
the tiny CLIP is built by the worker's tiny models (app/worker/tiny_clip.py), which sit above
this package, so it never imports them. torch and transformers are imported only inside.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Variant
from app.quality.errors import unavailable_reason

if TYPE_CHECKING:
    import torch

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
TINY_CLIP = "tiny:clip"


def default_clip_model(session: Session, run_id: int) -> str:
    """`tiny:clip` for a run whose variants are all tiny models (the demo), else CLIP ViT-L/14."""
    models = session.scalars(select(Variant.config).where(Variant.run_id == run_id)).all()
    tiny = bool(models) and all(str(c.get("model", "")).startswith("tiny:") for c in models)
    return TINY_CLIP if tiny else DEFAULT_CLIP_MODEL


class ClipScorer:
    """100 × max(cos(image, text), 0) with a transformers CLIP model."""

    def __init__(self, model: Any, processor: Any, path: str, device: str) -> None:
        self.model = model
        self.processor = processor
        self.path = path
        self.device = device
        self.max_length = int(model.config.text_config.max_position_embeddings)

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[float]:
        import torch

        inputs = self.processor(
            text=list(prompts),
            images=list(images),
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_length,
        ).to(self.device)
        with torch.inference_mode():
            image_emb = _embedding(self.model.get_image_features(pixel_values=inputs.pixel_values))
            text_emb = _embedding(
                self.model.get_text_features(
                    input_ids=inputs.input_ids, attention_mask=inputs.attention_mask
                )
            )
        cos = torch.nn.functional.cosine_similarity(image_emb.float(), text_emb.float(), dim=-1)
        return [float(v) for v in 100.0 * cos.clamp(min=0.0)]


def _embedding(output: Any) -> torch.Tensor:
    import torch

    # transformers 5 returns a model output whose pooler_output holds the projected
    # embedding; transformers 4 returned the tensor itself.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def load_clip(ref: str, path: str, device: str = "cpu") -> ClipScorer | str:
    """The CLIP scorer for a Hub id, local path or `tiny:clip`, or why it cannot load.

    `path` is what `from_pretrained` loads for `ref`: the ref itself for a Hub id or a local
    path, the built folder for `tiny:clip` (app.worker.tiny_clip.resolve_clip_ref).
    """
    try:
        from transformers import CLIPModel, CLIPProcessor

        model: Any = CLIPModel.from_pretrained(path)  # Any: its `to` is mistyped for mypy
        model = model.to(device).eval()
        processor = CLIPProcessor.from_pretrained(path)
    except Exception as err:  # no network, missing or broken weights, not a CLIP, ...
        return unavailable_reason(f"cannot load CLIP model {ref!r}", err)
    return ClipScorer(model, processor, path, device)
