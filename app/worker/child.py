"""What runs inside a variant's child process (`python -m app.worker.child FD PARENT_PID`).

The steps, in order, each measured in this fresh process only:
1. die with the parent; read the task; set threads; check the environment before any
   device call;
2. load (and quantize, fuse, compile-wrap) the pipeline, then the first call: `load_s`,
   `compile_s`, and `load_peak_gb` — the peak of both, since compiling is part of getting
   ready; then the peak counters are reset;
   then the first call at each of the variant's other sizes (a new shape's recompile);
3. one image per JobOrder the parent sends (it claims the jobs and stores the results);
4. one steady-state series per SeriesOrder (a size and batch size): for a batch > 1 a
   timed first call whose images are compared with batch 1's, then warm-up calls, then
   timed calls; the peak memory is reset before each shape, so it is that shape's cost.
An out-of-memory error at a size or batch is reported as such, and the next order goes on.
Graphs compiled and contention are recorded for phases 3 and 4 apart.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

from app.worker.isolate import (
    BatchComparison,
    ChildFailed,
    FirstCall,
    ImageDone,
    JobDidNotFit,
    JobOrder,
    Loaded,
    OutOfMemory,
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
    from app.worker.unavailable import VariantUnavailable

    if isinstance(err, VariantUnavailable):
        return str(err)
    text = " ".join(str(err).split())
    name = type(err).__name__
    return f"{name}: {text}"[:500] if text else name


def serve(task: VariantTask, conn: Connection) -> None:
    # Heavy imports here, after the parent's environment (cache dirs) is in place.
    import torch

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

    def call(prompts: list[str], seeds: list[int], size: tuple[int, int]) -> Any:
        return pipelines.generate_batch(
            pipe, spec, prompts=prompts, seeds=seeds, width=size[0], height=size[1]
        )

    def out_of_memory(err: BaseException) -> OutOfMemory:
        """What an OOM reached; then the memory it held is handed back for the next shape."""
        peak_gb, kind = timing.peak_memory_gb(device)
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
        return OutOfMemory(reason_of(err), peak_gb, kind, timing.device_total_gb(device))

    # The first call at each size, before any image: the first size's is the variant's
    # compile_s (and ends its load peak); another size's is what a compiled variant pays to
    # recompile for a new shape, its own figure rather than a slow first image. A size
    # whose first call runs out of memory does not fit.
    series_call = ([task.series_prompts[0]], [task.series_seed])
    first_calls: list[FirstCall] = []
    load_peak: tuple[float, str] | None = None
    for size in task.sizes:
        before = timing.CompileCounters.now()
        try:
            _, seconds = timing.timed(lambda: call(*series_call, size), device)  # noqa: B023
        except torch.OutOfMemoryError as err:
            first_calls.append(FirstCall(*size, None, 0, out_of_memory(err)))
        else:
            graphs = timing.CompileCounters.now().since(before).graphs
            first_calls.append(FirstCall(*size, seconds, graphs))
        load_peak = load_peak or timing.peak_memory_gb(device)
    assert load_peak is not None  # a variant has at least one size
    load_peak_gb, peak_kind = load_peak
    compile_s = first_calls[0].seconds
    compiled = timing.CompileCounters.now()
    inductor_after = timing.inductor_config()
    environment = timing.capture_environment(device) | {
        "dtype": spec.dtype,
        "process": f"{os.uname().nodename}:{os.getpid()}",
        "process_startup_s": round(startup_s, 3),
        "process_start": _STARTED,
        "transformer_parameters": sum(p.numel() for p in pipe.transformer.parameters()),
        # What each component's weights take, quantized ones at their stored size: the
        # saving a quantization claims, exact where process RSS (the CPU's peak figure) is
        # blurred by the libraries a variant imports.
        "weights_bytes": {
            name: pipelines.parameter_bytes(module)
            for name, module in getattr(pipe, "components", {}).items()
            if isinstance(module, torch.nn.Module)
        },
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
            first_calls=first_calls,
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
        try:
            made, latency_s = timing.timed(
                lambda: call([job.prompt], [job.seed], (job.width, job.height)),  # noqa: B023
                device,
            )
        except torch.OutOfMemoryError as err:
            conn.send(JobDidNotFit(job.job_id, out_of_memory(err)))
        else:
            image = made[0]
            stored = store_image(image, task.media_dir, job.stem)
            conn.send(ImageDone(job.job_id, stored, image.width, image.height, latency_s))
        order = conn.recv()
    if started:
        counted = timing.CompileCounters.now().since(compiled)
        images = PhaseReport(
            counted.graphs, counted.graph_breaks, probe.stop(), started, time.time()
        )

    # 4. The steady-state series, one shape per order: (first call,) warm-up, timed calls.
    while isinstance(order, SeriesOrder):
        conn.send(time_shape(order, task, call, out_of_memory, images))
        images = None  # reported once
        order = conn.recv()


def time_shape(
    order: SeriesOrder,
    task: VariantTask,
    call: Callable[[list[str], list[int], tuple[int, int]], Any],
    out_of_memory: Callable[[BaseException], OutOfMemory],
    images: PhaseReport | None,
) -> SeriesDone:
    """One shape's series. At batch 1 the first call at this size was made at load; a
    larger batch's first call is timed here, and its images compared with batch 1's."""
    import torch

    from app.worker import timing
    from app.worker.contention import ContentionProbe

    device, size, batch = task.device, (order.width, order.height), len(order.prompts)
    timing.reset_peak_memory(device)
    first_s: float | None = None
    first_graphs: int | None = None
    comparison: BatchComparison | None = None
    samples: list[float] = []
    phase: PhaseReport | None = None
    try:
        if batch > 1:
            before = timing.CompileCounters.now()
            made, first_s = timing.timed(lambda: call(order.prompts, order.seeds, size), device)
            first_graphs = timing.CompileCounters.now().since(before).graphs
            comparison = compare_with_batch_one(made, order.references, task.media_dir)
        for _ in range(task.warmup):
            call(order.prompts, order.seeds, size)
        before = timing.CompileCounters.now()
        probe = ContentionProbe(device)
        started = time.time()
        probe.start()
        samples = [
            timing.timed(lambda: call(order.prompts, order.seeds, size), device)[1]
            for _ in range(task.repeats)
        ]
        contention = probe.stop()
        counted = timing.CompileCounters.now().since(before)
        phase = PhaseReport(counted.graphs, counted.graph_breaks, contention, started, time.time())
    except torch.OutOfMemoryError as err:
        oom = out_of_memory(err)
        return SeriesDone(
            *size,
            batch,
            [],
            None,
            images,
            oom.peak_gb,
            oom.peak_kind,
            oom.device_total_gb,
            first_s,
            first_graphs,
            oom,
            comparison,
        )
    peak_gb, peak_kind = timing.peak_memory_gb(device)
    return SeriesDone(
        *size,
        batch,
        samples,
        phase,
        images,
        peak_gb,
        peak_kind,
        timing.device_total_gb(device),
        first_s,
        first_graphs,
        None,
        comparison,
    )


def compare_with_batch_one(
    made: list[Any], references: list[str | None], media_dir: Path
) -> BatchComparison:
    """SSIM and PSNR of each image of a batch against the batch-1 image of the same prompt
    and seed (the fidelity metrics' own functions, app/quality/); identical pixels counted
    apart, since PSNR is infinite there."""
    import numpy as np

    from app.quality import load_image, psnr_db, ssim, to_tensor

    pairs = [
        (image.convert("RGB"), load_image(media_dir / ref))
        for image, ref in zip(made, references, strict=False)
        if ref is not None
    ]
    if not pairs:
        return BatchComparison(0, 0, None, None, None)
    identical = sum(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in pairs)
    import torch

    preds = torch.stack([to_tensor(a) for a, _ in pairs])
    target = torch.stack([to_tensor(b) for _, b in pairs])
    ssims = ssim(preds, target).tolist()
    differing = [
        value
        for value, (a, b) in zip(psnr_db(preds, target).tolist(), pairs, strict=True)
        if not np.array_equal(np.asarray(a), np.asarray(b))
    ]
    return BatchComparison(
        compared=len(pairs),
        identical=int(identical),
        ssim_mean=sum(ssims) / len(ssims),
        ssim_min=min(ssims),
        psnr_min_db=min(differing) if differing else None,
    )


# How this process began: a fresh interpreter (`python -m app.worker.child`), or a fork of
# the preloaded server (app/worker/preloaded.py), which `forked_main` records.
_STARTED = "interpreter"


def _run(conn: Connection) -> int:
    import faulthandler

    faulthandler.enable()  # a segfault's traceback goes to stderr, which the parent keeps
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


def _exit(code: int) -> None:
    # Everything the parent needs was sent and every image renamed into place: skip the
    # interpreter's teardown of torch, the pipeline and the Inductor pool (about 1 s per
    # variant on a 2-core CPU, which the parent waits for). The compile workers of a
    # compiled variant exit on their own when this process is gone (their pipe closes).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str]) -> int:
    fd, parent_pid = int(argv[1]), int(argv[2])
    die_with_parent(parent_pid)
    return _run(Connection(fd))


def forked_main(conn: Connection, stderr: Connection, env: dict[str, str]) -> None:
    """A child forked from the preloaded server: its stderr is the parent's pipe, its
    environment the one the parent chose (not the server's), and it dies with the server,
    which exits with the worker."""
    global _STARTED
    _STARTED = "fork of a preloaded server"
    os.dup2(stderr.fileno(), 2)
    stderr.close()
    os.environ.clear()
    os.environ.update(env)
    die_with_parent(os.getppid())
    _exit(_run(conn))


if __name__ == "__main__":
    _exit(main(sys.argv))
