"""Disk space: the weights still to download on the HF cache's disk, the images a config
makes on the media folder's (both on one disk when they share it)."""

from __future__ import annotations

import shutil
from pathlib import Path

from app.bench.benchmark import Benchmark
from app.worker.doctor.check import Check, Status
from app.worker.doctor.figures import MEGAPIXEL, PNG_MB_PER_MEGAPIXEL


def free_disk(path: Path) -> tuple[Path, float]:
    """Free GB on the disk that holds `path`, which may not exist yet (the first run makes
    it): its nearest existing parent is on that disk."""
    existing = path.expanduser().absolute()
    while not existing.exists():
        existing = existing.parent
    return existing, shutil.disk_usage(existing).free / 1e9


def check_disk_weights(
    missing: dict[str, float | None], where: Path, free_gb: float, any_hub: bool
) -> Check:
    if not any_hub:
        return Check("disk: weights", Status.SKIP, "not needed: no Hub models")
    need = sum(gb for gb in missing.values() if gb is not None)
    unknown = [repo for repo, gb in missing.items() if gb is None]
    detail = f"~{need:.1f} GB to download, {free_gb:.1f} GB free at {where}"
    if unknown:
        detail += f" (plus {', '.join(unknown)}: size unknown)"
    return Check("disk: weights", Status.OK if need <= free_gb else Status.FAIL, detail)


def media_gb(bench: Benchmark, n_prompts: int) -> tuple[int, float]:
    """Images the config makes and their rough size on disk."""
    images = n_prompts * len(bench.seeds) * len(bench.variants)
    per_image_mb = PNG_MB_PER_MEGAPIXEL * bench.width * bench.height / MEGAPIXEL
    return images, images * per_image_mb / 1000


def check_disk_media(
    bench: Benchmark, n_prompts: int, where: Path, free_gb: float, weights_gb: float
) -> Check:
    """`weights_gb`: what the weights will take of the same disk (0 when on another one)."""
    images, need = media_gb(bench, n_prompts)
    detail = f"{images} images, ~{need:.2f} GB; {free_gb:.1f} GB free at {where}"
    if weights_gb:
        detail += f" (shared with ~{weights_gb:.1f} GB of weights)"
    status = Status.OK if need + weights_gb <= free_gb else Status.FAIL
    return Check("disk: media", status, detail)
