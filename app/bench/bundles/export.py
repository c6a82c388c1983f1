"""Writing a run bundle: a finished run's rows, a table at a time, its image files streamed
from the media folder and hashed on the way, and the manifest last; the tar is written beside
its destination and renamed, so the destination is whole or untouched.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, select

from app.bench.bundles.format import (
    BATCH,
    FORMAT,
    MANIFEST,
    MEDIA,
    ROW_FORMAT,
    ROWS,
    BundleError,
    check_database,
    dumps,
    encode,
    manifest_checksum,
    progress_bar,
    safe_name,
)
from app.bench.bundles.tables import MEDIA_COLUMNS, ROOT, bundled_tables, of_run, primary_key
from app.models import Base, RunStatus


@dataclass(frozen=True)
class ExportReport:
    path: Path
    run_id: int
    name: str
    rows: dict[str, int]
    files: int
    size: int  # bytes of the tar


class _HashingReader:
    """A file read through once: hashes and counts what passes (tarfile reads it)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        return data


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = int(datetime.now(UTC).timestamp())
    return info


def export_run(
    engine: Engine, run_id: int, media_dir: Path, out: Path, *, show_progress: bool = False
) -> ExportReport:
    """Write run `run_id` (its rows and image files) to the bundle `out`. The tar is written
    beside `out` and renamed at the end: `out` is whole or untouched."""
    if not out.parent.is_dir():
        raise BundleError(f"{out.parent}: no such folder")
    head = check_database(engine)
    tables = bundled_tables()
    bundled = {table.name for table in tables}
    runs = Base.metadata.tables[ROOT]
    part = out.with_name(f"{out.name}.part-{os.getpid()}")
    files: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    media: dict[str, None] = {}  # paths in row order, once each
    with engine.connect() as conn, progress_bar(show_progress) as progress:
        run = conn.execute(select(runs).where(primary_key(runs) == run_id)).mappings().first()
        if run is None:
            raise BundleError(f"run {run_id} not found")
        if run["status"] in (RunStatus.pending, RunStatus.running):
            raise BundleError(
                f"run {run_id} is {run['status'].value}: export it when its jobs have ended "
                "(a rerun of its config resumes it)"
            )
        try:
            with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar:
                # 1. The rows, a table at a time, in primary key order.
                task = progress.add_task("rows", total=None)
                for table in tables:
                    member = f"{ROWS}{table.name}.jsonl"
                    paths = MEDIA_COLUMNS.get(table.name, ())
                    counts[table.name] = 0
                    digest = hashlib.sha256()
                    with tempfile.TemporaryFile() as buffer:
                        rows = conn.execute(
                            select(table)
                            .where(of_run(table, run_id, bundled))
                            .order_by(primary_key(table))
                            .execution_options(yield_per=BATCH)
                        )
                        for row in rows.mappings():
                            line = dumps({k: encode(v) for k, v in row.items()}) + "\n"
                            data = line.encode()
                            digest.update(data)
                            buffer.write(data)
                            counts[table.name] += 1
                            for column in paths:
                                if row[column] is not None:
                                    media.setdefault(row[column])
                            progress.advance(task)
                        size = buffer.tell()
                        buffer.seek(0)
                        tar.addfile(_tarinfo(member, size), buffer)
                    files.append({"path": member, "sha256": digest.hexdigest(), "size": size})
                progress.remove_task(task)

                # 2. The image files, streamed from the media folder and hashed on the way.
                task = progress.add_task("images", total=len(media))
                for path in media:
                    if not safe_name(path):
                        raise BundleError(f"{path}: not a path inside the media folder")
                    source = media_dir / path
                    try:
                        handle = open(source, "rb")  # noqa: SIM115 (closed below)
                    except FileNotFoundError:
                        raise BundleError(
                            f"{path}: missing from the media folder {media_dir}"
                        ) from None
                    with handle:
                        size = os.fstat(handle.fileno()).st_size
                        reader = _HashingReader(handle)
                        tar.addfile(_tarinfo(MEDIA + path, size), reader)
                    files.append(
                        {"path": MEDIA + path, "sha256": reader.hash.hexdigest(), "size": size}
                    )
                    progress.advance(task)

                # 3. The manifest, last: it holds every other member's hash.
                manifest: dict[str, Any] = {
                    "format": FORMAT,
                    "row_format": ROW_FORMAT,
                    "schema": head,
                    "created_at": datetime.now(UTC).isoformat(),
                    "run": {
                        "id": run_id,
                        "name": run["name"],
                        "fingerprint": run["fingerprint"],
                        "status": run["status"].value,
                    },
                    "tables": counts,
                    "files": files,
                }
                manifest["manifest_sha256"] = manifest_checksum(manifest)
                data = json.dumps(manifest, indent=1).encode()
                tar.addfile(_tarinfo(MANIFEST, len(data)), io.BytesIO(data))
            os.replace(part, out)
        finally:
            part.unlink(missing_ok=True)
    return ExportReport(
        path=out,
        run_id=run_id,
        name=run["name"],
        rows=counts,
        files=len(media),
        size=out.stat().st_size,
    )
