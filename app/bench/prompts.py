"""Load and validate prompt sets: UTF-8 TSV files with a header line.

Required columns `prompt`, `category`, `challenge` and optional `note` and `spec`, in any
order and any case. `spec` is a shapes-world scene as canonical JSON (app/training/shapes.py),
kept as its text and checked at load; empty for a prompt with nothing an oracle can check.
Blank lines and lines starting with `#` are skipped. Fields are split on tabs only,
never unquoted, because prompts quote freely (`a sign that says "OPEN"`). Every problem
raises `InputFileError` with the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.errors import InputFileError
from app.training.shapes import spec_from_json

REQUIRED_COLUMNS = ("prompt", "category", "challenge")
OPTIONAL_COLUMNS = ("note", "spec")
MAX_PROMPT_CHARS = 1000


@dataclass(frozen=True)
class PromptRow:
    text: str
    category: str
    challenge: str
    note: str = ""
    line: int = 0  # 1-based line in the file, for messages
    spec: str = ""  # the scene's JSON, for the adherence oracle (app/quality/adherence.py)


def load_prompts(path: Path | str, *, limit: int | None = None) -> list[PromptRow]:
    """Read every prompt row of `path`; `limit` keeps the first N after checking them all."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    path = Path(path)
    lines = _read_lines(path)

    header: dict[str, int] | None = None
    rows: list[PromptRow] = []
    first_seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if header is None:
            header = _parse_header(path, fields, number)
            continue
        if len(fields) != len(header):
            raise InputFileError(
                path,
                f"expected {len(header)} tab-separated fields, found {len(fields)}",
                line=number,
            )
        row = PromptRow(
            text=fields[header["prompt"]].strip(),
            category=fields[header["category"]].strip(),
            challenge=fields[header["challenge"]].strip(),
            note=fields[header["note"]].strip() if "note" in header else "",
            line=number,
            spec=fields[header["spec"]].strip() if "spec" in header else "",
        )
        if not row.text:
            raise InputFileError(path, "empty prompt", line=number)
        if len(row.text) > MAX_PROMPT_CHARS:
            raise InputFileError(
                path,
                f"prompt is {len(row.text)} characters, the limit is {MAX_PROMPT_CHARS}",
                line=number,
            )
        if row.text in first_seen:
            raise InputFileError(
                path, f"duplicate prompt, first on line {first_seen[row.text]}", line=number
            )
        if row.spec:
            try:
                spec_from_json(row.spec)
            except ValueError as err:
                raise InputFileError(path, f"bad spec: {err}", line=number) from None
        first_seen[row.text] = number
        rows.append(row)

    if header is None:
        raise InputFileError(
            path, "empty file: expected a header line with columns prompt, category, challenge"
        )
    if not rows:
        raise InputFileError(path, "no prompt rows after the header")
    return rows if limit is None else rows[:limit]


def _read_lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except OSError as err:
        raise InputFileError(path, f"cannot read file: {err.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        bad = raw[err.start]
        raise InputFileError(
            path, f"not UTF-8: byte 0x{bad:02x} cannot be decoded", line=line
        ) from None
    # Spreadsheets save with a byte-order mark and CRLF line ends; neither is content.
    # split("\n") rather than splitlines(): the latter also breaks on characters such as
    # U+2028 inside a prompt, which would shift every later line number.
    return [line.removesuffix("\r") for line in text.removeprefix("\ufeff").split("\n")]


def _parse_header(path: Path, fields: list[str], number: int) -> dict[str, int]:
    """Map each known column name to its field index."""
    names = [field.strip().lower() for field in fields]
    known = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    if not set(names) & set(known):
        # Most likely a data row where the header should be; say so rather than list
        # every field of it as an unknown column.
        raise InputFileError(
            path,
            "no header line: the first line must name the columns "
            "prompt, category, challenge (tab-separated)",
            line=number,
        )
    unknown = [
        field.strip() for field, name in zip(fields, names, strict=True) if name not in known
    ]
    if unknown:
        raise InputFileError(
            path,
            f"unknown column(s) {', '.join(map(repr, unknown))}; "
            f"expected {', '.join(REQUIRED_COLUMNS)} and optionally {', '.join(OPTIONAL_COLUMNS)}",
            line=number,
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputFileError(path, f"repeated column(s) {', '.join(repeated)}", line=number)
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise InputFileError(path, f"missing required column(s) {', '.join(missing)}", line=number)
    return {name: index for index, name in enumerate(names)}
