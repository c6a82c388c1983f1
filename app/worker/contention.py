"""What else used the device while a series was timed.

A latency is only the variant's own if nothing else competed for the device. The worker
holds a device lock against other workers (app/worker/device_lock.py), but any other program
can still run: a probe around each timed phase records what it can see and says whether the
series was contended.

- CPU: the host's busy CPU time (/proc/stat through psutil) minus this process's, its
  children's (Inductor compile workers) and its parent's (the worker writing results), as
  the average number of cores others kept busy. Time the hypervisor stole is recorded apart.
  In a container that sees the whole host's CPUs this counts other tenants too, which is
  what they are: contention.
- GPU: other processes nvidia-smi lists on the device, where the driver lets us see them
  (inside some containers it lists none).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

# Other processes' average CPU use that marks a series as contended, in cores. On a CPU
# benchmark a quarter of a core elsewhere is already a few percent of a 2-core machine's
# latency; a GPU benchmark only feels the host through kernel launches.
CONTENDED_CPU_CORES = {"cpu": 0.25, "cuda": 1.0}


def _busy_s(times: Any) -> tuple[float, float]:
    """(busy, steal) seconds from psutil.cpu_times(): idle and iowait are not busy."""
    busy = times.user + times.nice + times.system
    busy += getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)
    return busy, getattr(times, "steal", 0.0)


def _own_cpu_s() -> float:
    """CPU time of this process, its live descendants and its parent."""
    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        try:
            cpu = process.cpu_times()
        except psutil.Error:
            continue
        total += cpu.user + cpu.system + cpu.children_user + cpu.children_system
    parent = me.parent()
    if parent is not None:
        try:
            cpu = parent.cpu_times()
            total += cpu.user + cpu.system
        except psutil.Error:
            pass
    return total


def nvidia_smi(*args: str) -> str | None:
    """nvidia-smi's output for these arguments; None without it or when it fails."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        return subprocess.run(
            ["nvidia-smi", *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def gpu_processes() -> list[dict[str, int]] | None:
    """Compute processes on the GPUs (pid, MiB used), or None where nvidia-smi cannot tell."""
    out = nvidia_smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
    if out is None:
        return None
    rows = []
    for line in out.strip().splitlines():
        pid, _, used = (part.strip() for part in line.partition(","))
        if pid.isdigit():
            rows.append({"pid": int(pid), "used_mib": int(used) if used.isdigit() else 0})
    return rows


@dataclass
class ContentionProbe:
    """`start()` before a timed phase, `stop()` after it: a dict for the timing summary."""

    device: str
    _wall: float = 0.0
    _busy: float = 0.0
    _steal: float = 0.0
    _own: float = 0.0
    _gpu_others: set[int] = field(default_factory=set)
    _gpu_visible: bool = False

    def start(self) -> None:
        self._gpu_others = self._other_gpu_pids()
        self._busy, self._steal = _busy_s(psutil.cpu_times())
        self._own = _own_cpu_s()
        self._wall = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        wall = max(time.perf_counter() - self._wall, 1e-9)
        busy, steal = _busy_s(psutil.cpu_times())
        own = _own_cpu_s()
        others = max(0.0, (busy - self._busy) - (own - self._own)) / wall
        gpu_others = sorted(self._gpu_others | self._other_gpu_pids())
        contended = others >= CONTENDED_CPU_CORES[self.device] or bool(gpu_others)
        return {
            "wall_s": round(wall, 3),
            "others_cpu_cores": round(others, 3),
            "steal_cores": round(max(0.0, steal - self._steal) / wall, 3),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "cpu_count": psutil.cpu_count(),
            # None: the driver shows no processes here, so GPU contention is not visible.
            "gpu_other_pids": gpu_others if self._gpu_visible else None,
            "contended": contended,
        }

    def _other_gpu_pids(self) -> set[int]:
        if self.device != "cuda":
            return set()
        rows = gpu_processes()
        pids = {row["pid"] for row in rows or []}
        # In a container with its own pid namespace the driver lists host pids (or none):
        # then our own pid is not among them, and we cannot tell others from ourselves.
        if os.getpid() not in pids:
            return set()
        self._gpu_visible = True
        return pids - {os.getpid()}
