"""The bundle format both directions share: member names and limits, the format and schema
versions, how a row's values are written as JSON and read back, the manifest's own checksum,
safe member paths, BundleError, and the progress bar on stderr.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import posixpath
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import Column, DateTime, Engine, Enum, LargeBinary

FORMAT = "flux-playground-run-bundle"
# How rows are written (JSON lines, the encodings in encode). The schema itself is the
# Alembic revision; this changes only when the encoding does.
ROW_FORMAT = 1

MANIFEST = "manifest.json"
ROWS = "rows/"
MEDIA = "media/"
CHUNK = 1 << 20
BATCH = 1000
# Well above the manifest of a 100k-image run (~20 MB); a bigger one is not ours.
MANIFEST_MAX_BYTES = 256 << 20


class BundleError(ValueError):
    """Why a run cannot be exported or a bundle imported: one line, naming the member."""


# --- schema version ------------------------------------------------------------------------


@lru_cache
def schema_head() -> str:
    """The Alembic head revision of migrations/versions: the schema this code writes."""
    from alembic.script import ScriptDirectory

    from app.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


@lru_cache
def known_revisions() -> frozenset[str]:
    """Every revision of migrations/versions: a bundle at one of them is older than this
    code; at none, newer (or from another branch)."""
    from alembic.script import ScriptDirectory

    from app.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return frozenset(revision.revision for revision in script.walk_revisions())


def check_database(engine: Engine) -> str:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    head = schema_head()
    if current != head:
        raise BundleError(
            f"the database is at schema revision {current}, this code at {head}: "
            "run `flux-playground init` first"
        )
    return head


# --- rows as JSON ----------------------------------------------------------------------------


def encode(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        # SQLite hands back the UTC times we store without their zone.
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value  # numbers, strings, booleans, JSON columns' values


def decode(column: Column[Any], value: Any) -> Any:
    kind = column.type
    if value is None:
        return None
    if isinstance(kind, Enum) and kind.enum_class is not None:
        return kind.enum_class(value)
    if isinstance(kind, DateTime):
        return datetime.fromisoformat(value)
    if isinstance(kind, LargeBinary):
        return base64.b64decode(value)
    return value


def dumps(value: Any) -> str:
    # Python's JSON writes inf as Infinity (PSNR of identical images) and reads it back.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON without its own checksum field: a flipped
    byte in manifest.json is caught like one in any other member."""
    body = {key: value for key, value in manifest.items() if key != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def safe_name(name: str) -> bool:
    """A relative, normalized POSIX path with no `..`: it cannot leave the folder it is
    extracted into."""
    return (
        bool(name)
        and not name.startswith("/")
        and "\\" not in name
        and "\x00" not in name
        and posixpath.normpath(name) == name
        and ".." not in name.split("/")
    )


# --- progress --------------------------------------------------------------------------------


def progress_bar(show: bool) -> Progress:
    # On stderr, so that stdout carries only the result line (scripts read the run id).
    return Progress(
        TextColumn("[bold]{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not show,
    )
