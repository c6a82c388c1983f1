"""Automatic quality metrics of a run's images, stored per image (table generation_metrics).

Fidelity, for each image of a variant that has a reference (Variant.reference_id), against the
reference variant's image of the same prompt and seed, on RGB floats in [0, 1]:

- ``ssim``: structural similarity (torchmetrics; Gaussian 11×11 window, σ 1.5, data_range 1);
  1 for identical images.
- ``psnr_db``: peak signal-to-noise ratio in dB (data_range 1); +inf for identical images.
- ``lpips``: learned perceptual distance (torchmetrics, AlexNet backbone); 0 for identical
  images. It needs torchvision and the backbone's pretrained weights; where it cannot load,
  its rows say "unavailable" with the reason and the other metrics go on.

Prompt alignment, for every image (the references' too):

- ``clip_score``: 100 × max(cos(image embedding, prompt embedding), 0), torchmetrics'
  CLIPScore definition, with a configurable CLIP model (Hub id, local path or ``tiny:clip``).
  Prompts longer than the model's text context (77 tokens for CLIP) are truncated. A model
  that cannot load (no network, missing weights) gives "unavailable" rows with the reason.

Rows are keyed by (generation, metric, model): recomputing updates them in place, and figures
from another CLIP model are other rows, never mixed. Summaries and histograms read one
(metric, model) at a time.

torch is imported only inside the functions that compute; the read side (``metric_summaries``,
``fidelity_histograms``) is plain SQL + numpy for the web tier.

One module per family: ``images`` (loading, tensors), ``fidelity`` (SSIM, PSNR, LPIPS),
``clip_score``, ``run_metrics`` (computing and storing a run's), ``summaries`` (means,
intervals, METRIC_RANGES), ``histograms``, ``errors``. The package sits below the worker and
imports nothing from it: the caller says where a CLIP ref's files are (``resolve_clip``).
This module exports the public API; importers use ``from app.quality import ...``.
"""

from app.quality.clip_score import (
    DEFAULT_CLIP_MODEL,
    TINY_CLIP,
    ClipScorer,
    default_clip_model,
    load_clip,
)
from app.quality.errors import MAX_REASON_CHARS, QualityError
from app.quality.fidelity import (
    FIDELITY_METRICS,
    FIDELITY_PARAMS,
    LPIPS_MODEL,
    TORCHMETRICS,
    load_lpips,
    psnr_db,
    ssim,
)
from app.quality.histograms import FidelityHistogram, fidelity_histograms
from app.quality.images import load_image, to_tensor
from app.quality.run_metrics import MetricsReport, compute_run_metrics
from app.quality.summaries import (
    METRIC_RANGES,
    MetricSummary,
    mean_interval,
    metric_summaries,
    metrics_version,
)

__all__ = [
    "DEFAULT_CLIP_MODEL",
    "FIDELITY_METRICS",
    "FIDELITY_PARAMS",
    "LPIPS_MODEL",
    "MAX_REASON_CHARS",
    "METRIC_RANGES",
    "TINY_CLIP",
    "TORCHMETRICS",
    "ClipScorer",
    "FidelityHistogram",
    "MetricSummary",
    "MetricsReport",
    "QualityError",
    "compute_run_metrics",
    "default_clip_model",
    "fidelity_histograms",
    "load_clip",
    "load_image",
    "load_lpips",
    "mean_interval",
    "metric_summaries",
    "metrics_version",
    "psnr_db",
    "ssim",
    "to_tensor",
]
