"""Hardware side by side: one benchmark measured on several machines, compared per variant.

Two runs are comparable when they make the same images: the same prompts (their texts), seeds,
sizes (and which prompts get images at the sizes after the first) and, per variant, the
settings that decide the pixels. That is the *image
fingerprint*. It leaves out what only changes how or where they are measured: the hardware,
the device, the price, warm-up, repeats and batch sizes (a run's own fingerprint includes
the hardware, so the same config on two machines makes two runs, which is the case this
module compares).

Costs are each run's latency at its own price: nothing is extrapolated to a machine that did
not measure it (DESIGN.md, cost conventions).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.bench import costs
from app.bench.scaling import (
    RunScaling,
    ShapeRow,
    best_batch,
    fit_cell,
    fits_on_text,
    run_scaling,
    run_sizes,
)
from app.models import Prompt, Run, SeriesStatus
from app.progress import LIVE_STATUSES

# A variant's settings that decide its images. `compile` is in: a compiled and an uncompiled
# variant of the same name time different programs (comparing them across machines would
# credit the machine with the compiler's speed-up), and Inductor's fused kernels do not
# round like eager ones, so the pixels may differ too. Its `fresh_cache` is out: it only
# decides whether the compile starts from an empty cache (how long compile_s takes), never
# what the compiled program computes.
IMAGE_SETTINGS = (
    "model",
    "steps",
    "guidance",
    "max_sequence_length",
    "dtype",
    "lora",
    "quantize",
    "cache",
    "fuse_qkv",
    "compile",
    # Issue 13's options that change the pixels: a GGUF transformer, Pruna's algorithms,
    # quantized text encoders, a tiled VAE decode. (Offload and VAE slicing move or split the
    # same arithmetic: they change memory and time, not the image.)
    "gguf",
    "smash",
    "text_encoder_quantize",
    "vae_tiling",
)
COMPILE_TIMING_ONLY = ("fresh_cache",)


def config_spec(run: Run) -> dict[str, Any]:
    """The image-defining part of the run's config (everything but the prompts' texts)."""
    sizes = [s.label for s in run_sizes(run)[0]]
    variants = {}
    for variant in run.config.get("variants", []):
        spec = {key: variant.get(key) for key in IMAGE_SETTINGS}
        if spec["compile"]:
            spec["compile"] = {
                k: v for k, v in spec["compile"].items() if k not in COMPILE_TIMING_ONLY
            }
        # A variant that narrows the sizes makes images at those only.
        own = variant.get("sizes")
        spec["sizes"] = [s for s in sizes if own is None or s in own]
        variants[variant["name"]] = spec
    return {
        "seeds": list(run.config.get("seeds", [])),
        "sizes": sizes,
        # Which prompts get images at the sizes after the first.
        "size_prompt_limit": run.config.get("size_prompt_limit"),
        "variants": variants,
    }


def prompt_texts(session: Session, run: Run) -> list[str]:
    return list(
        session.scalars(
            select(Prompt.text).where(Prompt.run_id == run.id).order_by(Prompt.position)
        )
    )


def image_fingerprint(spec: dict[str, Any], prompts: list[str]) -> str:
    blob = json.dumps({**spec, "prompts": prompts}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(", ", ": "))
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def config_differences(here: dict[str, Any], there: dict[str, Any], run_id: int) -> list[str]:
    """Why two config specs make different images, one line each: "variant dev: steps 28
    here, 20 in run 3". Empty when they make the same ones (prompts apart)."""
    out = []
    where = f"in run {run_id}"
    for key in ("seeds", "sizes", "size_prompt_limit"):
        if here[key] != there[key]:
            out.append(f"{key}: {_show(here[key])} here, {_show(there[key])} {where}")
    ours, theirs = here["variants"], there["variants"]
    for name in ours:
        if name not in theirs:
            out.append(f"variant {name}: not {where}")
            continue
        for key, value in ours[name].items():
            if key == "sizes" and here["sizes"] != there["sizes"]:
                continue  # said once for the run: a variant's sizes follow the run's
            if value != theirs[name].get(key):
                out.append(
                    f"variant {name}: {key} {_show(value)} here, "
                    f"{_show(theirs[name].get(key))} {where}"
                )
    out.extend(f"variant {name}: only {where}" for name in theirs if name not in ours)
    return out


def prompt_differences(here: list[str], there: list[str], run_id: int) -> list[str]:
    if here == there:
        return []
    if len(here) != len(there):
        return [f"prompts: {len(here)} here, {len(there)} in run {run_id}"]
    index = next(i for i, (a, b) in enumerate(zip(here, there, strict=True)) if a != b)
    return [
        f"prompt {index + 1}: “{_short(here[index])}” here, "
        f"“{_short(there[index])}” in run {run_id}"
    ]


@dataclass(frozen=True)
class Refused:
    """A run asked for that does not make the same images as the first one."""

    run_id: int
    name: str
    hardware: str
    reasons: list[str]


@dataclass(frozen=True)
class Selection:
    runs: list[Run]  # comparable with the first, which is the anchor ("here")
    refused: list[Refused]
    fingerprint: str


def default_runs(session: Session) -> list[Run]:
    """The latest run, then every ended run, newest first: the page keeps those comparable
    with the latest one."""
    runs = list(session.scalars(select(Run).order_by(Run.id.desc())))
    return runs[:1] + [run for run in runs[1:] if run.status not in LIVE_STATUSES]


def select_comparable(session: Session, runs: list[Run]) -> Selection:
    """Split `runs` into those that make the same images as `runs[0]` and those that do not
    (with why). The configs are compared first; a run's prompts are read only when its config
    matches, so checking every past run costs a look at its config, not its prompts."""
    anchor = runs[0]
    spec = config_spec(anchor)
    prompts = prompt_texts(session, anchor)
    comparable, refused = [anchor], []
    for run in runs[1:]:
        reasons = config_differences(spec, config_spec(run), run.id)
        if not reasons:
            reasons = prompt_differences(prompts, prompt_texts(session, run), run.id)
        if reasons:
            refused.append(Refused(run.id, run.name, run.hardware, reasons))
        else:
            comparable.append(run)
    return Selection(comparable, refused, image_fingerprint(spec, prompts))


@dataclass(frozen=True)
class MachineRow:
    """One variant on one machine (run) at one size. Latency and its cost are per image at
    batch 1; throughput and its cost at the batch size with the most images/s there."""

    variant: str
    position: int  # the variant's place in the config: the default order
    run_id: int
    hardware: str
    device: str
    usd_per_hour: float
    status: str  # the batch-1 shape's: measured, does_not_fit, skipped, not_measured
    fit_text: str
    note: str | None  # why there is no latency (does not fit, not measured)
    latency_per_image_s: float | None
    usd_per_1k_images: float | None
    best_batch: int | None
    best_images_per_s: float | None
    usd_per_1k_images_best: float | None
    peak_mem_gb: float | None
    peak_mem_kind: str | None
    fits_on: str
    reference: str | None
    speedup: float | None
    cheapest: bool = False


@dataclass(frozen=True)
class Cheapest:
    variant: str
    row: MachineRow | None  # None: no machine measured the variant at this size


def machine_rows(
    scalings: list[tuple[Run, RunScaling]], size: str, gpu_memory_gb: tuple[float, ...]
) -> list[MachineRow]:
    """Every (variant, machine) at `size`, variants in config order, machines in the given
    order; the cheapest machine of each variant (at its best batch) marked."""
    rows = []
    for run, scaling in scalings:
        for position, variant in enumerate(scaling.variants):
            single = scaling.row(variant, size, 1)
            rows.append(_machine_row(run, scaling, variant, position, single, size, gpu_memory_gb))
    cheapest = {(c.variant, c.row.run_id) for c in cheapest_machines(rows) if c.row is not None}
    return [replace(r, cheapest=True) if (r.variant, r.run_id) in cheapest else r for r in rows]


def _machine_row(
    run: Run,
    scaling: RunScaling,
    variant: str,
    position: int,
    single: ShapeRow | None,
    size: str,
    gpu_memory_gb: tuple[float, ...],
) -> MachineRow:
    best = best_batch(scaling.rows, variant, size)
    latency = single.latency_per_image_s if single is not None and single.measured else None
    ref_name = scaling.references.get(variant)
    ref = scaling.row(ref_name, size, 1) if ref_name else None
    ref_latency = ref.latency_per_image_s if ref is not None and ref.measured else None
    note = None
    if single is not None and single.status != SeriesStatus.measured:
        note = single.error
    return MachineRow(
        variant=variant,
        position=position,
        run_id=run.id,
        hardware=run.hardware,
        device=run.device,
        usd_per_hour=run.usd_per_hour,
        status=single.status if single is not None else "not_measured",
        fit_text=fit_cell(single, gpu_memory_gb).text if single is not None else "—",
        note=note,
        latency_per_image_s=latency,
        usd_per_1k_images=costs.usd_per_1k_images(latency, run.usd_per_hour)
        if latency is not None
        else None,
        best_batch=best.batch_size if best else None,
        best_images_per_s=best.images_per_s if best else None,
        usd_per_1k_images_best=costs.usd_per_1k_images(best.latency_per_image_s, run.usd_per_hour)
        if best
        else None,
        peak_mem_gb=single.peak_mem_gb if single is not None else None,
        peak_mem_kind=single.peak_mem_kind if single is not None else None,
        fits_on=fits_on_text(single.peak_mem_gb, single.peak_mem_kind, gpu_memory_gb)
        if single is not None and single.measured
        else "—",
        reference=ref_name,
        speedup=costs.speedup(ref_latency, latency)
        if latency is not None and ref_latency is not None
        else None,
    )


def cheapest_machines(rows: list[MachineRow]) -> list[Cheapest]:
    """Per variant (config order): the machine where an image costs least, each at its own
    price and at its best batch size there (the most images/s is the least $ per image on a
    machine priced by the hour). A tie goes to the machine listed first."""
    out = []
    for variant in dict.fromkeys(r.variant for r in sorted(rows, key=lambda r: r.position)):
        priced = [r for r in rows if r.variant == variant and r.usd_per_1k_images_best is not None]
        best = min(priced, key=lambda r: r.usd_per_1k_images_best or 0.0) if priced else None
        out.append(Cheapest(variant, best))
    return out


def compare(
    session: Session, runs: list[Run], size: str, gpu_memory_gb: tuple[float, ...]
) -> list[MachineRow]:
    """The comparable `runs` side by side at `size` (one of their sizes)."""
    scalings = [(run, run_scaling(session, run, gpu_memory_gb)) for run in runs]
    return machine_rows(scalings, size, gpu_memory_gb)


SortKey = Literal["variant", "hardware", "latency", "throughput", "cost", "memory", "speedup"]
SORT_LABELS: dict[str, str] = {
    "variant": "variant",
    "hardware": "machine",
    "latency": "latency / image",
    "throughput": "images/s",
    "cost": "$ / 1k images",
    "memory": "peak memory",
    "speedup": "speed-up",
}

# Key per sort; smaller first. Throughput and speed-up: the fastest first. A row without
# the figure goes last (its key is None).
_SORT_FIELDS: dict[str, Callable[[MachineRow], float | None]] = {
    "latency": lambda r: r.latency_per_image_s,
    "throughput": lambda r: -r.best_images_per_s if r.best_images_per_s is not None else None,
    "cost": lambda r: r.usd_per_1k_images_best,
    "memory": lambda r: r.peak_mem_gb,
    "speedup": lambda r: -r.speedup if r.speedup is not None else None,
}


def sort_rows(rows: list[MachineRow], key: SortKey) -> list[MachineRow]:
    """The rows in the order the page asks for; ties keep variant, then machine order."""
    if key == "variant":
        return sorted(rows, key=lambda r: r.position)
    if key == "hardware":
        return sorted(rows, key=lambda r: (r.hardware.casefold(), r.run_id, r.position))

    def value(row: MachineRow) -> tuple[bool, float, int]:
        figure = _SORT_FIELDS[key](row)
        return (figure is None, figure or 0.0, row.position)

    return sorted(rows, key=value)
