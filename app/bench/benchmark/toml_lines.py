"""Where a key is in a TOML text: tomllib gives no line numbers, and every config error
names the line (DESIGN.md, rule 6).
"""

from __future__ import annotations

import re


def locate(text: str, loc: tuple[int | str, ...]) -> int | None:
    """Best-effort line number of a key in a TOML text (tomllib gives none).

    Handles the shapes our configs use: top-level keys, and keys of the N-th `[[variants]]`
    table (inline tables or `[variants.lora]` sub-tables count as part of that variant).
    """
    lines = text.splitlines()
    start, end = 0, len(lines)
    parts = list(loc)
    if len(parts) >= 2 and parts[0] == "variants" and isinstance(parts[1], int):
        headers = [i for i, line in enumerate(lines) if line.strip().startswith("[[variants]]")]
        if parts[1] >= len(headers):
            return None
        start = headers[parts[1]]
        following = [i for i in headers if i > start]
        end = following[0] if following else len(lines)
        parts = parts[2:]
        if not parts:
            return start + 1
    else:
        # Top-level keys come before the first table header.
        tables = [i for i, line in enumerate(lines) if line.strip().startswith("[")]
        end = tables[0] if tables else len(lines)
    key = next((p for p in parts if isinstance(p, str)), None)
    if key is None:
        return start + 1 if start else None
    pattern = re.compile(rf"^\s*(\[+\s*)?[\w.]*\b{re.escape(key)}\b\s*(=|\])")
    for i in range(start, end):
        if pattern.match(lines[i]):
            return i + 1
    return start + 1 if start else None
