"""How much does the worker add per image, over a bare loop of pipeline calls?

Both sides run in this one process on the same tiny FLUX pipeline settings (a variant of
configs/demo.toml, `schnell` by default: 256x256, 4 steps, CPU), over the same prompts,
interleaved round by round so that machine noise hits both alike. Two questions:

1. Does the worker measure what a bare loop measures? The median `latency_s` the worker
   records per image, against the per-image time of N bare `pipelines.generate(...)` calls.
   This is the number the product shows. Goal: within 5%.
2. What does a whole job cost? The worker's `work()` wall time minus the child process's
   start, the variant's load time, first call and steady-state calls (all recorded by the
   worker itself), divided by N:
   claim, generate, PNG + WebP encoding and the commit. An upper bound, since one-off
   bookkeeping counts too.

    python benchmarks/harness_overhead.py [--variant schnell] [--prompts 64] [--rounds 3]

Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sqlalchemy import select

from app.bench.benchmark import load_benchmark
from app.bench.prompts import load_prompts
from app.db import make_engine, session_scope
from app.migrate import upgrade
from app.models import Variant
from app.worker import pipelines
from app.worker.enqueue import enqueue_run
from app.worker.runner import Worker
from app.worker.tiny import build_tiny_models

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", default="schnell", help="a variant of configs/demo.toml")
    args = parser.parse_args()
    pipelines.set_cpu_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="harness-overhead-"))
    models = ROOT / "models"
    build_tiny_models(models)
    demo = load_benchmark(ROOT / "configs" / "demo.toml")
    spec = demo.variant(args.variant)
    prompts = load_prompts(demo.prompts_path, limit=args.prompts)
    config = work / "bench.toml"
    config.write_text(
        f'name = "overhead"\nprompts = "{demo.prompts_path}"\nprompt_limit = {args.prompts}\n'
        f'seeds = [0]\nwidth = {demo.width}\nheight = {demo.height}\ndevice = "cpu"\n'
        f'hardware = "x"\nusd_per_hour = 1.0\nwarmup = 0\nrepeats = 1\n\n'
        f'[[variants]]\nname = "{spec.name}"\nmodel = "{spec.model}"\nsteps = {spec.steps}\n'
        f"guidance = {spec.guidance}\nmax_sequence_length = {spec.max_sequence_length}\n"
        f'dtype = "{spec.dtype}"\n'
    )

    pipe = pipelines.load_pipeline(spec, device="cpu", models_dir=models, config_dir=ROOT)
    pipelines.generate(pipe, spec, prompt="warm-up", seed=0, width=demo.width, height=demo.height)

    bare_s: list[float] = []
    recorded_s: list[float] = []
    job_s: list[float] = []
    startup_s: list[float] = []  # the child process's start: interpreter + imports
    for round_ in range(args.rounds):
        start = time.perf_counter()
        for row in prompts:
            pipelines.generate(
                pipe, spec, prompt=row.text, seed=0, width=demo.width, height=demo.height
            )
        bare_s.append((time.perf_counter() - start) / len(prompts))

        url = f"sqlite:///{work / f'round{round_}.db'}"
        upgrade(url)
        engine = make_engine(url)
        bench = load_benchmark(config)
        run_id = enqueue_run(engine, bench, load_prompts(bench.prompts_path, limit=args.prompts))
        worker = Worker(
            engine,
            media_dir=work / f"media{round_}",
            models_dir=models,
            show_progress=False,
            lock_dir=work / "locks",
            cpu_threads=args.threads,
        )
        start = time.perf_counter()
        worker.work(run_id)
        wall = time.perf_counter() - start
        with session_scope(engine) as session:
            variant = session.scalars(select(Variant)).one()
            steady, per_image = variant.timing("steady_state"), variant.timing("per_image")
            assert steady and per_image and variant.load_s and variant.compile_s
            startup = variant.environment["process_startup_s"]
            fixed = (
                startup + variant.load_s + variant.compile_s + steady.latency_median_s * steady.n
            )
            recorded_s.append(per_image.latency_mean_s)
            startup_s.append(startup)
        job_s.append((wall - fixed) / len(prompts))
        engine.dispose()

    bare = statistics.median(bare_s)
    recorded, job = statistics.median(recorded_s), statistics.median(job_s)
    print(
        f"variant: {spec.name} ({spec.steps} steps, {demo.width}x{demo.height}), "
        f"rounds: {args.rounds}, prompts per round: {len(prompts)}, threads: {args.threads}\n"
    )
    print("| per image, mean over the prompts | median of rounds | vs bare | rounds, ms |")
    print("|---|---|---|---|")
    rows = (
        ("bare `generate(...)` loop", bare, bare_s),
        ("worker: recorded `latency_s`", recorded, recorded_s),
        ("worker: whole job (claim, generate, encode, commit)", job, job_s),
    )
    for label, value, samples in rows:
        rounds = ", ".join(f"{x * 1000:.1f}" for x in samples)
        print(f"| {label} | {value * 1000:.1f} ms | {100 * (value / bare - 1):+.1f}% | {rounds} |")
    rounds = ", ".join(f"{x:.2f}" for x in startup_s)
    print(
        f"\nchild process start (interpreter + torch/diffusers imports, once per variant): "
        f"median {statistics.median(startup_s):.2f} s (rounds: {rounds} s)"
    )


if __name__ == "__main__":
    main()
