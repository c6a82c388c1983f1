"""Scale benchmark (issue 11): every request costs what its page shows, not what the database
holds.

A page that reads every image or vote looks fine on the demo (5 variants × 64 prompts, no
votes) and falls over on a real deployment. This script builds a database of a real
deployment's size and times every route on it, so a cost that grows with the database shows
as a ratio between two sizes.

    python benchmarks/scale.py build --database-url URL --media DIR [--scale full|small|tiny]
    python benchmarks/scale.py measure --database-url URL --media DIR [--requests 20]
    python benchmarks/scale.py compare --small URL --full URL --media DIR [--requests 20]

`build` runs the app's migrations on URL (SQLite `sqlite:////abs/path.db` or PostgreSQL
`postgresql+psycopg://...`), then bulk-inserts, with SQLAlchemy Core, a synthetic database
shaped like what the worker and the arena write. `--scale full`: 10 runs; the latest has 12
variants × the 1,632 PartiPrompts × 4 seeds (78,336 done jobs and generations, ~274k
generation_metrics rows, two timing summaries per variant), the 9 older ones 4 variants × 64
prompts × 2 seeds; on the latest run's arena 20,000 raters from ~5,000 IPv4 networks (5% of
them in 4 panels, a few hundred flagged) cast 1,000,000 votes over 30 days, each with its
answered matchup, outcomes from a Bradley–Terry model with ~10% ties and ~3% attention checks,
and a heavy-tailed number of votes per rater. `--scale small` is 10× smaller everywhere,
`--scale tiny` is for the smoke test. Media: one small PNG (and its thumbnail) per run and
variant, which every generation of that variant points at: only `/media` and the arena's
re-encoded images read files. The pixels depend only on the run id and the variant, so builds
of every scale share one media folder. On the 2-core dev box the full build takes ~45 s on
SQLite (680 MiB) and ~2 min on PostgreSQL; `--replace` deletes an SQLite file first, and a
database that has runs already is refused.

`measure` starts the app (uvicorn, one process, page cache off, arena limits raised) on the
database and reports, as Markdown tables:

1. every page and API route (the ROUTES table below) from one client on one keep-alive
   connection: the first hit, then `--requests` sequential requests (at most
   `--route-budget-s` seconds of them), p50 and p90;
2. the exports: time to the first byte, total time, bytes, and the server's RSS before,
   at its peak during, and after;
3. GET `/arena` from 16 concurrent keep-alive clients against 1, `--arena-seconds` each:
   requests/s, p50 and p99, the server's RSS at the end; and one rater's cycle of GET
   `/arena`, POST `/arena/vote` and GET `/arena/reveal/{id}` (this writes `--requests` votes
   into the database);
4. `flux-playground leaderboard RUN` against the same database, the server stopped: wall
   time and peak RSS.

A status other than the route's own (200, or 204 for the leaderboard's unchanged poll) fails
the run: the tables are printed, then the failures, and the exit status is 1. The output
also lists the app's GET routes that no table here times (a new route belongs in ROUTES).

Client and server share this machine's cores: compare sizes and routes with each other, not
with figures from another machine. `compare` measures both databases, one after the other,
and adds a growth table (full p50 / small p50 per route).

Goal (issue 11): no route's p50 grows with the database (a ratio near 1× between the small
and the full build) but for the exports, which are as big as what they export and must
stream it in flat memory.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import io
import json
import os
import platform
import re
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import psutil
from PIL import Image
from sqlalchemy import Connection, create_engine, delete, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.arena.matchups import FLAG_AFTER_FAILURES  # noqa: E402
from app.bench.benchmark import (  # noqa: E402
    Benchmark,
    CacheSpec,
    CompileSpec,
    LoraSpec,
    Size,
    Variant,
)
from app.bench.prompts import PromptRow, load_prompts  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.models import (  # noqa: E402
    Generation,
    GenerationMetric,
    Job,
    Matchup,
    Panel,
    Prompt,
    Rater,
    Run,
    TimingSummary,
    Vote,
)
from app.models import Variant as VariantRow  # noqa: E402
from app.quality import (  # noqa: E402
    DEFAULT_CLIP_MODEL,
    FIDELITY_METRICS,
    FIDELITY_PARAMS,
    LPIPS_MODEL,
    TORCHMETRICS,
)
from app.web.devserver import serve_in_subprocess  # noqa: E402
from benchmarks.loopback import LoopbackClient  # noqa: E402

# --- the shape of the synthetic database ------------------------------------------------


@dataclass(frozen=True)
class Scale:
    runs: int  # the latest one big, the others older and small
    variants: int  # of the latest run
    prompts: int
    seeds: int
    old_variants: int
    old_prompts: int
    old_seeds: int
    raters: int  # the arena, on the latest run only
    networks: int
    votes: int
    careless: int  # raters who answer attention checks at random (and get flagged)
    panels: int


SCALES = {
    "full": Scale(10, 12, 1632, 4, 4, 64, 2, 20_000, 5_000, 1_000_000, 300, 4),
    "small": Scale(10, 12, 164, 4, 4, 8, 2, 2_000, 500, 100_000, 30, 4),
    "tiny": Scale(2, 3, 10, 2, 2, 5, 1, 50, 20, 500, 3, 2),
}

PARTI = ROOT / "prompts" / "PartiPrompts.tsv"
PARTI_64 = ROOT / "prompts" / "parti-64.tsv"
BATCH = 10_000
IMAGE_SIDE = 64
THUMB_SIDE = 256  # what app/worker/images.py bounds thumbnails to
PANEL_SHARE = 0.05
ATTENTION_SHARE = 0.03
TIE_SHARE, BOTH_BAD_SHARE = 0.10, 0.03
# A rater's votes per session come seconds apart, sessions hours or days apart.
VOTE_GAP_S, SESSION_GAP_S, NEW_SESSION = 8.0, 86_400.0, 0.03
VOTING_DAYS = 30

SCHNELL = {
    "model": "black-forest-labs/FLUX.1-schnell",
    "steps": 4,
    "guidance": 0.0,
    "max_sequence_length": 256,
}
DEV = {"model": "black-forest-labs/FLUX.1-dev", "steps": 28, "guidance": 3.5}
TURBO = LoraSpec(
    path="alimama-creative/FLUX.1-Turbo-Alpha",
    weight_name="diffusion_pytorch_model.safetensors",
)


@dataclass(frozen=True)
class VariantShape:
    name: str
    base: str | None
    settings: dict[str, Any]
    latency_s: float  # median per image on the H100 of the config, roughly
    rating: float  # true Bradley–Terry strength on the Elo scale, for the votes
    quantized: bool = False


# References first, so the first N of the list make sense for every scale: like
# configs/flux.toml, each optimized variant inherits from (and is compared with) schnell or dev.
VARIANTS = [
    VariantShape("schnell", None, SCHNELL, 0.62, 1000),
    VariantShape("dev", None, DEV, 4.1, 1090),
    VariantShape(
        "schnell-fast",
        "schnell",
        {
            "fuse_qkv": True,
            "quantize": "int8_dynamic",
            "compile": CompileSpec(mode="max-autotune", fullgraph=True),
        },
        0.41,
        985,
        quantized=True,
    ),
    VariantShape("dev-turbo", "dev", {"steps": 8, "lora": TURBO}, 1.22, 1060),
    VariantShape(
        "schnell-int8", "schnell", {"quantize": "int8_weight_only"}, 0.58, 995, quantized=True
    ),
    VariantShape(
        "dev-fast",
        "dev",
        {"cache": CacheSpec(threshold=0.08), "compile": CompileSpec(mode="max-autotune")},
        2.35,
        1070,
    ),
    VariantShape("schnell-compile", "schnell", {"compile": CompileSpec()}, 0.52, 1000),
    VariantShape(
        "dev-fp8",
        "dev",
        {"quantize": "fp8_dynamic", "compile": CompileSpec(mode="max-autotune-no-cudagraphs")},
        2.9,
        1080,
        quantized=True,
    ),
    VariantShape("schnell-cache", "schnell", {"cache": CacheSpec(threshold=0.1)}, 0.47, 975),
    VariantShape("dev-onediff", "dev", {"compile": CompileSpec(backend="onediff")}, 3.3, 1090),
    VariantShape("schnell-fp8", "schnell", {"quantize": "fp8_dynamic"}, 0.5, 990, quantized=True),
    VariantShape("dev-int8", "dev", {"quantize": "int8_weight_only"}, 3.8, 1085, quantized=True),
]

ENVIRONMENT: dict[str, Any] = {
    "host": "gpu-01",
    "platform": "Linux-6.8.0-x86_64-with-glibc2.39",
    "python": "3.11.11",
    "cpu": "AMD EPYC 9654 96-Core Processor",
    "cpu_count": 26,
    "torch_threads": 13,
    "device": "cuda",
    "packages": {
        "torch": "2.13.0+cu128",
        "diffusers": "0.42.1",
        "transformers": "5.24.0",
        "torchao": "0.18.0",
        "peft": "0.21.2",
        "accelerate": "1.15.0",
    },
    "gpu": "NVIDIA H100 80GB HBM3",
    "gpu_memory_gb": 85.0,
    "compute_capability": "9.0",
    "cuda": "12.8",
    "cudnn": 91002,
    "driver": "570.124.06",
}
LPIPS_REASON = (
    f"cannot load LPIPS ({LPIPS_MODEL}): RuntimeError: the AlexNet backbone weights are not "
    "in the torch hub cache and the Hub cannot be reached"
)
CLIP_PARAMS = {
    "transformers": ENVIRONMENT["packages"]["transformers"],
    "path": DEFAULT_CLIP_MODEL,
    "max_length": 77,
}


def resolved_variants(count: int) -> list[tuple[VariantShape, Variant]]:
    """The first `count` shapes, with inheritance resolved as app/bench/benchmark.py does."""
    shapes = VARIANTS[:count]
    by_name = {shape.name: shape for shape in shapes}
    out = []
    for shape in shapes:
        settings = {"dtype": "bfloat16", **(by_name[shape.base].settings if shape.base else {})}
        settings |= shape.settings
        description = f"{shape.name}, synthetic (benchmarks/scale.py)"
        out.append(
            (shape, Variant(name=shape.name, base=shape.base, description=description, **settings))
        )
    return out


# --- build --------------------------------------------------------------------------------


class Ids:
    """Explicit primary keys, counted here: every row is inserted with its id, so related rows
    need no RETURNING round trip (PostgreSQL's sequences are moved past them at the end)."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def take(self, table: str, n: int) -> int:
        first = self.next.get(table, 1)
        self.next[table] = first + n
        return first


@dataclass
class Builder:
    conn: Connection
    media: Path
    scale: Scale
    rng: np.random.Generator
    now: datetime
    ids: Ids = field(default_factory=Ids)
    rows_total: int = 0

    def insert(self, table: Any, rows: Iterable[dict[str, Any]], total: int, label: str) -> None:
        """Insert in batches of BATCH rows, one executemany and one commit each; print rows/s."""
        start, done, batch = time.perf_counter(), 0, []
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH:
                self.conn.execute(insert(table), batch)
                self.conn.commit()
                done += len(batch)
                batch = []
                if done % (BATCH * 10) == 0 and done < total:
                    progress(f"  {label}: {done:,}/{total:,}", start, done)
        if batch:
            self.conn.execute(insert(table), batch)
            self.conn.commit()
            done += len(batch)
        self.rows_total += done
        progress(f"{label}: {done:,} rows", start, done)


def progress(what: str, start: float, rows: int) -> None:
    seconds = time.perf_counter() - start
    rate = f", {rows / seconds:,.0f} rows/s" if seconds > 0 and rows else ""
    print(f"{what} in {seconds:.1f} s{rate}", file=sys.stderr, flush=True)


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

    # Metrics as app/quality.py stores them: a CLIP score for every image; SSIM and PSNR
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


def build_arena(b: Builder, run: BuiltRun) -> None:
    """Panels, raters, and one answered matchup per vote, all on `run`."""
    s, rng = b.scale, b.rng
    n_r, n_v = s.raters, s.votes
    end = b.now - timedelta(minutes=1)
    window_s = VOTING_DAYS * 86_400.0
    window_start = end - timedelta(seconds=window_s)

    # Panels: invitation codes as /admin makes them; 5% of the raters joined one.
    first_panel = b.ids.take("panels", s.panels)
    panel_ids = list(range(first_panel, first_panel + s.panels))
    b.insert(
        Panel.__table__,
        (
            {
                "id": pid,
                "code": base64.urlsafe_b64encode(rng.bytes(8)).decode().rstrip("="),
                "name": f"Panel {k + 1}",
                "created_at": window_start - timedelta(days=1),
            }
            for k, pid in enumerate(panel_ids)
        ),
        s.panels,
        "panels",
    )
    panel_of = np.full(n_r, -1)
    members = rng.choice(n_r, max(1, round(n_r * PANEL_SHARE)), replace=False)
    sizes = rng.dirichlet(np.ones(s.panels) * 2)
    panel_of[members] = rng.choice(s.panels, len(members), p=sizes)

    # Networks: the first raters one each, the rest Zipf-like (an office or a mobile carrier's
    # NAT holds hundreds: ~650 raters behind the biggest at full scale).
    addresses = np.unique(rng.integers(11 << 24, 223 << 24, s.networks * 2))
    # Not 127/8: the benchmark's own clients vote from 127.0.0.1.
    addresses = rng.permutation(addresses[addresses >> 24 != 127])[: s.networks]
    networks = [
        f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}" for a in addresses.tolist()
    ]
    order, first = rng.permutation(n_r), min(n_r, len(networks))
    weights = 1.0 / np.arange(1, len(networks) + 1) ** 0.8
    net_of = np.empty(n_r, dtype=np.int64)
    net_of[order[:first]] = np.arange(first)
    net_of[order[first:]] = rng.choice(len(networks), n_r - first, p=weights / weights.sum())

    # Votes per rater: lognormal, so most cast a few and some hundreds or thousands.
    w = rng.lognormal(0, 1.3, n_r)
    counts = 1 + rng.multinomial(n_v - n_r, w / w.sum())
    rater = np.repeat(np.arange(n_r), counts)
    firsts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lasts = np.cumsum(counts) - 1
    gaps = np.where(
        rng.random(n_v) < NEW_SESSION,
        rng.exponential(SESSION_GAP_S, n_v),
        rng.exponential(VOTE_GAP_S, n_v),
    )
    gaps[firsts] = 0.0
    cumulative = np.cumsum(gaps)
    offset = cumulative - cumulative[firsts][rater]
    span = offset[lasts]
    squeeze = np.minimum(1.0, (window_s * 0.98) / np.maximum(span, 1.0))
    offset *= squeeze[rater]
    start = rng.random(n_r) * (window_s - span * squeeze)
    t = start[rater] + offset
    order = np.argsort(t, kind="stable")
    rater, t = rater[order], t[order]

    careless = np.zeros(n_r, dtype=bool)
    careless[rng.choice(n_r, s.careless, replace=False)] = True
    n_variants = len(run.variant_ids)
    attention = rng.random(n_v) < ATTENTION_SHARE
    left = rng.integers(0, n_variants, n_v)
    right = np.where(attention, left, (left + rng.integers(1, n_variants, n_v)) % n_variants)
    prompt = rng.integers(0, len(run.prompt_ids), n_v)
    seed = rng.integers(0, len(run.seeds), n_v)
    ratings = np.array([shape.rating for shape in run.shapes])
    # Bradley–Terry with a small position bias (people click left a little more often).
    p_left = 1.0 / (1.0 + 10 ** ((ratings[right] - ratings[left] - 12) / 400))
    u = rng.random(n_v)
    outcome = np.where(rng.random(n_v) < p_left, 0, 1)
    outcome = np.where(u < TIE_SHARE + BOTH_BAD_SHARE, 3, outcome)
    outcome = np.where(u < TIE_SHARE, 2, outcome)
    # Attention checks: an honest rater answers tie or both bad, nearly always.
    honest = np.where(u < 0.85, 2, np.where(u < 0.98, 3, rng.integers(0, 2, n_v)))
    sloppy = rng.integers(0, 4, n_v)
    attention_answer = np.where(careless[rater], sloppy, honest)
    outcome = np.where(attention, attention_answer, outcome)
    passed = attention & (outcome >= 2)
    failed = attention & (outcome < 2)
    n_passed = np.bincount(rater[passed], minlength=n_r)
    n_failed = np.bincount(rater[failed], minlength=n_r)
    flagged = careless | (n_failed >= FLAG_AFTER_FAILURES)

    rater_ids = [uuid.UUID(bytes=rng.bytes(16), version=4).hex for _ in range(n_r)]
    first_vote_t = np.full(n_r, np.inf)
    np.minimum.at(first_vote_t, rater, t)
    b.insert(
        Rater.__table__,
        (
            {
                "id": rater_ids[r],
                "panel_id": panel_ids[panel_of[r]] if panel_of[r] >= 0 else None,
                "created_at": window_start + timedelta(seconds=float(first_vote_t[r])),
                "attention_passed": int(n_passed[r]),
                "attention_failed": int(n_failed[r]),
                "flagged": bool(flagged[r]),
                "network": networks[net_of[r]],
            }
            for r in range(n_r)
        ),
        n_r,
        f"raters ({int(flagged.sum())} flagged, {len(set(net_of.tolist()))} networks)",
    )

    first_id = b.ids.take("matchups", n_v)
    b.ids.take("votes", n_v)
    nonce_bytes = rng.bytes(12 * n_v)
    issued_before = rng.uniform(2, 40, n_v)
    names = ("left", "right", "tie", "both_bad")
    # Python lists: the drivers bind ints, not numpy scalars.
    cols = {
        "rater": rater.tolist(),
        "t": t.tolist(),
        "left": left.tolist(),
        "right": right.tolist(),
        "prompt": prompt.tolist(),
        "seed": seed.tolist(),
        "attention": attention.tolist(),
        "outcome": outcome.tolist(),
        "issued": issued_before.tolist(),
    }
    panel_list, net_list = panel_of.tolist(), net_of.tolist()

    def common(i: int) -> dict[str, Any]:
        r = cols["rater"][i]
        return {
            "id": first_id + i,
            "run_id": run.id,
            "prompt_id": run.prompt_ids[cols["prompt"][i]],
            "seed": run.seeds[cols["seed"][i]],
            "left_variant_id": run.variant_ids[cols["left"][i]],
            "right_variant_id": run.variant_ids[cols["right"][i]],
            "rater_id": rater_ids[r],
            "attention_check": cols["attention"][i],
        }

    def matchups() -> Iterator[dict[str, Any]]:
        for i in range(n_v):
            at = window_start + timedelta(seconds=cols["t"][i])
            yield common(i) | {
                "issued_at": at - timedelta(seconds=cols["issued"][i]),
                "answered_at": at,
                "nonce": base64.urlsafe_b64encode(nonce_bytes[12 * i : 12 * i + 12]).decode(),
            }

    def votes() -> Iterator[dict[str, Any]]:
        for i in range(n_v):
            r = cols["rater"][i]
            yield common(i) | {
                "matchup_id": first_id + i,
                "outcome": names[cols["outcome"][i]],
                "panel_id": panel_ids[panel_list[r]] if panel_list[r] >= 0 else None,
                "network": networks[net_list[r]],
                "created_at": window_start + timedelta(seconds=cols["t"][i]),
            }

    b.insert(Matchup.__table__, matchups(), n_v, "matchups")
    b.insert(Vote.__table__, votes(), n_v, "votes")


def build(url: str, media: Path, scale_name: str, seed: int, replace: bool) -> None:
    scale = SCALES[scale_name]
    started = time.perf_counter()
    parsed = make_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    if replace and sqlite and parsed.database:
        for suffix in ("", "-wal", "-shm"):
            Path(parsed.database + suffix).unlink(missing_ok=True)
    upgrade(url)
    media.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    with engine.connect() as conn:
        if conn.scalar(select(func.count()).select_from(Run.__table__)):
            raise SystemExit(f"{url}: the database has runs already; build needs an empty one")
        if sqlite:
            # This connection only: WAL as the app has it, no fsync (a crash means a rebuild),
            # a big page cache for the index inserts.
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
            conn.exec_driver_sql("PRAGMA cache_size=-262144")
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()
        now = datetime.now(UTC).replace(microsecond=0)
        b = Builder(conn, media.resolve(), scale, np.random.default_rng(seed), now)
        parti = load_prompts(PARTI)
        old_prompts = load_prompts(PARTI_64)[: scale.old_prompts]
        # Spread over the file: every category and challenge is in the smaller sets too.
        picks = np.unique(np.linspace(0, len(parti) - 1, scale.prompts).round().astype(int))
        latest_prompts = [parti[i] for i in picks.tolist()]
        latest_created = now - timedelta(days=VOTING_DAYS + 10)
        for k in range(scale.runs - 1):
            build_run(
                b,
                f"scale-weekly-{k + 1:02d}",
                old_prompts,
                PARTI_64,
                scale.old_variants,
                list(range(scale.old_seeds)),
                latest_created - timedelta(days=7 * (scale.runs - 1 - k)),
            )
        latest = build_run(
            b,
            "scale-parti",
            latest_prompts,
            PARTI,
            scale.variants,
            list(range(scale.seeds)),
            latest_created,
        )
        build_arena(b, latest)
        finish(conn, sqlite, b.ids)
    engine.dispose()
    seconds = time.perf_counter() - started
    print(
        f"built {scale_name}: {b.rows_total:,} rows in {seconds:.0f} s "
        f"({b.rows_total / seconds:,.0f} rows/s), {database_size(url)}; media in {media}",
        flush=True,
    )


def finish(conn: Connection, sqlite: bool, ids: Ids) -> None:
    if sqlite:
        # Fold the WAL into the file, so its size is the database's.
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    # Rows went in with explicit ids: move each sequence past them, or the app's next
    # insert (a vote) would collide.
    for table in ids.next:
        conn.execute(
            text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), MAX(id)) FROM {table}")
        )
    conn.commit()
    # What autovacuum would soon do on a live server.
    with conn.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as auto:
        auto.exec_driver_sql("ANALYZE")


def database_size(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())
        return f"SQLite {size / 2**20:,.0f} MiB"
    engine = create_engine(url)
    with engine.connect() as conn:
        size = conn.scalar(text("SELECT pg_database_size(current_database())")) or 0
    engine.dispose()
    return f"PostgreSQL {size / 2**20:,.0f} MiB"


# --- measure ------------------------------------------------------------------------------

HTMX = "HX-Request: true"
JSON_ANSWER = "Accept: application/json"
ADMIN_TOKEN = secrets.token_urlsafe(24)
# Enough of a body to find a token or a version in; the rest is counted, not kept.
KEEP_BODY = 1 << 20
TOKEN_INPUT = re.compile(r"<input\b[^>]*\bname=\"token\"[^>]*>")
VALUE = re.compile(r"\bvalue=\"([^\"]+)\"")
BOARD_VERSION = re.compile(r"\bdata-version=\"([^\"]+)\"")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Route:
    """One request the benchmark times. `target` and `headers` name values of the database
    (`{run}`, `{prompt}`, ...: see `discover`) or of an earlier answer (`{leaderboard_version}`,
    `{arena_token}`: see `DYNAMIC`) in braces; `pattern` is the app's route it exercises."""

    label: str
    target: str
    pattern: str
    headers: tuple[str, ...] = ()
    status: int = 200
    admin: bool = False


# Every page and API route, in the order measured: a cache one route fills is warm for the
# routes after it, so the leaderboard page comes before everything else that ranks.
ROUTES = [
    Route("overview", "/", "/"),
    Route("runs", "/runs", "/runs"),
    Route("run page", "/runs/{run}", "/runs/{run_id}"),
    Route(
        "run page, progress poll (htmx)",
        "/runs/{run}",
        "/runs/{run_id}",
        (HTMX, "HX-Target: run-progress"),
    ),
    Route("gallery", "/prompts?run={run}", "/prompts"),
    Route(
        "gallery, more rows (htmx, page 2)",
        "/prompts?run={run}&page={second_gallery_page}",
        "/prompts",
        (HTMX, "HX-Target: load-more"),
    ),
    Route(
        "gallery, more rows (htmx, last page)",
        "/prompts?run={run}&page={last_gallery_page}",
        "/prompts",
        (HTMX, "HX-Target: load-more"),
    ),
    # A word in about a third of PartiPrompts: the results fill the page on both sizes, so
    # the ratio compares equal pages ("dog" shows 2 rows on the small build, 24 on the full).
    Route(
        "gallery, search (htmx)",
        "/prompts?run={run}&q=the",
        "/prompts",
        (HTMX, "HX-Target: results"),
    ),
    Route("prompt page", "/prompts/{prompt}?run={run}", "/prompts/{prompt_id}"),
    Route("leaderboard", "/leaderboard?run={run}", "/leaderboard"),
    Route(
        "leaderboard, 2 s poll (htmx, unchanged)",
        "/leaderboard?run={run}",
        "/leaderboard",
        (HTMX, "X-Leaderboard-Version: {leaderboard_version}"),
        status=204,
    ),
    Route("leaderboard, one panel", "/leaderboard?run={run}&panel={panel}", "/leaderboard"),
    Route("dashboard", "/dashboard", "/dashboard"),
    Route("admin", "/admin", "/admin", admin=True),
    Route("admin, last rater page", "/admin?page={last_rater_page}", "/admin", admin=True),
    Route("admin, flagged raters", "/admin?flagged=true", "/admin", admin=True),
    Route("arena", "/arena?run={run}", "/arena"),
    Route("arena image", "/arena/images/{arena_token}/left", "/arena/images/{token}/{side}"),
    Route("media file", "/media/{media_path}", "/media"),
    Route("healthz", "/healthz", "/healthz"),
    Route("API docs page", "/docs", "/docs"),
    Route("OpenAPI schema", "/openapi.json", "/openapi.json"),
    Route("API runs", "/api/v1/runs", "/api/v1/runs"),
    Route("API run", "/api/v1/runs/{run}", "/api/v1/runs/{run_id}"),
    Route("API variants", "/api/v1/runs/{run}/variants", "/api/v1/runs/{run_id}/variants"),
    Route("API prompts", "/api/v1/runs/{run}/prompts", "/api/v1/runs/{run_id}/prompts"),
    Route(
        "API generations, first page",
        "/api/v1/runs/{run}/generations",
        "/api/v1/runs/{run_id}/generations",
    ),
    Route(
        "API generations, last page (`next` cursor)",
        "/api/v1/runs/{run}/generations?{last_cursor}",
        "/api/v1/runs/{run_id}/generations",
    ),
    Route(
        "API generations, last page (`offset`)",
        "/api/v1/runs/{run}/generations?offset={last_offset}",
        "/api/v1/runs/{run_id}/generations",
    ),
    Route("API leaderboard", "/api/v1/runs/{run}/leaderboard", "/api/v1/runs/{run_id}/leaderboard"),
]

EXPORTS = [
    Route(
        "generations.csv",
        "/api/v1/runs/{run}/export/generations.csv",
        "/api/v1/runs/{run_id}/export/generations.csv",
    ),
    Route(
        "variants.csv",
        "/api/v1/runs/{run}/export/variants.csv",
        "/api/v1/runs/{run_id}/export/variants.csv",
    ),
    Route(
        "leaderboard.csv",
        "/api/v1/runs/{run}/export/leaderboard.csv",
        "/api/v1/runs/{run_id}/export/leaderboard.csv",
    ),
    Route("votes.csv, all runs", "/admin/export/votes.csv", "/admin/export/votes.csv", admin=True),
    Route(
        "votes.jsonl, all runs",
        "/admin/export/votes.jsonl",
        "/admin/export/votes.jsonl",
        admin=True,
    ),
]

# GET routes timed outside the two tables above.
ELSEWHERE = {
    "/arena/reveal/{matchup_id}": "the vote cycle",
    "/static": "a mount of fixed files, like /media",
}

VOTE_CYCLE = ("GET /arena (htmx)", "POST /arena/vote (JSON)", "GET /arena/reveal/{matchup_id}")


@dataclass(frozen=True)
class Answer:
    status: int
    first_byte_s: float
    total_s: float
    size: int
    body: bytes  # the first KEEP_BODY bytes


class TimedClient(LoopbackClient):
    """benchmarks/loopback.py's client, plus what these routes need that it does not read:
    answers without a Content-Length (204, a streamed export in chunks), and when the first
    byte of the body came."""

    def drop(self) -> None:
        """Close the connection without waiting; the next request opens a new one."""
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None

    async def fetch(self, target: str, headers: Sequence[str] = ()) -> Answer:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        head = [f"GET {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if self.cookie:
            head.append(f"Cookie: {self.cookie}")
        head += headers
        start = time.perf_counter()
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status, fields = int(lines[0].split()[1]), {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "set-cookie":
                self.cookie = value.strip().split(";")[0]
            elif name:
                fields[name.lower()] = value.strip()
        body, size, first = bytearray(), 0, None

        def take(chunk: bytes) -> None:
            nonlocal size, first
            if chunk and first is None:
                first = time.perf_counter()
            size += len(chunk)
            if len(body) < KEEP_BODY:
                body.extend(chunk[: KEEP_BODY - len(body)])

        if status in (204, 304):
            pass
        elif "content-length" in fields:
            remaining = int(fields["content-length"])
            while remaining:
                chunk = await reader.read(min(remaining, 1 << 16))
                if not chunk:
                    raise asyncio.IncompleteReadError(bytes(body), remaining)
                take(chunk)
                remaining -= len(chunk)
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            while n := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                take(await reader.readexactly(n))
                await reader.readexactly(2)
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the blank line
                pass
        else:
            while chunk := await reader.read(1 << 16):
                take(chunk)
            fields["connection"] = "close"
        if fields.get("connection", "").lower() == "close":
            self.drop()
        end = time.perf_counter()
        return Answer(status, (first or end) - start, end - start, size, bytes(body))


@dataclass
class Timed:
    label: str
    target: str
    expected: int
    first_s: float | None = None
    warm_s: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    problem: str | None = None

    def add(self, answer: Answer) -> None:
        self.statuses.append(answer.status)
        if answer.status == 0:  # no answer: nothing to time
            pass
        elif self.first_s is None:
            self.first_s = answer.total_s
        else:
            self.warm_s.append(answer.total_s)
        if answer.status != self.expected and self.problem is None:
            snippet = answer.body[:300].decode("utf-8", "replace")
            self.problem = f"HTTP {answer.status} (expected {self.expected}): {snippet}"

    def percentile(self, q: float) -> float | None:
        samples = self.warm_s or ([self.first_s] if self.first_s is not None else [])
        return float(np.percentile(samples, q)) if samples else None

    @property
    def status(self) -> str:
        if self.problem is not None:
            return f"✗ {', '.join(sorted({str(s) for s in self.statuses}) or {'none'})}"
        return str(self.expected)


@dataclass
class ExportResult:
    label: str
    target: str
    answer: Answer
    rss_mib: tuple[float, float, float]  # before, peak during, after
    problem: str | None


@dataclass
class LoadResult:
    clients: int
    requests: int
    seconds: float
    latencies: list[float]
    rss_mib: float
    problem: str | None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class CliResult:
    command: str
    wall_s: float
    peak_rss_mib: float
    exit_code: int
    tail: str


@dataclass
class Report:
    url: str
    header: list[str]
    routes: list[Timed]
    exports: list[ExportResult]
    arena: list[LoadResult]
    votes: list[Timed]
    cli: list[CliResult]  # the stored leaderboard current, then nothing stored
    unmeasured: list[str]

    @property
    def problems(self) -> list[str]:
        out = [
            f"{t.label} `{t.target}`: {t.problem}" for t in self.routes + self.votes if t.problem
        ]
        out += [f"export {e.label}: {e.problem}" for e in self.exports if e.problem]
        out += [f"arena, {a.clients} clients: {a.problem}" for a in self.arena if a.problem]
        for cli in self.cli:
            if cli.exit_code != 0:
                out.append(f"{cli.command}: exit {cli.exit_code}: {cli.tail}")
        return out


def _cursor_before(conn: Any, run: int, offset: int) -> str:
    """The query that reads the generations API's page at `offset` as a client paging
    through the run does: `after=` the `next` cursor of the page before it (the API's
    order: variant position, prompt position, seed); a run of one page has no cursor."""
    if offset == 0:
        return "offset=0"
    row = conn.execute(
        select(VariantRow.position, Prompt.position, Generation.seed)
        .join(VariantRow, Generation.variant_id == VariantRow.id)
        .join(Prompt, Generation.prompt_id == Prompt.id)
        .where(Generation.run_id == run)
        .order_by(VariantRow.position, Prompt.position, Generation.seed)
        .offset(offset - 1)
        .limit(1)
    ).one()
    return "after=" + ".".join(str(part) for part in row)


def discover(url: str) -> dict[str, Any]:
    """The values the route table names: the latest run and its rows."""
    from app.web.admin import RATERS_PER_PAGE
    from app.web.gallery import PER_PAGE

    engine = create_engine(url)
    with engine.connect() as conn:
        run = conn.scalar(select(func.max(Run.id)))
        if run is None:
            raise SystemExit(f"{url}: no runs; build the database first")
        prompts = list(
            conn.scalars(select(Prompt.id).where(Prompt.run_id == run).order_by(Prompt.position))
        )
        generations = (
            conn.scalar(
                select(func.count()).select_from(Generation).where(Generation.run_id == run)
            )
            or 0
        )
        raters = conn.scalar(select(func.count()).select_from(Rater)) or 0
        votes = conn.scalar(select(func.count()).select_from(Vote)) or 0
        runs = conn.scalar(select(func.count()).select_from(Run)) or 0
        panel = conn.scalar(select(Panel.code).order_by(Panel.id).limit(1))
        media_path = conn.scalar(
            select(Generation.image_path).where(Generation.run_id == run).limit(1)
        )
        last_cursor = _cursor_before(conn, run, max(0, (generations - 1) // 100 * 100))
    engine.dispose()
    return {
        "run": run,
        "prompt": prompts[len(prompts) // 2],
        "panel": panel or "no-panel",
        "media_path": media_path,
        "last_offset": max(0, (generations - 1) // 100 * 100),
        "last_cursor": last_cursor,
        "last_gallery_page": max(1, -(-len(prompts) // PER_PAGE)),
        # A database of one page has no page 2: its only page stands in.
        "second_gallery_page": min(2, max(1, -(-len(prompts) // PER_PAGE))),
        "last_rater_page": max(0, (raters - 1) // RATERS_PER_PAGE),
        "counts": f"{runs} runs, {len(prompts):,} prompts and {generations:,} generations "
        f"in the latest (run {run}), {raters:,} raters, {votes:,} votes",
    }


async def fetch_version(client: TimedClient, values: dict[str, Any]) -> str:
    page = await client.fetch(f"/leaderboard?run={values['run']}")
    found = BOARD_VERSION.search(page.body.decode("utf-8", "replace"))
    return found.group(1) if found else "none"


async def fetch_token(client: TimedClient, values: dict[str, Any]) -> str:
    page = await client.fetch(f"/arena?run={values['run']}", (HTMX,))
    tag = TOKEN_INPUT.search(page.body.decode("utf-8", "replace"))
    token = VALUE.search(tag.group(0)) if tag else None
    return token.group(1) if token else "none"


# Values read from an earlier answer, fetched (untimed) just before the route that needs them.
DYNAMIC: dict[str, Callable[[TimedClient, dict[str, Any]], Awaitable[str]]] = {
    "leaderboard_version": fetch_version,
    "arena_token": fetch_token,
}


async def resolve(
    route: Route, values: dict[str, Any], client: TimedClient
) -> tuple[str, tuple[str, ...]]:
    needed = set(PLACEHOLDER.findall(route.target + "".join(route.headers)))
    for name in sorted(needed & DYNAMIC.keys()):
        values[name] = await DYNAMIC[name](client, values)
    headers = tuple(h.format(**values) for h in route.headers)
    if route.admin:
        headers += (f"Authorization: Bearer {ADMIN_TOKEN}",)
    return route.target.format(**values), headers


async def timed_fetch(
    client: TimedClient, target: str, headers: Sequence[str], timeout_s: float
) -> Answer:
    try:
        return await asyncio.wait_for(client.fetch(target, headers), timeout_s)
    except (TimeoutError, OSError, asyncio.IncompleteReadError) as err:
        # The connection is in an unknown state: the next request opens a new one.
        client.drop()
        what = f"no answer in {timeout_s:g} s" if isinstance(err, TimeoutError) else repr(err)
        return Answer(0, 0.0, 0.0, 0, what.encode())


def wait_until_idle(
    server: psutil.Process, *, below: float = 0.05, window_s: float = 0.5, limit_s: float = 60.0
) -> float:
    """Wait until the server uses under `below` of a core over `window_s` (at most
    `limit_s`); the seconds waited. Some pages start work in the background (the dashboard
    its metric agreement, a panel's board its ranking): that work would otherwise be timed
    as part of whichever route comes next."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit_s:
        before = server.cpu_times()
        time.sleep(window_s)
        after = server.cpu_times()
        if (after.user + after.system - before.user - before.system) / window_s < below:
            break
    return time.perf_counter() - started


async def time_routes(
    base: str,
    values: dict[str, Any],
    requests: int,
    budget_s: float,
    timeout_s: float,
    server: psutil.Process,
) -> list[Timed]:
    """Each route from one client on one keep-alive connection: a first hit, then up to
    `requests` more, sequentially, while the route has used under `budget_s` seconds. Each
    route starts on an idle server (wait_until_idle)."""
    client, out = TimedClient(base), []
    for route in ROUTES:
        waited = wait_until_idle(server)
        if waited > 1:
            note(f"waited {waited:.1f} s for the server's background work before {route.label}")
            # uvicorn closes a keep-alive connection idle for 5 s: start a fresh one.
            client.drop()
        target, headers = await resolve(route, values, client)
        # A token in the table would be 200 characters of noise: it shows as its name.
        shown = route.target.format(**(values | {name: f"{{{name}}}" for name in DYNAMIC}))
        timed = Timed(route.label, shown, route.status)
        started = time.perf_counter()
        for _ in range(requests + 1):
            answer = await timed_fetch(client, target, headers, timeout_s)
            timed.add(answer)
            if answer.status >= 500:
                # uvicorn drops the connection after an unhandled error, without saying so.
                client.drop()
            if answer.status == 0 or time.perf_counter() - started > budget_s:
                break
        note(f"{route.label}: first {ms(timed.first_s)} ms, p50 {ms(timed.percentile(50))} ms")
        out.append(timed)
    await client.aclose()
    return out


class RssPeak:
    """The server's RSS before, at its peak during (sampled every 10 ms), and after a block."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.before = self.peak = self.after = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def rss(self) -> float:
        return float(self.process.memory_info().rss) / 2**20

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> RssPeak:
        self.before = self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.after = self.rss()
        self.peak = max(self.peak, self.after)


async def time_exports(
    base: str, values: dict[str, Any], server: psutil.Process, timeout_s: float
) -> list[ExportResult]:
    out = []
    for route in EXPORTS:
        client = TimedClient(base)
        target, headers = await resolve(route, values, client)
        with RssPeak(server) as rss:
            answer = await timed_fetch(client, target, headers, timeout_s)
        await client.aclose()
        problem = None
        if answer.status != route.status:
            problem = f"HTTP {answer.status}: {answer.body[:300].decode('utf-8', 'replace')}"
        note(f"export {route.label}: {answer.total_s:.2f} s, {answer.size / 2**20:.1f} MiB")
        out.append(
            ExportResult(route.label, target, answer, (rss.before, rss.peak, rss.after), problem)
        )
    return out


async def arena_load(
    base: str, run: int, clients: int, seconds: float, server: psutil.Process
) -> LoadResult:
    """GET /arena?run= from `clients` keep-alive clients (each its own rater cookie) for
    `seconds`: what many raters opening matchups at once cost."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connections = [LoopbackClient(base) for _ in range(clients)]
    deadline = time.perf_counter() + seconds

    async def rater(http: LoopbackClient) -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            status, _ = await http.request("GET", f"/arena?run={run}")
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(rater(http) for http in connections))
    wall = time.perf_counter() - start
    for http in connections:
        await http.aclose()
    rss = float(server.memory_info().rss) / 2**20
    bad = {s: n for s, n in statuses.items() if s != 200}
    note(f"arena, {clients} clients: {len(latencies) / wall:.0f} requests/s")
    return LoadResult(
        clients, len(latencies), wall, latencies, rss, f"statuses {bad}" if bad else None
    )


async def vote_cycle(base: str, run: int, votes: int, timeout_s: float) -> list[Timed]:
    """One rater: GET a matchup, POST a vote on it (JSON answer), GET its reveal page."""
    client = TimedClient(base)
    values: dict[str, Any] = {"run": run}
    arena, post, reveal = (
        Timed(VOTE_CYCLE[0], f"/arena?run={run}", 200),
        Timed(VOTE_CYCLE[1], f"/arena/vote?run={run}", 201),
        Timed(VOTE_CYCLE[2], "/arena/reveal/{matchup_id}", 200),
    )
    outcomes = ("left", "right", "tie", "both_bad")
    for i in range(votes):
        start = time.perf_counter()
        token = await fetch_token(client, values)
        arena.add(Answer(200 if token != "none" else 0, 0, time.perf_counter() - start, 0, b""))
        start = time.perf_counter()
        status, body = await asyncio.wait_for(
            client.request(
                "POST",
                f"/arena/vote?run={run}",
                form={"token": token, "outcome": outcomes[i % 4]},
                headers=(JSON_ANSWER,),
            ),
            timeout_s,
        )
        post.add(Answer(status, 0, time.perf_counter() - start, len(body), body))
        if status != 201:
            break
        matchup = json.loads(body)["matchup_id"]
        reveal.add(await timed_fetch(client, f"/arena/reveal/{matchup}", (), timeout_s))
    await client.aclose()
    return [arena, post, reveal]


def time_cli(url: str, run: int, *, cold: bool = False) -> CliResult:
    """`flux-playground leaderboard RUN`: wall time and the child's own peak RSS (wait4).
    `cold`: with the stored leaderboards deleted first, so the CLI computes it."""
    if cold:
        from app.models import LeaderboardSnapshot

        engine = make_engine(url)
        with Session(engine) as session:
            session.execute(delete(LeaderboardSnapshot))
            session.commit()
        engine.dispose()
    script = Path(sys.executable).with_name("flux-playground")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]
    command += ["leaderboard", str(run)]
    log = io.BytesIO()
    start = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        child = subprocess.Popen(
            command,
            stdout=devnull,
            stderr=subprocess.PIPE,
            env=os.environ | {"FLUX_PLAYGROUND_DATABASE_URL": url},
            cwd=ROOT,
        )
        assert child.stderr is not None
        log.write(child.stderr.read())
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    shown = f"flux-playground leaderboard {run}" + (" (nothing stored: computes)" if cold else "")
    tail = log.getvalue().decode("utf-8", "replace").strip()[-500:]
    # ru_maxrss is in KiB on Linux.
    return CliResult(shown, wall, usage.ru_maxrss / 1024, child.returncode, tail)


def unmeasured_routes() -> list[str]:
    """The app's GET routes and mounts that no table here times."""
    import tempfile

    from starlette.routing import Mount
    from starlette.routing import Route as AppRoute

    from app.config import Settings
    from app.web.main import create_app

    # The app's routes, from an app that never connects to its (file) database.
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(database_url=f"sqlite:///{folder}/none.db", media_dir=Path(folder))
        app = create_app(settings)
    paths = set()
    for route in app.routes:
        if isinstance(route, Mount) or (
            isinstance(route, AppRoute) and "GET" in (route.methods or ())
        ):
            paths.add(route.path)
    measured = {route.pattern for route in ROUTES + EXPORTS} | ELSEWHERE.keys()
    return sorted(paths - measured)


def server_settings(url: str, media: Path) -> dict[str, str]:
    return {
        "FLUX_PLAYGROUND_DATABASE_URL": url,
        "FLUX_PLAYGROUND_MEDIA_DIR": str(media.resolve()),
        # Every request does its work: a cached page would time the cache, not the route.
        "FLUX_PLAYGROUND_PAGE_CACHE_S": "0",
        "FLUX_PLAYGROUND_ADMIN_TOKEN": ADMIN_TOKEN,
        "FLUX_PLAYGROUND_SECRET_KEY": secrets.token_urlsafe(32),
        # Machine clients on one address, not people: no arena limit may shape the load.
        "FLUX_PLAYGROUND_ARENA_VOTES_PER_MINUTE": str(10**9),
        "FLUX_PLAYGROUND_ARENA_NETWORK_VOTES_PER_MINUTE": str(10**9),
        "FLUX_PLAYGROUND_ARENA_NETWORK_NEW_RATERS_PER_HOUR": str(10**9),
    }


def server_process(base: str) -> psutil.Process:
    port = str(urlsplit(base).port)
    for child in psutil.Process().children():
        if port in child.cmdline():
            return child
    raise RuntimeError(f"no server process listening on {base}")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    memory = psutil.virtual_memory().total / 2**30
    return f"{platform.node()}: {cpu}, {os.cpu_count()} cores, {memory:.0f} GiB"


def measure(url: str, media: Path, args: argparse.Namespace) -> Report:
    # As `flux-playground serve` does: a database built before the app's latest migration is
    # brought up to date (new tables, new indexes) rather than measured without them.
    upgrade(url)
    values = discover(url)
    header = [
        f"command: `{' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}`",
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {machine()}",
        f"database: {database_size(url)} ({values['counts']})",
        f"{args.requests} requests per route after the first hit (fewer past "
        f"{args.route_budget_s:g} s), one client, keep-alive, page cache off",
    ]
    note(f"measuring {url}: {values['counts']}")
    with serve_in_subprocess(server_settings(url, media), timeout_s=60) as base:
        server = server_process(base)
        routes = asyncio.run(
            time_routes(base, values, args.requests, args.route_budget_s, args.timeout_s, server)
        )
        exports = asyncio.run(time_exports(base, values, server, args.timeout_s))
        arena = [
            asyncio.run(arena_load(base, values["run"], clients, args.arena_seconds, server))
            for clients in (1, args.arena_clients)
        ]
        votes = asyncio.run(vote_cycle(base, values["run"], args.requests, args.timeout_s))
        # The server recomputes and stores the leaderboard after votes, off the request
        # path: how long until the vote cycle's last vote is in the stored one.
        refresh_s = wait_for_stored_leaderboard(url, values["run"], args.timeout_s)
    header.append(
        "after the vote cycle's last vote, the stored leaderboard counted it within "
        + (f"{refresh_s:.1f} s" if refresh_s is not None else "the timeout: NOT reached")
    )
    # With the server stopped: the CLI has the cores to itself, as on a CI runner. First as
    # a user finds it (the server's stored result is current), then cold (none stored).
    cli = [time_cli(url, values["run"]), time_cli(url, values["run"], cold=True)]
    return Report(url, header, routes, exports, arena, votes, cli, unmeasured_routes())


def wait_for_stored_leaderboard(url: str, run_id: int, timeout_s: float) -> float | None:
    """Seconds until the stored leaderboard of the run's open board is the current one."""
    from app.arena.leaderboard import leaderboard_key, snapshot_version
    from app.models import LeaderboardSnapshot, Run

    engine = make_engine(url)
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < timeout_s:
            with Session(engine) as session:
                key = leaderboard_key(session, session.get_one(Run, run_id))
                stored = session.scalar(
                    select(LeaderboardSnapshot.version).where(
                        LeaderboardSnapshot.run_id == run_id,
                        LeaderboardSnapshot.panel == 0,
                        LeaderboardSnapshot.rounds == key.rounds,
                    )
                )
            if stored == snapshot_version(key):
                return time.perf_counter() - start
            time.sleep(0.1)
        return None
    finally:
        engine.dispose()


# --- report -------------------------------------------------------------------------------


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:,.1f}"


def print_report(report: Report) -> None:
    print(f"\n## Scale: {report.url}\n")
    print("\n".join(f"- {line}" for line in report.header))
    print("\n### Routes\n")
    print("| route | target | first hit ms | p50 ms | p90 ms | n | status |")
    print("|---|---|---|---|---|---|---|")
    for t in report.routes:
        print(
            f"| {t.label} | `{t.target}` | {ms(t.first_s)} | {ms(t.percentile(50))} | "
            f"{ms(t.percentile(90))} | {len(t.warm_s)} | {t.status} |"
        )
    print("\n### Exports (one request each)\n")
    print(
        "| export | first byte ms | total ms | MiB | server RSS MiB before / peak / after "
        "| status |"
    )
    print("|---|---|---|---|---|---|")
    for e in report.exports:
        rss = " / ".join(f"{v:,.0f}" for v in e.rss_mib)
        status = f"✗ {e.answer.status}" if e.problem else "200"
        print(
            f"| {e.label} | {ms(e.answer.first_byte_s)} | {ms(e.answer.total_s)} "
            f"| {e.answer.size / 2**20:,.2f} | {rss} | {status} |"
        )
    print("\n### Arena: GET `/arena?run=` from concurrent keep-alive clients\n")
    print("| clients | requests | requests/s | p50 ms | p99 ms | server RSS at end MiB | status |")
    print("|---|---|---|---|---|---|---|")
    for load in report.arena:
        p50, p99 = np.percentile(load.latencies, [50, 99]) if load.latencies else (None, None)
        print(
            f"| {load.clients} | {load.requests} | {load.rps:,.0f} | {ms(p50)} | {ms(p99)} | "
            f"{load.rss_mib:,.0f} | {'✗ ' + load.problem if load.problem else 200} |"
        )
    print("\n### Vote cycle: one rater (writes these votes into the database)\n")
    print("| step | n | p50 ms | p90 ms | status |")
    print("|---|---|---|---|---|")
    for t in report.votes:
        samples = t.warm_s + ([t.first_s] if t.first_s is not None else [])
        p50, p90 = np.percentile(samples, [50, 90]) if samples else (None, None)
        print(f"| {t.label} | {len(samples)} | {ms(p50)} | {ms(p90)} | {t.status} |")
    print("\n### CLI\n")
    print("| command | wall s | peak RSS MiB | exit |")
    print("|---|---|---|---|")
    for c in report.cli:
        print(f"| `{c.command}` | {c.wall_s:.2f} | {c.peak_rss_mib:,.0f} | {c.exit_code} |")
    print(
        f"\nGET routes of the app not in this benchmark: {', '.join(report.unmeasured) or 'none'}"
    )


def print_growth(small: Report, full: Report) -> None:
    print("\n## Growth: full / small\n")
    # For the exports the "first" columns are the first byte, for the rest the first hit.
    print("| route | small p50 ms | full p50 ms | ratio | small first ms | full first ms |")
    print("|---|---|---|---|---|---|")

    def row(
        label: str, a: float | None, b: float | None, fa: float | None, fb: float | None
    ) -> None:
        ratio = f"{b / a:,.1f}×" if a and b else "–"
        print(f"| {label} | {ms(a)} | {ms(b)} | {ratio} | {ms(fa)} | {ms(fb)} |")

    for s, f in zip(small.routes, full.routes, strict=True):
        row(s.label, s.percentile(50), f.percentile(50), s.first_s, f.first_s)
    for se, fe in zip(small.exports, full.exports, strict=True):
        a, b = se.answer, fe.answer
        row(f"export {se.label} (total)", a.total_s, b.total_s, a.first_byte_s, b.first_byte_s)
    for sa, fa in zip(small.arena, full.arena, strict=True):
        label = f"arena, {sa.clients} clients ({sa.rps:,.0f} → {fa.rps:,.0f} requests/s)"
        row(label, median(sa.latencies), median(fa.latencies), None, None)
    for sv, fv in zip(small.votes, full.votes, strict=True):
        row(sv.label, sv.percentile(50), fv.percentile(50), sv.first_s, fv.first_s)
    row("CLI leaderboard (wall)", small.cli[0].wall_s, full.cli[0].wall_s, None, None)
    row("CLI leaderboard, cold (wall)", small.cli[1].wall_s, full.cli[1].wall_s, None, None)


def median(samples: list[float]) -> float | None:
    return float(np.median(samples)) if samples else None


def fail_on_problems(reports: Sequence[Report]) -> None:
    problems = [f"{r.url}: {p}" for r in reports for p in r.problems]
    if problems:
        print("\nFAILED (the server's traceback, if any, is in its stderr above):", file=sys.stderr)
        for problem in problems:
            print(f"- {problem}", file=sys.stderr)
        raise SystemExit(1)


# --- command line -------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build", help="migrate URL and fill it with a synthetic deployment")
    b.add_argument("--database-url", required=True)
    b.add_argument("--media", type=Path, required=True)
    b.add_argument("--scale", choices=sorted(SCALES), default="full")
    b.add_argument("--seed", type=int, default=0, help="seeds every random draw")
    b.add_argument("--replace", action="store_true", help="SQLite: delete the database file first")
    for name in ("measure", "compare"):
        m = commands.add_parser(
            name, help="time every route" if name == "measure" else "measure two sizes"
        )
        if name == "measure":
            m.add_argument("--database-url", required=True)
        else:
            m.add_argument("--small", required=True, help="database URL of the small build")
            m.add_argument("--full", required=True, help="database URL of the full build")
        m.add_argument("--media", type=Path, required=True)
        m.add_argument("--requests", type=int, default=20, help="per route, after the first hit")
        m.add_argument(
            "--route-budget-s", type=float, default=30.0, help="stop repeating a route after this"
        )
        m.add_argument("--timeout-s", type=float, default=600.0, help="for any one request")
        m.add_argument("--arena-clients", type=int, default=16)
        m.add_argument("--arena-seconds", type=float, default=10.0, help="per arena load")
    args = parser.parse_args()
    if args.command == "build":
        build(args.database_url, args.media, args.scale, args.seed, args.replace)
    elif args.command == "measure":
        report = measure(args.database_url, args.media, args)
        print_report(report)
        fail_on_problems([report])
    else:
        small = measure(args.small, args.media, args)
        full = measure(args.full, args.media, args)
        print_report(small)
        print_report(full)
        print_growth(small, full)
        fail_on_problems([small, full])


if __name__ == "__main__":
    main()
