"""The shapes benchmark's prompt file: held-out specs only, balanced over the categories.

    python -m app.training.prompt_file [--out prompts/shapes-64.tsv] [--count 64] [--seed 0]

Each category gets `count // 6` prompts; the remainder goes in turn to "position" and "two
objects", the categories with the most distinct specs, so 64 gives 10 of each and 12
position and two-object prompts. Within a category, rows are sorted by prompt. The
same arguments always write the same bytes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.training.shapes import (
    ANY,
    CATEGORIES,
    SceneSpec,
    is_held_out,
    prompt_of,
    sample_spec,
    spec_to_json,
)

DEFAULT_OUT = Path("prompts/shapes-64.tsv")
REMAINDER_TAKERS = ("position", "two objects")
CHALLENGES = {
    "colour": "Colour",
    "shape": "Shape",
    "count": "Count",
    "position": "Position",
    "two objects": "Composition",
    "attribute binding": "Binding",
}
MAX_DRAWS = 100_000  # per category; the smallest, "shape", has 10 held-out specs of 27


@dataclass(frozen=True)
class ShapesPrompt:
    spec: SceneSpec
    category: str

    def fields(self) -> list[str]:
        sizes_left_out = any(group.size == ANY for group in self.spec.groups)
        note = "size not stated" if sizes_left_out else ""
        return [
            prompt_of(self.spec),
            self.category,
            CHALLENGES[self.category],
            note,
            spec_to_json(self.spec),
        ]


def quotas(count: int) -> dict[str, int]:
    if count < len(CATEGORIES):
        raise ValueError(f"count must be at least {len(CATEGORIES)}, one per category")
    base, extra = divmod(count, len(CATEGORIES))
    shares = {c: base for c in CATEGORIES}
    for turn in range(extra):
        shares[REMAINDER_TAKERS[turn % len(REMAINDER_TAKERS)]] += 1
    return shares


def shapes_prompts(count: int = 64, seed: int = 0) -> list[ShapesPrompt]:
    """`count` distinct held-out prompts, by `quotas`, in category order."""
    rng = np.random.default_rng(seed)
    chosen: list[ShapesPrompt] = []
    for category, quota in quotas(count).items():
        specs: dict[str, SceneSpec] = {}
        for _ in range(MAX_DRAWS):
            if len(specs) == quota:
                break
            spec = sample_spec(rng, category)
            if is_held_out(spec):
                specs.setdefault(prompt_of(spec), spec)
        else:
            raise ValueError(f"fewer than {quota} held-out {category!r} specs were found")
        chosen += [ShapesPrompt(specs[prompt], category) for prompt in sorted(specs)]
    return chosen


def write_prompt_file(path: Path, count: int = 64, seed: int = 0) -> None:
    command = f"python -m app.training.prompt_file --out {path} --count {count} --seed {seed}"
    lines = [
        f"# Made by `{command}`: held-out specs of the shapes world (app/training/shapes.py).",
        "\t".join(("prompt", "category", "challenge", "note", "spec")),
        *("\t".join(p.fields()) for p in shapes_prompts(count, seed)),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temporary.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the shapes benchmark's prompt file.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        write_prompt_file(args.out, args.count, args.seed)
    except ValueError as err:
        parser.error(str(err))
    print(f"wrote {args.count} prompts to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
