"""Measuring like the benchmark literature: synchronized wall-clock timing, percentiles,
peak memory and the environment the numbers were measured in."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")


def sync(device: str) -> None:
    """Wait for queued GPU work, so the clock measures the work and not its launch."""
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], T], device: str) -> tuple[T, float]:
    """Run fn once; return its result and its wall time in seconds, synchronized on both ends."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return result, time.perf_counter() - start


@dataclass(frozen=True)
class LatencyStats:
    n: int
    median_s: float
    p10_s: float
    p90_s: float
    mean_s: float
    min_s: float
    max_s: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> LatencyStats:
        if not samples:
            raise ValueError("no latency samples")
        values = np.asarray(samples, dtype=float)
        p10, median, p90 = np.percentile(values, [10, 50, 90])
        return cls(
            n=len(values),
            median_s=float(median),
            p10_s=float(p10),
            p90_s=float(p90),
            mean_s=float(values.mean()),
            min_s=float(values.min()),
            max_s=float(values.max()),
        )


def reset_peak_memory(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gb(device: str) -> tuple[float, str]:
    """Peak memory and what it measures. The two kinds are not comparable with each other."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 1e9, "cuda_max_memory_allocated"
    # ru_maxrss is in KiB on Linux. It is the process's lifetime peak, so a later variant
    # in the same worker reports at least the earlier one's figure.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, "process_peak_rss"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_driver() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def capture_environment(device: str) -> dict[str, Any]:
    """Everything a reader needs to judge (or reproduce) a timing."""
    env: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "packages": {
            name: _version(name)
            for name in ("torch", "diffusers", "transformers", "torchao", "peft", "accelerate")
        },
    }
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(
            gpu=props.name,
            gpu_memory_gb=round(props.total_memory / 1e9, 1),
            compute_capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            driver=_nvidia_driver(),
        )
    return env
