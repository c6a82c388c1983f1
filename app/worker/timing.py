"""Measuring like the benchmark literature: synchronized wall-clock timing, percentiles,
peak memory and the environment the numbers were measured in."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, TypeVar

import torch

from app.memory import release_freed_memory
from app.worker.contention import nvidia_smi

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


# Linux resets a process's peak RSS (VmHWM) when "5" is written to its clear_refs (4.0+).
_CLEAR_REFS = "/proc/self/clear_refs"
_STATUS = "/proc/self/status"


def reset_peak_memory(device: str) -> None:
    """Start a new peak: the load peak and the steady-state peak are read apart."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return
    # RSS counts memory the allocator keeps after a free (loading's float32 weights, once
    # quantized): hand it back first, so the next peak is what the next phase needs. (CUDA's
    # max_memory_allocated counts live tensors only and needs no such step.)
    release_freed_memory()
    try:
        with open(_CLEAR_REFS, "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        pass  # peak_memory_gb then reports the lifetime peak, and says so in its kind


def peak_memory_gb(device: str) -> tuple[float, str]:
    """Peak memory since the last reset, and what it measures (kinds are not comparable)."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 1e9, "cuda_max_memory_allocated"
    try:
        with open(_STATUS, encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e9, "process_peak_rss"
    except OSError:
        pass
    # ru_maxrss (KiB on Linux) cannot be reset: the process's lifetime peak.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    return peak, "process_lifetime_peak_rss"


def device_total_gb(device: str) -> float:
    """What the device has: the GPU's memory, or the machine's for the CPU."""
    if device == "cuda":
        return torch.cuda.get_device_properties(0).total_memory / 1e9
    import psutil

    return psutil.virtual_memory().total / 1e9


@dataclass(frozen=True)
class CompileCounters:
    """torch.compile's process-wide counters: graphs compiled, graph breaks, and Inductor's
    FX-graph cache hits and misses. Differences between two readings say what a phase
    compiled; a fresh process (one per variant) starts them at zero."""

    graphs: int = 0
    graph_breaks: int = 0
    cache_hits: int = 0
    cache_misses: int = 0

    @classmethod
    def now(cls) -> CompileCounters:
        from torch._dynamo.utils import counters

        return cls(
            graphs=int(counters["stats"]["unique_graphs"]),
            graph_breaks=int(sum(counters["graph_break"].values())),
            cache_hits=int(counters["inductor"]["fxgraph_cache_hit"]),
            cache_misses=int(counters["inductor"]["fxgraph_cache_miss"]),
        )

    def since(self, earlier: CompileCounters) -> CompileCounters:
        return CompileCounters(
            graphs=self.graphs - earlier.graphs,
            graph_breaks=self.graph_breaks - earlier.graph_breaks,
            cache_hits=self.cache_hits - earlier.cache_hits,
            cache_misses=self.cache_misses - earlier.cache_misses,
        )

    @property
    def cache_state(self) -> str | None:
        """How warm Inductor's cache was for the graphs compiled: None if none was."""
        if not self.cache_hits and not self.cache_misses:
            return None
        if not self.cache_hits:
            return "cold"
        return "warm" if not self.cache_misses else "partial"


def inductor_config() -> dict[str, str]:
    """Inductor's global settings as text, to show that no variant inherits another's."""
    import torch._inductor.config as inductor

    return {key: repr(value) for key, value in sorted(inductor.get_config_copy().items())}


def digest(values: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


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
    out = (nvidia_smi("--query-gpu=driver_version", "--format=csv,noheader") or "").strip()
    return out.splitlines()[0] if out else None


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
            for name in (
                "torch",
                "diffusers",
                "transformers",
                "torchao",
                "peft",
                "accelerate",
                "bitsandbytes",
                "gguf",
            )
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
