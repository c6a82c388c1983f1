"""One child process per variant: the parent's handle on it, and the messages they exchange.

Every variant loads, compiles, warms up, is timed and generates in a fresh process (a new
`python -m app.worker.child`, or on the CPU a fork of a server that has only imported the
libraries: app/worker/preloaded.py), so no CUDA memory, dynamo cache, Inductor setting, allocator
state or peak-memory counter of one variant survives into the next one's figures
(DESIGN.md, rule 9). The parent keeps the database and the claims; the child keeps the
pipeline. They speak over a pipe:

    child  -> Loaded                 after the load and the first call at each size
    parent -> JobOrder  (repeated)   child -> ImageDone, or JobDidNotFit (out of memory)
    parent -> SeriesOrder (per shape) child -> SeriesDone
    parent -> None                   child exits 0

A shape is a (size, batch size). Running out of device memory at one is a result, not a
failure: the child reports it (OutOfMemory) and goes on with the next order.

A child that raises sends ChildFailed with the reason. A child that dies without a word
(CUDA OOM killer, segfault, os._exit, SIGKILL) is noticed by the parent, which names the
exit code or signal and the last line the child wrote to stderr. The child dies with its
parent (PR_SET_PDEATHSIG), so killing a worker never leaves a process holding the GPU.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

from app.worker import preloaded
from app.worker.images import StoredImage

# How long the parent waits for a child to exit after telling it to, before killing it.
EXIT_GRACE_S = 30.0


@dataclass(frozen=True)
class VariantTask:
    """Everything the child needs to load and measure one variant (picklable, no torch)."""

    variant_id: int
    spec: dict[str, Any]  # app.bench.benchmark.Variant as JSON
    device: str
    # The variant's sizes, (width, height); the first is where it loads and first calls.
    sizes: list[tuple[int, int]]
    config_dir: Path
    models_dir: Path
    media_dir: Path
    threads: int | None  # torch threads; None: torch's default (CUDA with no setting)
    # The steady-state series: warm-up calls, then timed calls, of the first prompts (as
    # many as the largest batch) at one seed; batch 1 uses the first.
    series_prompts: list[str]
    series_seed: int
    warmup: int
    repeats: int


@dataclass(frozen=True)
class OutOfMemory:
    """The device ran out of memory: how far it got, and what it has."""

    reason: str
    peak_gb: float
    peak_kind: str
    device_total_gb: float


@dataclass(frozen=True)
class FirstCall:
    """The first call at a size (batch 1): the time and graphs a new shape costs."""

    width: int
    height: int
    seconds: float | None
    graphs: int
    oom: OutOfMemory | None = None


@dataclass(frozen=True)
class Loaded:
    pid: int
    load_s: float
    compile_s: float | None  # None: the first call ran out of memory at the first size
    load_peak_gb: float
    peak_kind: str
    compile_cache: str | None
    environment: dict[str, Any]
    # One per size, the first size's first (its seconds are compile_s).
    first_calls: list[FirstCall] = field(default_factory=list)


@dataclass(frozen=True)
class JobOrder:
    job_id: int
    stem: str  # where the image goes, relative to the media folder
    prompt: str
    seed: int
    width: int
    height: int


@dataclass(frozen=True)
class ImageDone:
    job_id: int
    stored: StoredImage
    width: int
    height: int
    latency_s: float


@dataclass(frozen=True)
class JobDidNotFit:
    job_id: int
    oom: OutOfMemory


@dataclass(frozen=True)
class SeriesOrder:
    """Time one shape: a first call, warm-up calls, then timed calls, each making
    len(prompts) images (the batch size). For a batch > 1, `references` are the media paths
    of the same prompts and seeds made at batch 1 (None where there is none), which the
    first call's images are compared with."""

    width: int
    height: int
    prompts: list[str]
    seeds: list[int]
    references: list[str | None] = field(default_factory=list)


@dataclass(frozen=True)
class PhaseReport:
    """How cleanly a phase ran: graphs compiled and graph breaks in it, and contention."""

    recompiles: int
    graph_breaks: int
    contention: dict[str, Any] | None
    started_at: float  # epoch seconds
    finished_at: float


@dataclass(frozen=True)
class BatchComparison:
    """A batch's images against the same prompts and seeds at batch 1."""

    compared: int
    identical: int  # pixel for pixel
    ssim_mean: float | None
    ssim_min: float | None
    psnr_min_db: float | None  # over the images that differ; None if none does


@dataclass(frozen=True)
class SeriesDone:
    width: int
    height: int
    batch_size: int
    samples_s: list[float]  # per call; empty when it did not fit
    series: PhaseReport | None
    images: PhaseReport | None  # the images phase: on the first SeriesDone only
    peak_gb: float
    peak_kind: str
    device_total_gb: float
    first_call_s: float | None = None  # batch > 1 only (batch 1's is in Loaded)
    first_call_graphs: int | None = None
    oom: OutOfMemory | None = None
    comparison: BatchComparison | None = None


@dataclass(frozen=True)
class ChildFailed:
    reason: str


class ChildDied(RuntimeError):
    """The child exited without answering; `str(err)` says how."""


class ChildProcess(Protocol):
    """What the parent uses of a child: `subprocess.Popen`, or preloaded.ForkedChild."""

    @property
    def pid(self) -> int: ...
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def kill(self) -> None: ...


@dataclass
class VariantProcess:
    """The parent's handle: start with `VariantProcess.start(task)`, use as a context manager
    (leaving it stops the child, killing it if it does not exit), talk with send/receive."""

    process: ChildProcess
    conn: Connection
    _stderr_tail: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=20)
    )
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, task: VariantTask, *, env: dict[str, str] | None = None) -> VariantProcess:
        """A fresh interpreter, or on the CPU a fork of the preloaded server (preloaded.py)."""
        parent_end, child_end = Pipe(duplex=True)
        process: ChildProcess
        try:
            if preloaded.use_fork(task.device):
                process, stderr = preloaded.start(
                    child_end, dict(os.environ if env is None else env)
                )
            else:
                popen = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "app.worker.child",
                        str(child_end.fileno()),
                        str(os.getpid()),
                    ],
                    env=env,
                    pass_fds=(child_end.fileno(),),
                    stdin=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                assert popen.stderr is not None
                process, stderr = popen, popen.stderr
        finally:
            child_end.close()
        handle = cls(process, parent_end)
        handle._reader = threading.Thread(target=handle._pump_stderr, args=(stderr,), daemon=True)
        handle._reader.start()
        handle.conn.send(task)
        return handle

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, message: object) -> None:
        try:
            self.conn.send(message)
        except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
            raise ChildDied(self._death_reason()) from None

    def receive(self, *, on_idle: Callable[[], None] = lambda: None, idle_s: float = 5.0) -> Any:
        """The child's next message; `on_idle` runs every `idle_s` while it works (heartbeats).
        Raises ChildDied if the child exits without one."""
        last_idle = time.monotonic()
        while True:
            if self.conn.poll(0.2):
                try:
                    return self.conn.recv()
                except (EOFError, ConnectionResetError, OSError):
                    raise ChildDied(self._death_reason()) from None
            if self.process.poll() is not None and not self.conn.poll(0):
                raise ChildDied(self._death_reason())
            if time.monotonic() - last_idle >= idle_s:
                on_idle()
                last_idle = time.monotonic()

    def __enter__(self) -> VariantProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Tell the child to exit; kill it if it does not within EXIT_GRACE_S."""
        if self.process.poll() is None:
            try:
                self.conn.send(None)
                self.process.wait(timeout=EXIT_GRACE_S)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self.conn.close()
        if self._reader is not None:
            self._reader.join(timeout=5)

    def _pump_stderr(self, stream: IO[bytes]) -> None:
        """Forward the child's stderr to ours (download bars, warnings) and keep its tail."""
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace")
            sys.stderr.write(line)
            if line.strip():
                self._stderr_tail.append(line.strip())
        stream.close()

    def _death_reason(self) -> str:
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)  # the last lines it wrote
        if code < 0:
            how = f"child process killed by {signal.Signals(-code).name}"
            if -code == signal.SIGKILL:
                how += " (out of host memory? the kernel's OOM killer sends SIGKILL)"
        else:
            how = f"child process exited with code {code}"
        last = self._stderr_tail[-1] if self._stderr_tail else ""
        return f"{how}: {last}"[:500] if last else how
