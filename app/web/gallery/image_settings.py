"""What the prompt page lists under each image: the settings that made it (or would have,
from its variant's config, when there is no image) and its automatic metrics, as
(key, label, value) rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import GenerationMetric, MetricStatus
from app.web.gallery.cells import Cell
from app.web.templating import fmt_seconds

# The metrics the prompt page lists, in this order: fidelity to the reference, then alignment.
PAGE_METRICS = ("ssim", "psnr_db", "clip_score")


def _scalar(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items() if v is not None and v is not False)
    return str(value)


def _lora(lora: dict[str, Any] | None) -> str:
    if not lora:
        return "none"
    fused = " (fused)" if lora.get("fuse") else ""
    return f"{lora['path']} × {lora.get('scale', 1.0)}{fused}"


def _optimizations(optimizations: dict[str, Any]) -> str:
    parts = []
    for name, value in optimizations.items():
        if value is None or value is False:
            continue
        if value is True:
            parts.append(name)
        elif isinstance(value, dict):
            parts.append(f"{name} ({_scalar(value)})")
        else:
            parts.append(f"{name}: {value}")
    return "; ".join(parts) or "none"


def settings_rows(cell: Cell, seed: int) -> list[tuple[str, str, str]]:
    """(key, label, value) rows: from the Generation (what made this image) when there is one,
    else from the variant's config (what would have)."""
    g = cell.generation
    if g is not None:
        return [
            ("model", "Model", g.model),
            ("steps", "Steps", str(g.steps)),
            ("guidance", "Guidance", f"{g.guidance:g}"),
            ("seed", "Seed", str(g.seed)),
            ("size", "Size", f"{g.width}×{g.height}"),
            ("dtype", "dtype", g.dtype),
            ("max-seq", "Max sequence length", str(g.max_sequence_length)),
            ("lora", "LoRA", _lora(g.lora)),
            ("optimizations", "Optimizations", _optimizations(g.optimizations)),
            ("latency", "Latency", fmt_seconds(g.latency_s)),
        ]
    config = cell.variant.config
    optimizations = {k: config.get(k) for k in ("compile", "quantize", "cache", "fuse_qkv")}
    return [
        ("model", "Model", str(config.get("model"))),
        ("steps", "Steps", str(config.get("steps"))),
        ("guidance", "Guidance", f"{config.get('guidance', 0.0):g}"),
        ("seed", "Seed", str(seed)),
        ("size", "Size", f"{cell.size.width}×{cell.size.height}"),
        ("dtype", "dtype", str(config.get("dtype"))),
        ("max-seq", "Max sequence length", str(config.get("max_sequence_length"))),
        ("lora", "LoRA", _lora(config.get("lora"))),
        ("optimizations", "Optimizations", _optimizations(optimizations)),
    ]


def _fmt_metric(metric: str, value: float) -> str:
    if metric == "psnr_db":
        return "∞ dB (identical)" if value == float("inf") else f"{value:.2f} dB"
    return f"{value:.4f}" if metric == "ssim" else f"{value:.2f}"


def metric_rows(session: Session, cells: list[Cell]) -> dict[int, list[tuple[str, str, str]]]:
    """generation id -> (key, label, value) rows of its metrics, in one query."""
    ids = [c.generation.id for c in cells if c.generation is not None]
    if not ids:
        return {}
    metrics = session.scalars(
        select(GenerationMetric)
        .where(
            GenerationMetric.generation_id.in_(ids),
            GenerationMetric.metric.in_(PAGE_METRICS),
        )
        .order_by(GenerationMetric.model)
    ).all()
    metrics = sorted(metrics, key=lambda m: PAGE_METRICS.index(m.metric))
    out: dict[int, list[tuple[str, str, str]]] = {}
    for m in metrics:
        if m.metric == "clip_score":
            label = f"CLIP score ({m.model})"
        else:
            reference = m.params.get("reference_variant")
            name = "SSIM" if m.metric == "ssim" else "PSNR"
            label = f"{name} vs {reference}" if reference else name
        if m.status is MetricStatus.ok and m.value is not None:
            value = _fmt_metric(m.metric, m.value)
        else:
            value = f"unavailable: {m.reason or 'no reason given'}"
        out.setdefault(m.generation_id, []).append((f"metric-{m.metric}", label, value))
    return out
