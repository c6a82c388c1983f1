"""What runs inside a variant's child process (`python -m app.worker.child FD PARENT_PID`).

The steps, in order, each measured in this fresh process only:
1. die with the parent; read the task; set threads; check the environment before any
   device call;
2. load (and quantize, fuse, compile-wrap) the pipeline, then the first call: `load_s`,
   `compile_s`, and `load_peak_gb` — the peak of both, since compiling is part of getting
   ready; then the peak counters are reset;
3. one image per JobOrder the parent sends (it claims the jobs and stores the results);
4. the steady-state series on SeriesOrder: warm-up calls, then timed calls; `peak_mem_gb`
   is the peak since step 2's reset, so it is what generating costs.
Graphs compiled and contention are recorded for phases 3 and 4 apart.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

import psutil

from app.worker.isolate import (
    ChildFailed,
    ImageDone,
    JobOrder,
    Loaded,
    PhaseReport,
    SeriesDone,
    SeriesOrder,
    VariantTask,
)

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL us when the worker dies, however it dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the parent's own cleanup and the pipe's EOF still end us
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def reason_of(err: BaseException) -> str:
    """One line for users: the exception's own message, with its type when it has none."""
    from app.worker.pipelines import VariantUnavailable

    if isinstance(err, VariantUnavailable):
        return str(err)
    text = " ".join(str(err).split())
    name = type(err).__name__
    return f"{name}: {text}"[:500] if text else name


def serve(task: VariantTask, conn: Connection) -> None:
    # Heavy imports here, after the parent's environment (cache dirs) is in place.
    from app.bench.benchmark import Variant
    from app.worker import pipelines, timing
    from app.worker.contention import ContentionProbe
    from app.worker.images import store_image

    # What starting a fresh process per variant costs: interpreter start plus these imports.
    startup_s = time.time() - psutil.Process().create_time()
    spec = Variant.model_validate(task.spec)
    device = task.device

    # 1. Threads, then the environment check: nothing has touched the device yet.
    if task.threads is not None:
        pipelines.set_cpu_threads(task.threads)
    pipelines.check_environment(spec, device)
    timing.reset_peak_memory(device)
    inductor_at_start = timing.inductor_config()

    # 2. Load, then the first call (compilation, autotuning, lazy init).
    pipe, load_s = timing.timed(
        lambda: pipelines.load_pipeline(
            spec, device=device, models_dir=task.models_dir, config_dir=task.config_dir
        ),
        device,
    )

    def call(prompt: str, seed: int) -> Any:
        return pipelines.generate(
            pipe, spec, prompt=prompt, seed=seed, width=task.width, height=task.height
        )

    _, compile_s = timing.timed(lambda: call(task.series_prompt, task.series_seed), device)
    compiled = timing.CompileCounters.now()
    load_peak_gb, peak_kind = timing.peak_memory_gb(device)
    inductor_after = timing.inductor_config()
    environment = timing.capture_environment(device) | {
        "dtype": spec.dtype,
        "process": f"{os.uname().nodename}:{os.getpid()}",
        "process_startup_s": round(startup_s, 3),
        "transformer_parameters": sum(p.numel() for p in pipe.transformer.parameters()),
        "compile": {
            "graphs": compiled.graphs,
            "graph_breaks": compiled.graph_breaks,
            "fx_cache_hits": compiled.cache_hits,
            "fx_cache_misses": compiled.cache_misses,
            "cache_dir": os.environ.get("TORCHINDUCTOR_CACHE_DIR"),
        },
        # Inductor's global settings when this process started and once the variant was
        # ready: what this variant changed (torchao does) dies with this process.
        "inductor_config_at_start": timing.digest(inductor_at_start),
        "inductor_config_after_load": timing.digest(inductor_after),
        "inductor_config_changed": sorted(
            key for key, value in inductor_after.items() if inductor_at_start.get(key) != value
        ),
    }
    conn.send(
        Loaded(
            pid=os.getpid(),
            load_s=load_s,
            compile_s=compile_s,
            load_peak_gb=load_peak_gb,
            peak_kind=peak_kind,
            compile_cache=compiled.cache_state,
            environment=environment,
        )
    )
    timing.reset_peak_memory(device)

    # 3. Images, one per order. The probe spans the phase; the parent's CPU time (it
    # stores each result meanwhile) is not counted as contention.
    images: PhaseReport | None = None
    probe = ContentionProbe(device)
    started = 0.0
    order = conn.recv()
    if isinstance(order, JobOrder):
        started = time.time()
        probe.start()
    while isinstance(order, JobOrder):
        job = order
        image, latency_s = timing.timed(lambda: call(job.prompt, job.seed), device)  # noqa: B023
        stored = store_image(image, task.media_dir, job.stem)
        conn.send(ImageDone(job.job_id, stored, image.width, image.height, latency_s))
        order = conn.recv()
    if started:
        counted = timing.CompileCounters.now().since(compiled)
        images = PhaseReport(
            counted.graphs, counted.graph_breaks, probe.stop(), started, time.time()
        )
    if not isinstance(order, SeriesOrder):
        return  # None: the parent needs no series (or is stopping us)

    # 4. The steady-state series: warm-up calls, then timed calls.
    for _ in range(task.warmup):
        call(task.series_prompt, task.series_seed)
    before = timing.CompileCounters.now()
    probe = ContentionProbe(device)
    started = time.time()
    probe.start()
    samples = [
        timing.timed(lambda: call(task.series_prompt, task.series_seed), device)[1]
        for _ in range(task.repeats)
    ]
    contention = probe.stop()
    finished = time.time()
    counted = timing.CompileCounters.now().since(before)
    peak_gb, peak_kind = timing.peak_memory_gb(device)
    conn.send(
        SeriesDone(
            samples_s=samples,
            series=PhaseReport(counted.graphs, counted.graph_breaks, contention, started, finished),
            images=images,
            peak_gb=peak_gb,
            peak_kind=peak_kind,
        )
    )
    conn.recv()  # None: the parent has stored the series


def main(argv: list[str]) -> int:
    fd, parent_pid = int(argv[1]), int(argv[2])
    die_with_parent(parent_pid)
    import faulthandler

    faulthandler.enable()  # a segfault's traceback goes to stderr, which the parent keeps
    conn = Connection(fd)
    task: VariantTask = conn.recv()
    try:
        serve(task, conn)
    except EOFError:
        return 1  # the parent went away
    except Exception as err:
        with contextlib.suppress(OSError):
            conn.send(ChildFailed(reason_of(err)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
