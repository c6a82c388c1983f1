"""Does the worker measure honestly on this CUDA machine? A five-minute check, no downloads.

Runs small FLUX pipelines through the real worker on the GPU — one child process per variant,
bf16, int8 weight-only, torch.compile, fp8 where the GPU supports it (compute capability 8.9+),
the first-block cache and a fused LoRA — twice, on two fresh databases, and asserts the
invariants a careful engineer would check before trusting the figures:

- every variant ran (fp8 is skipped with the reason below capability 8.9);
- each variant ran in its own child process;
- int8's steady-state peak memory is below bf16's (quantization shows its saving);
- no compiled variant compiled a graph during its timed series (its latency is steady);
- both runs made pixel-identical images (same config + seed => same image).

The pipelines are the tiny offline ones (app/worker/tiny.py), except the transformer of
`wide`: FLUX's real width (24 heads x 128, 3072 wide; 1 double + 1 single block, ~0.5 B
parameters, ~1 GB in bf16), so that weights, not activations, dominate the memory and the
int8 saving is measurable. Random weights, built locally in seconds.

    python benchmarks/gpu_check.py                # on a CUDA machine: table + PASS/FAIL
    python benchmarks/gpu_check.py --device cpu   # the same plumbing on the CPU (a dry run)

On a machine without CUDA (and without --device cpu) it says so and exits 0: the check is
for GPU machines, and a CPU machine passing it would prove nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from app.bench.benchmark import load_benchmark  # noqa: E402
from app.bench.prompts import load_prompts  # noqa: E402
from app.db import make_engine, session_scope  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.models import Generation, Variant, VariantStatus  # noqa: E402
from app.worker.enqueue import enqueue_run  # noqa: E402
from app.worker.runner import Worker  # noqa: E402
from app.worker.tiny import build_tiny_models, build_wide_model  # noqa: E402

PROMPTS = "prompt\tcategory\tchallenge\n" + "".join(
    f"{text}\tTest\tBasic\n"
    for text in ("a red bicycle", "a bowl of ramen", "an owl reading", "a lighthouse at dusk")
)


def config_text(device: str, wide: Path, fp8: bool) -> str:
    dtype = "bfloat16"
    variants = f"""
[[variants]]
name = "wide"
model = "{wide}"
steps = 2
guidance = 0.0
max_sequence_length = 32
dtype = "{dtype}"

[[variants]]
name = "wide-int8"
base = "wide"
quantize = "int8_weight_only"

[[variants]]
name = "tiny-compiled"
model = "tiny:schnell"
steps = 2
guidance = 0.0
max_sequence_length = 32
dtype = "{dtype}"
compile = {{ backend = "torch", mode = "default", fresh_cache = true }}

[[variants]]
name = "tiny-cache"
model = "tiny:dev"
steps = 8
guidance = 3.5
max_sequence_length = 32
dtype = "{dtype}"
cache = {{ threshold = 0.4 }}

[[variants]]
name = "tiny-lora"
base = "tiny-cache"
lora = {{ path = "tiny:turbo-lora", scale = 1.0, fuse = true }}
"""
    if fp8:
        variants += """
[[variants]]
name = "wide-fp8"
base = "wide"
quantize = "fp8_dynamic"
compile = { backend = "torch", mode = "default" }
"""
    return f"""
name = "gpu-check"
prompts = "prompts.tsv"
seeds = [0]
width = 256
height = 256
device = "{device}"
hardware = "gpu-check"
usd_per_hour = 1.0
warmup = 2
repeats = 5
{variants}"""


def run_once(config: Path, work: Path, models: Path, attempt: str) -> dict[str, dict]:
    url = f"sqlite:///{work / f'{attempt}.db'}"
    upgrade(url)
    engine = make_engine(url)
    bench = load_benchmark(config)
    run_id = enqueue_run(engine, bench, load_prompts(bench.prompts_path))
    Worker(
        engine,
        media_dir=work / f"media-{attempt}",
        models_dir=models,
        lock_dir=work / "locks",
        show_progress=True,
    ).work(run_id)
    out: dict[str, dict] = {}
    with session_scope(engine) as session:
        for variant in session.scalars(select(Variant).order_by(Variant.position)):
            steady = variant.timing("steady_state")
            images = session.execute(
                select(
                    Generation.prompt_id,
                    Generation.seed,
                    Generation.image_sha256,
                    Generation.process,
                ).where(Generation.variant_id == variant.id)
            ).all()
            out[variant.name] = {
                "status": variant.status,
                "error": variant.error,
                "process": variant.process,
                "load_peak_gb": variant.load_peak_gb,
                "peak_mem_gb": variant.peak_mem_gb,
                "compile_s": variant.compile_s,
                "compile_cache": variant.compile_cache,
                "median_ms": steady.latency_median_s * 1000 if steady else None,
                "recompiles": steady.recompiles if steady else None,
                "compiled": variant.config.get("compile") is not None,
                "images": {(prompt, seed): sha for prompt, seed, sha, _ in images},
                "image_processes": {process for *_, process in images},
            }
    engine.dispose()
    return out


def check(
    first: dict[str, dict], second: dict[str, dict], *, fp8: bool, check_memory: bool
) -> list[str]:
    """The invariants; returns what failed (empty: all hold)."""
    failures = []
    for name, row in first.items():
        if row["status"] != VariantStatus.done:
            failures.append(f"{name}: {row['status']} ({row['error']})")
        if row["image_processes"] != {row["process"]}:
            failures.append(f"{name}: images from {row['image_processes']}, not one child")
        if row["compiled"] and row["recompiles"] != 0:
            failures.append(f"{name}: {row['recompiles']} graphs compiled during the series")
        if row["images"] != second[name]["images"]:
            failures.append(f"{name}: images differ between two runs")
    processes = [row["process"] for row in first.values()]
    if len(set(processes)) != len(processes):
        failures.append("two variants shared a child process")
    bf16, int8 = first["wide"]["peak_mem_gb"], first["wide-int8"]["peak_mem_gb"]
    if not check_memory:
        print("int8 < bf16 steady peak: not checked on the CPU dry run (a process's RSS also")
        print("  counts torchao's libraries, more than the narrow model's saving)")
    elif bf16 is None or int8 is None or not int8 < bf16:
        failures.append(f"int8 steady peak {int8} GB is not below bf16's {bf16} GB")
    if fp8 and "wide-fp8" not in first:
        failures.append("fp8 variant missing")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: needs a CUDA GPU (torch.cuda.is_available() is False); nothing to do")
        return 0
    fp8 = args.device == "cuda" and torch.cuda.get_device_capability() >= (8, 9)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    models = work / "models"
    build_tiny_models(models)
    # The CPU dry run is narrower (4 heads): FLUX's width takes seconds per step on a CPU.
    wide = build_wide_model(models, dtype=torch.bfloat16, heads=24 if args.device == "cuda" else 4)
    (work / "prompts.tsv").write_text(PROMPTS)
    config = work / "bench.toml"
    config.write_text(config_text(args.device, wide, fp8))
    first = run_once(config, work, models, "a")
    second = run_once(config, work, models, "b")

    device = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"\ngpu_check on {device}, {time.perf_counter() - started:.0f} s (two runs)\n")
    print("| variant | status | median | load peak | steady peak | compile | recompiles |")
    print("|---|---|---|---|---|---|---|")
    for name, row in first.items():
        median = f"{row['median_ms']:.1f} ms" if row["median_ms"] is not None else "-"
        compile_ = (
            f"{row['compile_s']:.1f} s ({row['compile_cache']})" if row["compile_cache"] else "-"
        )
        print(
            f"| {name} | {row['status']} | {median} | {row['load_peak_gb'] or 0:.3f} GB | "
            f"{row['peak_mem_gb'] or 0:.3f} GB | {compile_} | {row['recompiles']} |"
        )
    if not fp8:
        print("\nfp8: skipped (needs a CUDA GPU with compute capability >= 8.9)")
    failures = check(first, second, fp8=fp8, check_memory=args.device == "cuda")
    for failure in failures:
        print(f"FAIL {failure}")
    print("PASS" if not failures else f"FAIL ({len(failures)})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
