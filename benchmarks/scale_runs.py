"""The scale build's runs, as the worker leaves them: the run, its variants and prompts, done
jobs and their generations, timing summaries, quality metrics, and the media files every
generation of a variant points at.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from app.bench.benchmark import Benchmark, Size, Variant
from app.bench.prompts import PromptRow
from app.models import Generation, GenerationMetric, Job, Prompt, Run, TimingSummary
from app.models import Variant as VariantRow
from app.quality import (
    DEFAULT_CLIP_MODEL,
    FIDELITY_METRICS,
    FIDELITY_PARAMS,
    LPIPS_MODEL,
    TORCHMETRICS,
)
from benchmarks.scale_builder import Builder
from benchmarks.scale_shape import (
    CLIP_PARAMS,
    ENVIRONMENT,
    IMAGE_SIDE,
    LPIPS_REASON,
    ROOT,
    THUMB_SIDE,
    VariantShape,
    resolved_variants,
)


def write_images(media: Path, run_id: int, names: Sequence[str]) -> dict[str, tuple[str, str, str]]:
    """One PNG and one WEBP thumbnail per variant of a run, at the worker's paths
    (`runs/<run>/<variant>/...`, which /media checks for blind runs): name -> (image path,
    thumb path, sha256). The pixels depend on the run id and the name only, so builds of
    every scale can share one media folder."""
    out = {}
    for name in names:
        rng = np.random.default_rng(list(f"{run_id}/{name}".encode()))
        pixels = rng.integers(0, 256, (IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8)
        image = Image.fromarray(pixels, "RGB")
        png = io.BytesIO()
        image.save(png, format="PNG")
        thumb = image.copy()
        thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
        webp = io.BytesIO()
        thumb.save(webp, format="WEBP", quality=82, method=0)
        stem = f"runs/{run_id}/{name}/scale"
        (media / stem).parent.mkdir(parents=True, exist_ok=True)
        (media / f"{stem}.png").write_bytes(png.getvalue())
        (media / f"{stem}.thumb.webp").write_bytes(webp.getvalue())
        out[name] = (
            f"{stem}.png",
            f"{stem}.thumb.webp",
            hashlib.sha256(png.getvalue()).hexdigest(),
        )
    return out


@dataclass(frozen=True)
class BuiltRun:
    id: int
    variant_ids: list[int]
    shapes: list[VariantShape]
    prompt_ids: list[int]
    seeds: list[int]
    created_at: datetime
    finished_at: datetime


def build_run(
    b: Builder,
    name: str,
    prompts: list[PromptRow],
    prompt_file: Path,
    n_variants: int,
    seeds: list[int],
    created_at: datetime,
) -> BuiltRun:
    """One finished run as the worker leaves it: run, variants, prompts, done jobs, their
    generations, two timing summaries per variant and the quality metrics."""
    variants = resolved_variants(n_variants)
    bench = Benchmark(
        name=name,
        description=f"Synthetic {len(variants)} variants × {len(prompts)} prompts × "
        f"{len(seeds)} seeds (benchmarks/scale.py)",
        config_path=ROOT / "configs" / f"{name}.toml",
        prompts_path=prompt_file,
        prompt_limit=len(prompts),
        seeds=seeds,
        width=IMAGE_SIDE,
        height=IMAGE_SIDE,
        sizes=[Size(width=IMAGE_SIDE, height=IMAGE_SIDE)],
        batch_sizes=[1],
        device="cuda",
        hardware=ENVIRONMENT["gpu"],
        usd_per_hour=2.99,
        warmup=2,
        repeats=10,
        blind=False,
        arena="open",
        variants=[variant for _, variant in variants],
    )
    n_v, n_p, n_s = len(variants), len(prompts), len(seeds)
    images = n_v * n_p * n_s
    # The worker's wall time: every image's latency plus a load and a compile per variant.
    mean_latency = float(np.mean([shape.latency_s for shape, _ in variants]))
    finished_at = created_at + timedelta(seconds=images * mean_latency * 1.15 + n_v * 240)
    run_id = b.ids.take("runs", 1)
    fingerprint = hashlib.sha256(
        (bench.fingerprint() + "".join(p.text for p in prompts)).encode()
    ).hexdigest()[:16]
    b.insert(
        Run.__table__,
        [
            {
                "id": run_id,
                "name": name,
                "description": bench.description,
                "fingerprint": fingerprint,
                "config_path": str(bench.config_path),
                "config": bench.model_dump(mode="json"),
                "prompt_set": prompt_file.name,
                "width": IMAGE_SIDE,
                "height": IMAGE_SIDE,
                "device": "cuda",
                "hardware": bench.hardware,
                "usd_per_hour": bench.usd_per_hour,
                "warmup": bench.warmup,
                "repeats": bench.repeats,
                "status": "done",
                "environment": ENVIRONMENT | {"process": "gpu-01:4100"},
                "created_at": created_at,
                "finished_at": finished_at,
                "blind": False,
                "published_at": None,
                "arena": "open",
            }
        ],
        1,
        f"run {run_id} ({name})",
    )
    first_variant = b.ids.take("variants", n_v)
    variant_ids = list(range(first_variant, first_variant + n_v))
    id_of = {shape.name: vid for (shape, _), vid in zip(variants, variant_ids, strict=True)}
    position_of = {vid: position for position, vid in enumerate(variant_ids)}
    # Per variant: its latencies, one per image in (prompt, seed) order, around its median.
    latencies = {
        shape.name: shape.latency_s * b.rng.lognormal(0, 0.04, n_p * n_s) for shape, _ in variants
    }
    variant_rows = []
    for position, (shape, spec) in enumerate(variants):
        compiled = spec.compile is not None
        peak = 24.0 if shape.quantized else 36.2
        variant_rows.append(
            {
                "id": id_of[shape.name],
                "run_id": run_id,
                "name": shape.name,
                "position": position,
                "reference_id": id_of[shape.base] if shape.base else None,
                "config": spec.model_dump(mode="json"),
                "status": "done",
                "error": None,
                "load_s": float(b.rng.uniform(20, 60)),
                "compile_s": float(b.rng.uniform(60, 180)) if compiled else shape.latency_s * 2,
                "peak_mem_gb": peak + float(b.rng.uniform(0, 0.5)),
                "load_peak_gb": peak + 2.1,
                "peak_mem_kind": "cuda_max_memory_allocated",
                "compile_cache": "cold" if compiled else None,
                "environment": ENVIRONMENT | {"process": f"gpu-01:{4200 + position}"},
                "worker": "gpu-01:4100",
                "claimed_at": created_at,
                "heartbeat_at": finished_at,
                "process": f"gpu-01:{4200 + position}",
            }
        )
    b.insert(VariantRow.__table__, variant_rows, n_v, "  variants")

    first_prompt = b.ids.take("prompts", n_p)
    prompt_ids = list(range(first_prompt, first_prompt + n_p))
    b.insert(
        Prompt.__table__,
        (
            {
                "id": pid,
                "run_id": run_id,
                "position": position,
                "text": row.text,
                "category": row.category,
                "challenge": row.challenge,
                "note": row.note,
            }
            for position, (pid, row) in enumerate(zip(prompt_ids, prompts, strict=True))
        ),
        n_p,
        "  prompts",
    )

    # Jobs and generations share their ids: job i made generation i, in (variant, prompt,
    # seed) order, so a reference's image of the same prompt and seed is found by arithmetic.
    first_job = b.ids.take("jobs", images)
    b.ids.take("generations", images)
    files = write_images(b.media, run_id, [shape.name for shape, _ in variants])
    span_s = (finished_at - created_at).total_seconds()

    def done_at(index: int) -> datetime:
        return created_at + timedelta(seconds=span_s * (index + 1) / (images + 1))

    def cells() -> Iterator[tuple[int, VariantShape, Variant, int, int, int]]:
        index = 0
        for (shape, spec), vid in zip(variants, variant_ids, strict=True):
            for pid in prompt_ids:
                for seed in seeds:
                    yield index, shape, spec, vid, pid, seed
                    index += 1

    b.insert(
        Job.__table__,
        (
            {
                "id": first_job + i,
                "run_id": run_id,
                "variant_id": vid,
                "prompt_id": pid,
                "seed": seed,
                "width": IMAGE_SIDE,
                "height": IMAGE_SIDE,
                "status": "done",
                "attempts": 1,
                "error": None,
                "worker": "gpu-01:4100",
                "claimed_at": done_at(i) - timedelta(seconds=shape.latency_s),
                "finished_at": done_at(i),
            }
            for i, shape, _, vid, pid, seed in cells()
        ),
        images,
        "  jobs",
    )
    lora = {
        name: spec.lora.model_dump() if spec.lora else None
        for name, spec in ((s.name, v) for s, v in variants)
    }
    b.insert(
        Generation.__table__,
        (
            {
                "id": first_job + i,
                "job_id": first_job + i,
                "run_id": run_id,
                "variant_id": vid,
                "prompt_id": pid,
                "seed": seed,
                "image_path": files[shape.name][0],
                "thumb_path": files[shape.name][1],
                "image_sha256": files[shape.name][2],
                "width": IMAGE_SIDE,
                "height": IMAGE_SIDE,
                "model": spec.model,
                "steps": spec.steps,
                "guidance": spec.guidance,
                "max_sequence_length": spec.max_sequence_length,
                "dtype": spec.dtype,
                "lora": lora[shape.name],
                "optimizations": spec.optimizations,
                "latency_s": float(latencies[shape.name][i % (n_p * n_s)]),
                "process": f"gpu-01:{4200 + position_of[vid]}",
                "created_at": done_at(i),
            }
            for i, shape, spec, vid, pid, seed in cells()
        ),
        images,
        "  generations",
    )

    timing_rows = []
    for position, (shape, _) in enumerate(variants):
        per_image = latencies[shape.name]
        steady = shape.latency_s * b.rng.lognormal(0, 0.01, bench.repeats)
        for kind, series, warmup in (
            ("steady_state", steady, bench.warmup),
            ("per_image", per_image, 0),
        ):
            p10, median, p90 = np.percentile(series, [10, 50, 90])
            timing_rows.append(
                {
                    "variant_id": id_of[shape.name],
                    "kind": kind,
                    "n": len(series),
                    "warmup": warmup,
                    "latency_median_s": float(median),
                    "latency_p10_s": float(p10),
                    "latency_p90_s": float(p90),
                    "latency_mean_s": float(series.mean()),
                    "latency_min_s": float(series.min()),
                    "latency_max_s": float(series.max()),
                    "device_key": "gpu-01/cuda:0",
                    "process": f"gpu-01:{4200 + position}",
                    "started_at": created_at,
                    "finished_at": finished_at,
                    "recompiles": 0,
                    "graph_breaks": 0,
                    "contention": {
                        "wall_s": round(float(series.sum()), 3),
                        "others_cpu_cores": 0.0,
                        "steal_cores": 0.0,
                        "loadavg_1m": 1.2,
                        "cpu_count": ENVIRONMENT["cpu_count"],
                        "gpu_other_pids": [],
                        "contended": False,
                    },
                    "contended": False,
                    "created_at": finished_at,
                }
            )
    b.ids.take("timing_summaries", len(timing_rows))
    b.insert(TimingSummary.__table__, timing_rows, len(timing_rows), "  timing_summaries")

    # Metrics as app/quality/ stores them: a CLIP score for every image; SSIM and PSNR
    # against the reference's image of the same prompt and seed, and LPIPS "unavailable"
    # with its reason (no backbone weights offline), for every image of a variant with one.
    per_variant = n_p * n_s
    with_reference = sum(1 for shape, _ in variants if shape.base)
    n_metrics = images + with_reference * per_variant * len(FIDELITY_METRICS)

    def metric_rows() -> Iterator[dict[str, Any]]:
        metric_id = b.ids.take("generation_metrics", n_metrics)
        for i, shape, *_ in cells():
            gid, at = first_job + i, done_at(i) + timedelta(days=1)
            clip = float(np.clip(b.rng.normal(31 if "dev" in shape.name else 29, 3), 0, 100))
            yield {
                "id": metric_id,
                "generation_id": gid,
                "metric": "clip_score",
                "model": DEFAULT_CLIP_MODEL,
                "params": CLIP_PARAMS,
                "value": clip,
                "status": "ok",
                "reason": None,
                "created_at": at,
            }
            metric_id += 1
            if shape.base is None:
                continue
            ref_gid = first_job + position_of[id_of[shape.base]] * per_variant + i % per_variant
            params = {"reference_generation_id": ref_gid, "reference_variant": shape.base}
            values: dict[str, float | None] = {
                "ssim": float(np.clip(b.rng.normal(0.72, 0.1), 0, 1)),
                "psnr_db": float(b.rng.normal(21, 3)),
                "lpips": None,
            }
            for metric in FIDELITY_METRICS:
                value = values[metric]
                yield {
                    "id": metric_id,
                    "generation_id": gid,
                    "metric": metric,
                    "model": LPIPS_MODEL if metric == "lpips" else TORCHMETRICS,
                    "params": params | FIDELITY_PARAMS[metric],
                    "value": value,
                    "status": "ok" if value is not None else "unavailable",
                    "reason": None if value is not None else LPIPS_REASON,
                    "created_at": at,
                }
                metric_id += 1

    b.insert(GenerationMetric.__table__, metric_rows(), n_metrics, "  generation_metrics")
    return BuiltRun(
        run_id,
        variant_ids,
        [shape for shape, _ in variants],
        prompt_ids,
        seeds,
        created_at,
        finished_at,
    )
