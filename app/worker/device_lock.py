"""One worker measures on a device at a time: an exclusive lock per (host, device).

Two workers that time variants on the same GPU (or the same CPU) slow each other down and
both store the slowed figures as clean. Each worker therefore holds an exclusive `flock` on a
file named after the device while its child process loads and measures a variant. The kernel
releases it when the process dies, SIGKILL included, so a crashed worker never leaves a
stale lock. Workers on other hosts or other GPUs are not affected.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from types import TracebackType


class DeviceBusy(RuntimeError):
    """Another worker holds the device and this one was told not to wait."""


def device_name(device: str) -> str:
    """The physical device a benchmark's `device` means here: "cpu" or "cuda:<index>".

    A CUDA process uses the first device CUDA_VISIBLE_DEVICES names (index or UUID), so two
    workers pinned to different GPUs of one host do not wait for each other.
    """
    if device != "cuda":
        return "cpu"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return f"cuda:{visible or '0'}"


class DeviceLock:
    """`with DeviceLock(dir, "cuda"):` holds the device; `key` names it for the database."""

    def __init__(
        self,
        lock_dir: Path,
        device: str,
        *,
        wait: bool = True,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.name = device_name(device)
        self.key = f"{socket.gethostname()}/{self.name}"
        safe = re.sub(r"[^A-Za-z0-9_.-]", "-", self.name)
        self.path = lock_dir / f"{safe}.lock"
        self.wait = wait
        self.on_wait = on_wait
        self._fd: int | None = None

    def __enter__(self) -> DeviceLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "another worker"
                message = f"device {self.name} is in use by worker {holder}"
                if not self.wait:
                    raise DeviceBusy(message) from None
                if self.on_wait is not None:
                    self.on_wait(f"{message}; waiting for it")
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{socket.gethostname()}:{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None
