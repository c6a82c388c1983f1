"""How well the trained shapes models draw the held-out prompts (prompts/shapes-64.tsv), judged
by the adherence oracle (app/quality/adherence.py): per model, per step count, per category.

    .venv/bin/python benchmarks/shapes_adherence.py [--weights weights/shapes] [--seeds 2]

Generates through `FluxPipeline` as the worker does (max_sequence_length = TEXT_TOKENS,
128x128), with seeds 0..N-1 per prompt, and prints one line per (model, steps) and a JSON
summary at the end (--json FILE) for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline

from app.bench.prompts import load_prompts
from app.training.evaluate import evaluate
from app.training.shapes import spec_from_json

ROOT = Path(__file__).resolve().parents[1]
# (model, pipeline folder, LoRA folder or None, guidance, step counts)
PLANS = [
    ("dev", "dev", None, 3.5, (28, 8, 4)),
    ("schnell", "schnell", None, 0.0, (4, 2, 1)),
    ("dev + turbo LoRA", "dev", "turbo-lora", 3.5, (8, 4)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=ROOT / "weights" / "shapes")
    parser.add_argument("--prompts", type=Path, default=ROOT / "prompts" / "shapes-64.tsv")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", help="one model name of the plans")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    specs = [spec_from_json(row.spec) for row in load_prompts(args.prompts) if row.spec]
    results = []
    for name, folder, lora, guidance, step_counts in PLANS:
        if args.only and name != args.only:
            continue
        pipe = FluxPipeline.from_pretrained(args.weights / folder)
        if lora:
            pipe.load_lora_weights(args.weights / lora)
        for steps in step_counts:
            started = time.perf_counter()
            runs = [
                evaluate(pipe, specs, steps=steps, seed=seed * 1000, guidance=guidance)
                for seed in range(args.seeds)
            ]
            correct = sum(r.correct for r in runs) / len(runs)
            score = sum(r.score for r in runs) / len(runs)
            categories = {
                k: sum(r.per_category[k] for r in runs) / len(runs) for k in runs[0].per_category
            }
            line = ", ".join(f"{k} {v:.0%}" for k, v in sorted(categories.items()))
            seconds = time.perf_counter() - started
            print(
                f"{name:>16} {steps:>2} steps: {correct:.1%} right, score {score:.2f} "
                f"({line}) [{seconds:.0f} s]",
                flush=True,
            )
            results.append(
                {
                    "model": name,
                    "steps": steps,
                    "correct": correct,
                    "score": score,
                    "per_category": categories,
                }
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
