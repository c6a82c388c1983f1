"""What each memory-saving option saves, on the CPU: load peak, steady-state peak and the
bytes of the quantized components' weights, side by side.

Every option is a variant of one benchmark run by the real worker: one child process per
variant, and the two memory figures it stores (`load_peak_gb`: loading, quantizing and the
first call; `peak_mem_gb`: generating, the peak reset after the first call), here the child's
peak RSS. The model is `tiny:schnell` with its transformer widened to `--heads` x 128
(app/worker/tiny.py's `build_wide_model`, one block of each kind, float32), so that its
weights, not the few hundred MB of torch and the libraries themselves, move the figures.
Its T5 encoder is widened to `--text-width` (the tiny one's 32-wide rows are narrower than
bitsandbytes' CPU 4-bit kernel takes) but stays small: the T5 options show in the T5
column, hardly in the peaks.
Options that need a CUDA GPU are listed too: the worker fails them on the CPU, with the
reason shown.

The weights' bytes are counted in this process afterwards, loading each variant that ran
(`pipelines.parameter_bytes`: parameters and buffers, inside torchao's and bitsandbytes'
packed tensors).

    python benchmarks/memory_options.py [--heads 8] [--text-width 128] [--size 256]

Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
from importlib import metadata
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from sqlalchemy import select

from app.bench.benchmark import load_benchmark
from app.bench.prompts import load_prompts
from app.db import make_engine, session_scope
from app.migrate import upgrade
from app.models import Variant, VariantStatus
from app.worker import pipelines
from app.worker.enqueue import enqueue_run
from app.worker.runner import Worker
from app.worker.tiny import build_wide_model

ROOT = Path(__file__).resolve().parent.parent

# (variant name, its settings as TOML lines, which library does the work)
OPTIONS: list[tuple[str, str, str]] = [
    ("baseline", "", "-"),
    ("int8_weight_only", 'quantize = "int8_weight_only"', "torchao"),
    ("int8_dynamic", 'quantize = "int8_dynamic"', "torchao"),
    ("int4_weight_only", 'quantize = "int4_weight_only"', "torchao"),
    ("t5-int8_weight_only", 'text_encoder_quantize = "int8_weight_only"', "torchao"),
    ("t5-nf4", 'text_encoder_quantize = "nf4"', "bitsandbytes"),
    ("t5-int8", 'text_encoder_quantize = "int8"', "bitsandbytes"),
    ("vae_tiling", "vae_tiling = true", "diffusers"),
    ("vae_slicing", "vae_slicing = true", "diffusers"),
    ("fp8_dynamic", 'quantize = "fp8_dynamic"', "torchao"),
    ("nf4", 'quantize = "nf4"', "bitsandbytes"),
    ("int8", 'quantize = "int8"', "bitsandbytes"),
]
# Offloading needs device = "cuda": a config error on a CPU benchmark, so not a variant here.


def write_config(work: Path, model: Path, size: int, prompts: int) -> Path:
    lines = [
        'name = "memory-options"',
        f'prompts = "{ROOT / "prompts" / "parti-64.tsv"}"',
        f"prompt_limit = {prompts}",
        "seeds = [0]",
        f"width = {size}",
        f"height = {size}",
        'device = "cpu"',
        'hardware = "CPU"',
        "usd_per_hour = 0.0",
        "warmup = 1",
        "repeats = 3",
    ]
    for name, settings, _ in OPTIONS:
        lines += ["", "[[variants]]", f'name = "{name}"', f'model = "{model}"', "steps = 4"]
        lines += ["guidance = 0.0", "max_sequence_length = 64", 'dtype = "float32"']
        lines += [settings] if settings else []
    path = work / "memory-options.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def weight_mb(name: str, config: Path, models: Path) -> tuple[float, float]:
    """The transformer's and the T5 encoder's weights in MB, as the variant loads them."""
    spec = load_benchmark(config).variant(name)
    pipe = pipelines.load_pipeline(spec, device="cpu", models_dir=models, config_dir=config.parent)
    sizes = (
        pipelines.parameter_bytes(pipe.transformer) / 1e6,
        pipelines.parameter_bytes(pipe.text_encoder_2) / 1e6,
    )
    del pipe
    gc.collect()
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=int, default=8, help="transformer width: heads x 128")
    parser.add_argument("--text-width", type=int, default=128, help="the T5 encoder's width")
    parser.add_argument("--size", type=int, default=256, help="image size (square)")
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    pipelines.set_cpu_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="memory-options-"))
    models = ROOT / "models"
    model = build_wide_model(
        models, heads=args.heads, dtype=torch.float32, text_width=args.text_width
    )
    config = write_config(work, model, args.size, args.prompts)
    bench = load_benchmark(config)

    url = f"sqlite:///{work / 'memory.db'}"
    upgrade(url)
    engine = make_engine(url)
    run_id = enqueue_run(engine, bench, load_prompts(bench.prompts_path, limit=args.prompts))
    worker = Worker(
        engine,
        media_dir=work / "media",
        models_dir=models,
        show_progress=False,
        lock_dir=work / "locks",
        cpu_threads=args.threads,
    )
    worker.work(run_id)
    with session_scope(engine) as session:
        rows = [
            (v.name, v.status, v.error, v.load_peak_gb, v.peak_mem_gb)
            for v in session.scalars(select(Variant).order_by(Variant.position))
        ]
    engine.dispose()

    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("torch", "diffusers", "transformers", "torchao", "bitsandbytes")
    )
    print(
        f"tiny:schnell, transformer {args.heads} x 128 wide (1 double + 1 single block), "
        f"T5 {args.text_width} wide, float32, {args.size}x{args.size}, 4 steps, CPU, "
        f"{args.threads} threads; {versions}\n"
    )
    print(
        "| option | library | transformer weights | vs baseline | T5 weights "
        "| load peak RSS | steady peak RSS | |"
    )
    print("|---|---|---|---|---|---|---|---|")
    library = {name: lib for name, _, lib in OPTIONS}
    baseline_mb: float | None = None
    for name, status, error, load_gb, peak_gb in rows:
        if status is not VariantStatus.done:
            print(f"| {name} | {library[name]} | | | | | | fails on the CPU: {error} |")
            continue
        transformer_mb, t5_mb = weight_mb(name, config, models)
        baseline_mb = baseline_mb or transformer_mb
        print(
            f"| {name} | {library[name]} | {transformer_mb:.1f} MB "
            f"| {100 * transformer_mb / baseline_mb:.0f}% | {t5_mb:.2f} MB "
            f"| {load_gb:.2f} GB | {peak_gb:.2f} GB | |"
        )


if __name__ == "__main__":
    main()
