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
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from scipy import special
from sqlalchemy import Engine, case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db import session_scope
from app.memo import TTLMemo
from app.models import Generation, GenerationMetric, MetricStatus, Prompt, Run, Variant, utcnow
from app.numbers import UNBOUNDED, clip, fmt_estimate

if TYPE_CHECKING:
    import torch

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
TINY_CLIP = "tiny:clip"
FIDELITY_METRICS = ("ssim", "psnr_db", "lpips")
TORCHMETRICS = "torchmetrics"
LPIPS_MODEL = "lpips-alex"
# Each metric's possible values: its intervals are clipped to them where shown (a Student-t
# interval of a CLIP score near 0 would otherwise reach below 0, an SSIM near 1 above 1).
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "ssim": (-1.0, 1.0),
    "psnr_db": (0.0, math.inf),  # 10·log10(1 / MSE), MSE ≤ 1 on [0, 1] images
    "lpips": (0.0, math.inf),
    "clip_score": (0.0, 100.0),  # 100 × max(cos, 0)
}
MAX_REASON_CHARS = 500


class QualityError(ValueError):
    """An unknown run, variant or tiny model: the CLI prints it as one line."""


# --- computing --------------------------------------------------------------------------


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
    reference: Generation | None
    reference_variant: str | None  # name, when the variant has a reference


def default_clip_model(session: Session, run_id: int) -> str:
    """`tiny:clip` for a run whose variants are all tiny models (the demo), else CLIP ViT-L/14."""
    models = session.scalars(select(Variant.config).where(Variant.run_id == run_id)).all()
    tiny = bool(models) and all(str(c.get("model", "")).startswith("tiny:") for c in models)
    return TINY_CLIP if tiny else DEFAULT_CLIP_MODEL


def compute_run_metrics(
    engine: Engine,
    run_id: int,
    *,
    media_dir: Path,
    models_dir: Path,
    variant: str | None = None,
    clip_model: str | None = None,
    batch_size: int = 16,
    device: str | None = None,
    show_progress: bool = False,
) -> MetricsReport:
    """Compute and store every metric for the run's images (or one variant's). Idempotent.

    `clip_model` defaults to `default_clip_model`. `device` defaults to CUDA when available.
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
            select(Generation, Prompt.text)
            .join(Prompt, Prompt.id == Generation.prompt_id)
            .where(Generation.run_id == run_id)
            .order_by(Generation.variant_id, Prompt.position, Generation.seed)
        ).all()
    # Fidelity compares with the reference's image of the same prompt, seed and size.
    by_key = {(g.variant_id, g.prompt_id, g.seed, g.width, g.height): g for g, _ in rows}
    items = []
    for gen, prompt in rows:
        spec = variants[gen.variant_id]
        if variant is not None and spec.name != variant:
            continue
        reference = variants[spec.reference_id] if spec.reference_id is not None else None
        items.append(
            _Item(
                generation_id=gen.id,
                image_path=gen.image_path,
                prompt=prompt,
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
    clip = load_clip(clip_ref, models_dir, device=device)
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
            out += _fidelity_rows(batch, images, media_dir, lpips, device)
            with session_scope(engine) as session:
                _upsert(session, out)
            for row in out:
                counter = report.ok if row["status"] is MetricStatus.ok else report.unavailable
                counter[row["metric"]] += 1
            report.images += len(batch)
            progress.advance(task, len(batch))
    return report


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
                _row(item.generation_id, metric, _fidelity_model(metric), {}, reason=reason)
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
            model = _fidelity_model(metric)
            metric_params = params | FIDELITY_PARAMS[metric]
            if metric in values:
                value = float(values[metric][i])
                out.append(_row(item.generation_id, metric, model, metric_params, value))
            else:
                reason = str(lpips)
                out.append(_row(item.generation_id, metric, model, metric_params, reason=reason))
    return out


def _fidelity_model(metric: str) -> str:
    return LPIPS_MODEL if metric == "lpips" else TORCHMETRICS


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


# --- the metrics themselves -------------------------------------------------------------


def _torchmetrics_params(**params: Any) -> dict[str, Any]:
    return params | {"torchmetrics": version("torchmetrics")}


FIDELITY_PARAMS: dict[str, dict[str, Any]] = {
    "ssim": _torchmetrics_params(
        data_range=1.0, gaussian_kernel=True, kernel_size=11, sigma=1.5, k1=0.01, k2=0.03
    ),
    "psnr_db": _torchmetrics_params(data_range=1.0, base=10),
    "lpips": _torchmetrics_params(net_type="alex", normalize=True),
}


def load_image(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> float (3, H, W) in [0, 1]."""
    import torch

    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


def ssim(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of (N, 3, H, W) batches in [0, 1]."""
    import torch
    from torchmetrics.functional.image import structural_similarity_index_measure

    p = FIDELITY_PARAMS["ssim"]
    # Channels-last: the same values, and on a CPU the Gaussian window's depthwise conv runs
    # about twice as fast in that layout (benchmarks/metrics_speed.py).
    value = structural_similarity_index_measure(
        preds.contiguous(memory_format=torch.channels_last),
        target.contiguous(memory_format=torch.channels_last),
        data_range=p["data_range"],
        gaussian_kernel=p["gaussian_kernel"],
        kernel_size=p["kernel_size"],
        sigma=p["sigma"],
        k1=p["k1"],
        k2=p["k2"],
        reduction="none",
    )
    assert not isinstance(value, tuple)  # only with return_full_image/contrast_sensitivity
    return value


def psnr_db(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of (N, 3, H, W) batches in [0, 1]; +inf where they are equal."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    # dim: one mean squared error per image; without it torchmetrics pools the whole batch.
    return peak_signal_noise_ratio(
        preds, target, data_range=1.0, base=10.0, reduction="none", dim=(1, 2, 3)
    )


def load_lpips(
    device: str = "cpu",
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | str:
    """Per-image LPIPS of (N, 3, H, W) batches in [0, 1], or why it cannot run here."""
    try:
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        # Builds the AlexNet backbone with torchvision's pretrained weights (a download on
        # first use) and torchmetrics' bundled linear heads.
        metric = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)
    except Exception as err:  # missing torchvision, no network for the weights, ...
        return _reason(f"cannot load LPIPS ({LPIPS_MODEL})", err)
    net = metric.net.to(device)

    def lpips(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.inference_mode():
            return net(preds, target, normalize=True).flatten()

    return lpips


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


def load_clip(ref: str, models_dir: Path, device: str = "cpu") -> ClipScorer | str:
    """The CLIP scorer for a Hub id, local path or `tiny:clip`, or why it cannot load."""
    from app.worker.tiny_clip import resolve_clip_ref

    try:
        path = resolve_clip_ref(ref, models_dir)
    except ValueError as err:
        raise QualityError(str(err)) from None
    try:
        from transformers import CLIPModel, CLIPProcessor

        model: Any = CLIPModel.from_pretrained(path)  # Any: its `to` is mistyped for mypy
        model = model.to(device).eval()
        processor = CLIPProcessor.from_pretrained(path)
    except Exception as err:  # no network, missing or broken weights, not a CLIP, ...
        return _reason(f"cannot load CLIP model {ref!r}", err)
    return ClipScorer(model, processor, path, device)


def _reason(what: str, err: Exception) -> str:
    detail = " ".join(str(err).split()) or type(err).__name__
    return f"{what}: {type(err).__name__}: {detail}"[:MAX_REASON_CHARS]


# --- reading (no torch) -----------------------------------------------------------------


@dataclass(frozen=True)
class MetricSummary:
    """One (variant, metric, model) of a run: mean and Student-t interval of its values.

    PSNR of identical images is +inf: those are counted in `n_infinite` and left out of the
    mean and the interval. The interval needs two finite values.
    """

    variant: str
    metric: str
    model: str
    n: int  # finite values
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n_infinite: int
    n_unavailable: int
    reason: str | None  # the most frequent reason among the unavailable rows

    @property
    def interval(self) -> tuple[float | None, float | None]:
        """The interval as shown: clipped to the metric's range (METRIC_RANGES)."""
        return clip(self.ci_low, self.ci_high, METRIC_RANGES.get(self.metric, UNBOUNDED))

    @property
    def display(self) -> str:
        """The mean and its 95% interval at the decimals the interval's width supports, the
        interval clipped to the metric's range (app.numbers.fmt_estimate)."""
        if self.mean is None and self.reason is not None:
            return f"unavailable: {self.reason}"
        if self.mean is None:
            return "∞" if self.n_infinite else "-"
        return fmt_estimate(
            self.mean, self.ci_low, self.ci_high, METRIC_RANGES.get(self.metric, UNBOUNDED)
        )


def mean_interval(
    values: Sequence[float], confidence: float = 0.95
) -> tuple[float | None, float | None, float | None]:
    """Mean and Student-t interval (mean ± t·s/√n, s with n-1): (None, None, None) for no
    values, no interval for one."""
    n = len(values)
    if n == 0:
        return None, None, None
    mean = float(np.mean(values))
    if n == 1:
        return mean, None, None
    half = float(special.stdtrit(n - 1, (1 + confidence) / 2)) * float(np.std(values, ddof=1))
    half /= math.sqrt(n)
    return mean, mean - half, mean + half


# A value at least this large is +inf (PSNR of identical images): both databases compare
# infinity as larger than any finite float, and no metric here comes near it.
_INFINITE = 1e300


def metrics_version(session: Session) -> tuple[int, str]:
    """What changes when any metric is written or recomputed: the largest row id and the
    latest `created_at` (a recompute updates rows in place). Two index probes."""
    largest = session.scalar(select(func.max(GenerationMetric.id))) or 0
    latest = session.scalar(select(func.max(GenerationMetric.created_at)))
    return int(largest), str(latest)


# Summaries by (database, run, variant, confidence, metrics version): computed once per change
# of the metrics, however many pages ask (DESIGN.md rule 10).
_summaries: TTLMemo[tuple[str, int, str | None, float, tuple[int, str]], list[MetricSummary]]
_summaries = TTLMemo(ttl_s=3600.0, maxsize=64)


def metric_summaries(
    session: Session, run_id: int, *, variant: str | None = None, confidence: float = 0.95
) -> list[MetricSummary]:
    """Every (variant, metric, model) of the run at its main size, variants in config
    order: from SQL aggregates (count, sum, sum of squares of the finite values; infinite
    and unavailable counts; the most frequent reason), cached until the metrics change."""
    url = session.get_bind().engine.url.render_as_string(hide_password=False)
    key = (url, run_id, variant, confidence, metrics_version(session))
    return _summaries.get(key, lambda: _summarize(session, run_id, variant, confidence))


def _summarize(
    session: Session, run_id: int, variant: str | None, confidence: float
) -> list[MetricSummary]:
    ok = GenerationMetric.status == MetricStatus.ok
    finite = (
        ok & GenerationMetric.value.is_not(None) & (func.abs(GenerationMetric.value) < _INFINITE)
    )
    infinite = ok & (func.abs(GenerationMetric.value) >= _INFINITE)
    unavailable = GenerationMetric.status == MetricStatus.unavailable

    def count(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    # The run's main size: the headline figures (and the arena) are at that size; other sizes'
    # images are scored too but never averaged in with it.
    main = select(Run.width, Run.height).where(Run.id == run_id).subquery()
    where = [
        Generation.run_id == run_id,
        Generation.width == select(main.c.width).scalar_subquery(),
        Generation.height == select(main.c.height).scalar_subquery(),
    ]
    if variant is not None:
        where.append(Variant.name == variant)
    group = (Variant.id, GenerationMetric.metric, GenerationMetric.model)
    rows = session.execute(
        select(
            Variant.name,
            GenerationMetric.metric,
            GenerationMetric.model,
            count(finite),
            func.sum(case((finite, GenerationMetric.value), else_=0.0)),
            func.sum(case((finite, GenerationMetric.value * GenerationMetric.value), else_=0.0)),
            count(infinite),
            count(unavailable),
        )
        .join(Generation, Generation.id == GenerationMetric.generation_id)
        .join(Variant, Variant.id == Generation.variant_id)
        .where(*where)
        .group_by(*group, Variant.name, Variant.position)
        .order_by(Variant.position, GenerationMetric.metric, GenerationMetric.model)
    ).all()
    reasons: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for name, metric, model, reason, n in session.execute(
        select(
            Variant.name,
            GenerationMetric.metric,
            GenerationMetric.model,
            GenerationMetric.reason,
            func.count(),
        )
        .join(Generation, Generation.id == GenerationMetric.generation_id)
        .join(Variant, Variant.id == Generation.variant_id)
        .where(*where, unavailable, GenerationMetric.reason.is_not(None))
        .group_by(*group, Variant.name, GenerationMetric.reason)
    ):
        reasons[(name, metric, model)][str(reason)] += n
    out = []
    for name, metric, model, n, total, squares, n_infinite, n_unavailable in rows:
        n, n_infinite, n_unavailable = int(n or 0), int(n_infinite or 0), int(n_unavailable or 0)
        mean, low, high = _mean_interval_from_sums(
            n, float(total or 0), float(squares or 0), confidence
        )
        common = reasons[(name, metric, model)].most_common(1)
        out.append(
            MetricSummary(
                variant=name,
                metric=metric,
                model=model,
                n=n,
                mean=mean,
                ci_low=low,
                ci_high=high,
                n_infinite=n_infinite,
                n_unavailable=n_unavailable,
                reason=common[0][0] if common else None,
            )
        )
    return out


def _mean_interval_from_sums(
    n: int, total: float, squares: float, confidence: float
) -> tuple[float | None, float | None, float | None]:
    """mean_interval from the count, sum and sum of squares (what SQL aggregates give)."""
    if n == 0:
        return None, None, None
    mean = total / n
    if n == 1:
        return mean, None, None
    variance = max(0.0, (squares - n * mean * mean) / (n - 1))
    half = float(special.stdtrit(n - 1, (1 + confidence) / 2)) * math.sqrt(variance / n)
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class FidelityHistogram:
    """One variant's values of a fidelity metric, binned per prompt category.

    `edges` (bins + 1) are shared by every category and every variant of the run, so the
    bars compare; non-finite values (PSNR of identical images) are left out.
    """

    variant: str
    metric: str
    model: str
    edges: list[float]
    counts: dict[str, list[int]]  # prompt category -> count per bin, categories sorted


def fidelity_histograms(
    session: Session, run_id: int, *, metric: str = "ssim", bins: int | Sequence[float] = 10
) -> list[FidelityHistogram]:
    """The histogram data of `metric` per variant (config order) and prompt category."""
    rows = session.execute(
        select(Variant.name, GenerationMetric.model, Prompt.category, GenerationMetric.value)
        .join(Generation, Generation.id == GenerationMetric.generation_id)
        .join(Variant, Variant.id == Generation.variant_id)
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .where(
            Generation.run_id == run_id,
            GenerationMetric.metric == metric,
            GenerationMetric.status == MetricStatus.ok,
        )
        .order_by(Variant.position, GenerationMetric.model, Prompt.category)
    ).all()
    finite = [(n, m, c, v) for n, m, c, v in rows if v is not None and math.isfinite(v)]
    if not finite:
        return []
    edges = np.histogram_bin_edges([v for *_, v in finite], bins=_bins(bins))
    grouped: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for name, model, category, value in finite:
        grouped[(name, model)][category].append(value)
    return [
        FidelityHistogram(
            variant=name,
            metric=metric,
            model=model,
            edges=[float(e) for e in edges],
            counts={
                category: [int(c) for c in np.histogram(values, bins=edges)[0]]
                for category, values in sorted(by_category.items())
            },
        )
        for (name, model), by_category in grouped.items()
    ]


def _bins(bins: int | Iterable[float]) -> int | list[float]:
    return bins if isinstance(bins, int) else list(bins)
