"""Computing a run's metrics and storing them, one row per (generation, metric, model).

Each image is scored for prompt alignment (CLIP score), where its prompt states a shapes-world
scene for adherence (app/quality/adherence.py: 1 when every stated attribute is right, else 0;
the attribute checks in the row's params; no row at all for a prompt without a scene: not
applicable, never 0), and, where its variant has a reference, for fidelity against the
reference variant's image of the same prompt, seed and size. Rows are upserted batch by
batch in short transactions, so recomputing updates them in place; a model that cannot load
gives "unavailable" rows with the reason instead of an error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image
from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db import session_scope
from app.models import Generation, GenerationMetric, MetricStatus, Prompt, Run, utcnow
from app.quality.adherence import ORACLE, judge_prompt_spec
from app.quality.clip_score import ClipScorer, default_clip_model, load_clip
from app.quality.errors import QualityError
from app.quality.fidelity import (
    FIDELITY_METRICS,
    FIDELITY_PARAMS,
    fidelity_model,
    load_lpips,
    psnr_db,
    ssim,
)
from app.quality.images import load_image, to_tensor

if TYPE_CHECKING:
    import torch


@dataclass
class MetricsReport:
    run_id: int
    clip_model: str
    images: int = 0  # generations scored
    ok: Counter[str] = field(default_factory=Counter)  # metric -> rows with a value
    unavailable: Counter[str] = field(default_factory=Counter)  # metric -> rows without
    # metric -> why it could not run at all here (model or backbone not loadable)
    reasons: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Item:
    generation_id: int
    image_path: str
    prompt: str
    spec: str  # the prompt's scene, "" for none
    reference: Generation | None
    reference_variant: str | None  # name, when the variant has a reference


def compute_run_metrics(
    engine: Engine,
    run_id: int,
    *,
    media_dir: Path,
    resolve_clip: Callable[[str], str],
    variant: str | None = None,
    clip_model: str | None = None,
    batch_size: int = 16,
    device: str | None = None,
    show_progress: bool = False,
) -> MetricsReport:
    """Compute and store every metric for the run's images (or one variant's). Idempotent.

    `clip_model` defaults to `default_clip_model`. `device` defaults to CUDA when available.
    `resolve_clip` turns the CLIP ref into the path it loads from (for `tiny:clip`, the
    worker's app.worker.tiny_clip.resolve_clip_ref with the models folder, which builds it on
    first use); a ValueError from it is an unknown ref.
    Raises QualityError for an unknown run, variant or tiny ref.
    """
    import torch

    # 1. What to score: each image with its prompt and its reference image, if any.
    with session_scope(engine) as session:
        run = session.get(Run, run_id)
        if run is None:
            raise QualityError(f"unknown run {run_id}")
        variants = {v.id: v for v in run.variants}
        if variant is not None and variant not in {v.name for v in variants.values()}:
            names = ", ".join(v.name for v in variants.values())
            raise QualityError(f"run {run_id} has no variant {variant!r} (variants: {names})")
        clip_ref = clip_model or default_clip_model(session, run_id)
        rows = session.execute(
            select(Generation, Prompt.text, Prompt.spec)
            .join(Prompt, Prompt.id == Generation.prompt_id)
            .where(Generation.run_id == run_id)
            .order_by(Generation.variant_id, Prompt.position, Generation.seed)
        ).all()
    # Fidelity compares with the reference's image of the same prompt, seed and size.
    by_key = {(g.variant_id, g.prompt_id, g.seed, g.width, g.height): g for g, _, _ in rows}
    items = []
    for gen, prompt, prompt_spec in rows:
        spec = variants[gen.variant_id]
        if variant is not None and spec.name != variant:
            continue
        reference = variants[spec.reference_id] if spec.reference_id is not None else None
        items.append(
            _Item(
                generation_id=gen.id,
                image_path=gen.image_path,
                prompt=prompt,
                spec=prompt_spec,
                reference=(
                    by_key.get((reference.id, gen.prompt_id, gen.seed, gen.width, gen.height))
                    if reference
                    else None
                ),
                reference_variant=reference.name if reference else None,
            )
        )

    # 2. The models, once. What cannot load is recorded as unavailable, never raised.
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        clip_path = resolve_clip(clip_ref)
    except ValueError as err:
        raise QualityError(str(err)) from None
    clip = load_clip(clip_ref, clip_path, device=device)
    lpips = load_lpips(device=device)
    report = MetricsReport(run_id=run_id, clip_model=clip_ref)
    for metric, loaded in (("clip_score", clip), ("lpips", lpips)):
        if isinstance(loaded, str):
            report.reasons[metric] = loaded
    clip_params: dict[str, Any] = {"transformers": version("transformers")}
    if isinstance(clip, ClipScorer):
        clip_params |= {"path": clip.path, "max_length": clip.max_length}

    # 3. Score batch by batch; each batch is stored in its own short transaction.
    from rich.progress import Progress

    with Progress(disable=not show_progress) as progress:
        task = progress.add_task(f"metrics, run {run_id}", total=len(items))
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            images = [load_image(media_dir / item.image_path) for item in batch]
            out: list[dict[str, Any]] = []
            if isinstance(clip, ClipScorer):
                scores = clip.score(images, [item.prompt for item in batch])
                out += [
                    _row(item.generation_id, "clip_score", clip_ref, clip_params, value)
                    for item, value in zip(batch, scores, strict=True)
                ]
            else:
                out += [
                    _row(item.generation_id, "clip_score", clip_ref, clip_params, reason=clip)
                    for item in batch
                ]
            out += _adherence_rows(batch, images)
            out += _fidelity_rows(batch, images, media_dir, lpips, device)
            with session_scope(engine) as session:
                _upsert(session, out)
            for row in out:
                counter = report.ok if row["status"] is MetricStatus.ok else report.unavailable
                counter[row["metric"]] += 1
            report.images += len(batch)
            progress.advance(task, len(batch))
    return report


def _adherence_rows(batch: Sequence[_Item], images: Sequence[Image.Image]) -> list[dict[str, Any]]:
    out = []
    for item, image in zip(batch, images, strict=True):
        verdict = judge_prompt_spec(image, item.spec)
        if verdict is None:
            continue
        params = {
            "score": round(verdict.score, 4),
            "checks": [asdict(check) for check in verdict.checks],
        }
        out.append(_row(item.generation_id, "adherence", ORACLE, params, float(verdict.correct)))
    return out


def _fidelity_rows(
    batch: Sequence[_Item],
    images: Sequence[Image.Image],
    media_dir: Path,
    lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | str,
    device: str,
) -> list[dict[str, Any]]:
    import torch

    out: list[dict[str, Any]] = []
    pairs: list[tuple[_Item, Image.Image, Generation]] = []
    for item, image in zip(batch, images, strict=True):
        if item.reference_variant is None:
            continue  # no reference variant: fidelity does not apply
        if item.reference is None:
            reason = f"no image of the reference variant {item.reference_variant!r} yet"
            out += [
                _row(item.generation_id, metric, fidelity_model(metric), {}, reason=reason)
                for metric in FIDELITY_METRICS
            ]
        else:
            pairs.append((item, image, item.reference))
    if not pairs:
        return out
    preds = torch.stack([to_tensor(image) for _, image, _ in pairs]).to(device)
    target = torch.stack([to_tensor(load_image(media_dir / ref.image_path)) for *_, ref in pairs])
    target = target.to(device)
    values = {"ssim": ssim(preds, target), "psnr_db": psnr_db(preds, target)}
    if not isinstance(lpips, str):
        values["lpips"] = lpips(preds, target)
    for i, (item, _, ref) in enumerate(pairs):
        params = {"reference_generation_id": ref.id, "reference_variant": item.reference_variant}
        for metric in FIDELITY_METRICS:
            model = fidelity_model(metric)
            metric_params = params | FIDELITY_PARAMS[metric]
            if metric in values:
                value = float(values[metric][i])
                out.append(_row(item.generation_id, metric, model, metric_params, value))
            else:
                reason = str(lpips)
                out.append(_row(item.generation_id, metric, model, metric_params, reason=reason))
    return out


def _row(
    generation_id: int,
    metric: str,
    model: str,
    params: dict[str, Any],
    value: float | None = None,
    *,
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "generation_id": generation_id,
        "metric": metric,
        "model": model,
        "params": params,
        "value": value,
        "status": MetricStatus.ok if reason is None else MetricStatus.unavailable,
        "reason": reason,
        "created_at": utcnow(),
    }


def _upsert(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert, or update the row with the same (generation, metric, model)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(GenerationMetric).values(rows)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["generation_id", "metric", "model"],
            set_={
                c: stmt.excluded[c] for c in ("params", "value", "status", "reason", "created_at")
            },
        )
    )
