"""Sample the benchmark prompt set `prompts/parti-64.tsv` from PartiPrompts.

    python prompts/sample_parti.py [SOURCE] [--out prompts/parti-64.tsv] [--seed 20261125]

SOURCE defaults to `prompts/PartiPrompts.tsv`, the full PartiPrompts file kept in the
repository so that the sampling (and its test) needs nothing outside it (columns Prompt,
Category, Challenge, Note). The default seed is 20261125; the same source
and seed always give a byte-identical output file.

How the 64 prompts are chosen:

1. Drop prompts over 300 characters or containing a tab or newline, and strip the
   surrounding whitespace that some PartiPrompts rows carry.
2. Give every category 4 prompts, then share the remaining ones among the categories in
   proportion to their size (largest remainder; ties go to the category first by name).
3. Within each category (taken by name), deal the prompts round-robin across its challenge
   values, so as many distinct challenges as possible appear. Challenges picked least so far
   in the whole set go first; `random.Random(seed)` breaks ties and picks the prompt.
4. Write `prompt, category, challenge, note` sorted by category, then by source order.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from pathlib import Path
from typing import NamedTuple

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT / "prompts" / "PartiPrompts.tsv"
DEFAULT_OUT = REPO_ROOT / "prompts" / "parti-64.tsv"
DEFAULT_SEED = 20261125
TOTAL = 64
MIN_PER_CATEGORY = 4
MAX_PROMPT_CHARS = 300


class Row(NamedTuple):
    order: int  # position in the source, so the output keeps PartiPrompts' order
    prompt: str
    category: str
    challenge: str
    note: str


def read_parti(path: Path) -> list[Row]:
    # Plain split, not the csv module: PartiPrompts has unbalanced quotes in its text.
    lines = path.read_text(encoding="utf-8").split("\n")
    header = lines[0].rstrip("\r").split("\t")
    if header != ["Prompt", "Category", "Challenge", "Note"]:
        raise SystemExit(f"{path}:1: unexpected header {header}")
    rows = []
    for order, line in enumerate(lines[1:]):
        fields = line.rstrip("\r").split("\t")
        if len(fields) != 4:
            continue  # a multi-line or malformed record; cannot be written as one TSV row
        prompt, category, challenge, note = (field.strip() for field in fields)
        if prompt and len(prompt) <= MAX_PROMPT_CHARS:
            rows.append(Row(order, prompt, category, challenge, note))
    return rows


def allocate(sizes: dict[str, int], total: int, minimum: int) -> dict[str, int]:
    """Per-category counts: `minimum` each, the rest by largest remainder of the size share."""
    extra = total - minimum * len(sizes)
    if extra < 0:
        raise SystemExit(f"{total} prompts cannot give {len(sizes)} categories {minimum} each")
    everyone = sum(sizes.values())
    # Integer arithmetic keeps the remainders exact, so the result never depends on rounding.
    quotas = {cat: divmod(extra * size, everyone) for cat, size in sizes.items()}
    counts = {cat: minimum + whole for cat, (whole, _) in quotas.items()}
    left = extra - sum(whole for whole, _ in quotas.values())
    for cat in sorted(quotas, key=lambda cat: (-quotas[cat][1], cat))[:left]:
        counts[cat] += 1
    for cat, count in counts.items():
        if count > sizes[cat]:
            raise SystemExit(f"category {cat!r} has {sizes[cat]} prompts, {count} are needed")
    return counts


def sample(rows: list[Row], seed: int, total: int = TOTAL) -> list[Row]:
    rng = random.Random(seed)
    by_category: dict[str, list[Row]] = {}
    for row in rows:
        by_category.setdefault(row.category, []).append(row)
    counts = allocate({cat: len(rs) for cat, rs in by_category.items()}, total, MIN_PER_CATEGORY)

    picked: list[Row] = []
    challenge_uses: Counter[str] = Counter()
    for category in sorted(by_category):
        pools: dict[str, list[Row]] = {}
        for row in by_category[category]:
            pools.setdefault(row.challenge, []).append(row)
        for pool in pools.values():
            rng.shuffle(pool)
        # Favour challenges the set is short of, so small categories add variety overall.
        order = sorted(sorted(pools), key=lambda ch: (challenge_uses[ch], rng.random()))
        need = counts[category]
        while need:
            for challenge in order:
                if need and pools[challenge]:
                    picked.append(pools[challenge].pop())
                    challenge_uses[challenge] += 1
                    need -= 1
    return sorted(picked, key=lambda row: (row.category, row.order))


def write_tsv(rows: list[Row], path: Path) -> None:
    lines = ["prompt\tcategory\tchallenge\tnote"]
    lines += ["\t".join((r.prompt, r.category, r.challenge, r.note)) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sample prompts/parti-64.tsv from PartiPrompts.")
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)

    rows = sample(read_parti(args.source), args.seed)
    write_tsv(rows, args.out)
    categories = Counter(row.category for row in rows)
    challenges = Counter(row.challenge for row in rows)
    print(
        f"wrote {len(rows)} prompts to {args.out}: "
        f"{len(categories)} categories, {len(challenges)} challenges (seed {args.seed})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
