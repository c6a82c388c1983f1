"""Run bundles (issue 12): a run's rows and image files in one tar, so that results made on a
rented GPU box come home to the team's server without a shared database.

    flux-playground export RUN -o run.tar      (on the GPU box)
    flux-playground import run.tar             (on the server)

A bundle is an uncompressed tar (the PNGs are compressed already) of

    rows/<table>.jsonl      one JSON object per row, a file per bundled table, parents first
    media/<path>            every image file the rows name, at its path in the media folder
    manifest.json           last: the sha256 and size of every other member, the schema
                            version, the row counts, and a checksum of the manifest itself

Generic over the ORM metadata: a run's rows are those of every table that reaches `runs`
through foreign keys, except the arena's (EXCLUDED), so a new table or column travels without
a change here. Import verifies the whole bundle before it writes anything, inserts the rows in
one transaction with new ids (every foreign key among them rewritten), and moves the images
into place only after that transaction committed.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import io
import json
import os
import posixpath
import secrets
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    Enum,
    LargeBinary,
    MetaData,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from app.models import Base, RunStatus

T = TypeVar("T")

FORMAT = "flux-playground-run-bundle"
# How rows are written (JSON lines, the encodings in _encode). The schema itself is the
# Alembic revision; this changes only when the encoding does.
ROW_FORMAT = 1

ROOT = "runs"
# Tables that reach `runs` but are not part of a run's results: the arena (votes, raters,
# panels and what is derived from them) belongs to the server where people voted.
# tests/bench/test_bundles.py fails when a table is neither bundled nor listed here.
EXCLUDED = frozenset(
    {
        "matchups",
        "votes",
        "raters",
        "panels",
        "integrity_reviews",
        "leaderboard_snapshots",
        "versions",
    }
)
# Columns that hold a path relative to the media folder: the file travels with the row. Also
# checked by the test: every `*_path` column of a bundled table is here or in NOT_MEDIA.
MEDIA_COLUMNS: dict[str, tuple[str, ...]] = {"generations": ("image_path", "thumb_path")}
NOT_MEDIA = frozenset({("runs", "config_path")})  # where the config was, on the worker's disk
# Row ids kept inside JSON values, which the metadata cannot see: remapped like foreign keys.
JSON_REFERENCES: dict[tuple[str, str], dict[str, str]] = {
    ("generation_metrics", "params"): {"reference_generation_id": "generations"},
}

MANIFEST = "manifest.json"
ROWS = "rows/"
MEDIA = "media/"
CHUNK = 1 << 20
BATCH = 1000
# Well above the manifest of a 100k-image run (~20 MB); a bigger one is not ours.
MANIFEST_MAX_BYTES = 256 << 20


class BundleError(ValueError):
    """Why a run cannot be exported or a bundle imported: one line, naming the member."""


@dataclass(frozen=True)
class ExportReport:
    path: Path
    run_id: int
    name: str
    rows: dict[str, int]
    files: int
    size: int  # bytes of the tar


@dataclass(frozen=True)
class ImportReport:
    run_id: int  # the run's id in this database
    name: str
    created: bool  # False: the run was already here, nothing changed
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0  # media files written (identical files already in place are not)


# --- which tables, which rows --------------------------------------------------------------


def bundled_tables(metadata: MetaData = Base.metadata) -> list[Table]:
    """Every table that reaches `runs` through foreign keys, except EXCLUDED, parents first."""
    reach = {ROOT}
    grew = True
    while grew:
        grew = False
        for table in metadata.tables.values():
            if table.name in reach or table.name in EXCLUDED:
                continue
            if any(fk.column.table.name in reach for fk in table.foreign_keys):
                reach.add(table.name)
                grew = True
    # sorted_tables is topological (a self-reference does not count): parents first.
    return [table for table in metadata.sorted_tables if table.name in reach]


def primary_key(table: Table) -> Column[Any]:
    (column,) = table.primary_key.columns  # ids are single integer columns (tested)
    return column


def owner_key(table: Table, bundled: set[str]) -> Column[Any]:
    """The foreign key column a row of `table` is found through: to `runs` when it has one,
    else to another bundled table; never nullable (a NULL would lose the row)."""
    candidates = sorted(
        (
            fk
            for fk in table.foreign_keys
            if not fk.parent.nullable
            and fk.column.table is not table
            and fk.column.table.name in bundled
        ),
        key=lambda fk: (fk.column.table.name != ROOT, fk.parent.name),
    )
    if not candidates:
        raise ValueError(f"table {table.name}: no non-null foreign key to a bundled table")
    return candidates[0].parent


def _of_run(table: Table, run_id: int, bundled: set[str]) -> ColumnElement[bool]:
    """The condition selecting the rows of `table` that belong to run `run_id`."""
    if table.name == ROOT:
        return primary_key(table) == run_id
    column = owner_key(table, bundled)
    (fk,) = column.foreign_keys
    parent = fk.column.table
    if parent.name == ROOT:
        return column == run_id
    return column.in_(select(fk.column).where(_of_run(parent, run_id, bundled)))


# --- schema version ------------------------------------------------------------------------


@lru_cache
def schema_head() -> str:
    """The Alembic head revision of migrations/versions: the schema this code writes."""
    from alembic.script import ScriptDirectory

    from app.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def _check_database(engine: Engine) -> str:
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


def _encode(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        # SQLite hands back the UTC times we store without their zone.
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value  # numbers, strings, booleans, JSON columns' values


def _decode(column: Column[Any], value: Any) -> Any:
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


def _dumps(value: Any) -> str:
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


def _progress(show: bool) -> Progress:
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


# --- export ----------------------------------------------------------------------------------


def export_run(
    engine: Engine, run_id: int, media_dir: Path, out: Path, *, show_progress: bool = False
) -> ExportReport:
    """Write run `run_id` (its rows and image files) to the bundle `out`. The tar is written
    beside `out` and renamed at the end: `out` is whole or untouched."""
    if not out.parent.is_dir():
        raise BundleError(f"{out.parent}: no such folder")
    head = _check_database(engine)
    tables = bundled_tables()
    bundled = {table.name for table in tables}
    runs = Base.metadata.tables[ROOT]
    part = out.with_name(f"{out.name}.part-{os.getpid()}")
    files: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    media: dict[str, None] = {}  # paths in row order, once each
    with engine.connect() as conn, _progress(show_progress) as progress:
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
                            .where(_of_run(table, run_id, bundled))
                            .order_by(primary_key(table))
                            .execution_options(yield_per=BATCH)
                        )
                        for row in rows.mappings():
                            line = _dumps({k: _encode(v) for k, v in row.items()}) + "\n"
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


# --- import: reading and verifying -----------------------------------------------------------


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """Every member, checked to be a regular file at a safe path. A tar cut short raises
    here: tarfile notices when the last member's data runs past the end of the file."""
    members: dict[str, tarfile.TarInfo] = {}
    last = None
    try:
        for member in tar:
            name = member.name
            if not safe_name(name):
                raise BundleError(f"{name}: unsafe member path (absolute, .. or not normalized)")
            if not member.isfile():
                kind = "a link" if member.issym() or member.islnk() else "not a regular file"
                raise BundleError(f"{name}: {kind}; a bundle holds only files")
            if name != MANIFEST and not name.startswith((ROWS, MEDIA)):
                raise BundleError(f"{name}: not a member of a run bundle")
            if name in members:
                raise BundleError(f"{name}: twice in the bundle")
            members[name] = member
            last = name
    except (tarfile.ReadError, EOFError) as err:
        where = f"{last}: cut short" if last else "cut short"
        raise BundleError(f"{where}: the tar is truncated or damaged ({err})") from None
    return members


def _read_manifest(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> dict[str, Any]:
    member = members.get(MANIFEST)
    if member is None:
        # Written last: a tar cut at a member boundary (or whose header is damaged) ends early.
        last = f" after {next(reversed(members))}" if members else ""
        raise BundleError(f"{MANIFEST}: missing (the tar ends{last}: truncated or not a bundle)")
    if member.size > MANIFEST_MAX_BYTES:
        raise BundleError(f"{MANIFEST}: {member.size} bytes, too large for a manifest")
    handle = tar.extractfile(member)
    assert handle is not None
    try:
        manifest = json.loads(handle.read())
    except ValueError as err:
        raise BundleError(f"{MANIFEST}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{MANIFEST}: not a flux-playground run bundle")
    if manifest.get("manifest_sha256") != manifest_checksum(manifest):
        raise BundleError(f"{MANIFEST}: checksum mismatch (damaged or edited)")
    return manifest


def _check_version(manifest: dict[str, Any], head: str) -> None:
    schema, row_format = manifest.get("schema"), manifest.get("row_format")
    if schema == head and row_format == ROW_FORMAT:
        return
    # Rows of another schema may lack columns this one requires, or carry ones it does not
    # have: the rows are imported only into the schema that wrote them. Alembic migrates a
    # database, not a bundle, so the way across versions is the database the run is in.
    if schema in known_revisions():
        advice = (
            "upgrade flux-playground where the run was made, run `flux-playground init` "
            "there, and export it again"
        )
    else:
        advice = "upgrade this flux-playground (then `flux-playground init`) and import again"
    raise BundleError(
        f"{MANIFEST}: the bundle is schema {schema} (row format {row_format}), this "
        f"database {head} (row format {ROW_FORMAT}): {advice}"
    )


@lru_cache
def known_revisions() -> frozenset[str]:
    """Every revision of migrations/versions: a bundle at one of them is older than this
    code; at none, newer (or from another branch)."""
    from alembic.script import ScriptDirectory

    from app.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return frozenset(revision.revision for revision in script.walk_revisions())


def _listed_files(manifest: dict[str, Any], tables: list[Table]) -> dict[str, dict[str, Any]]:
    """The manifest's files by path, each checked for shape; every bundled table's rows
    must be listed, and no table this schema does not have."""
    listed: dict[str, dict[str, Any]] = {}
    for entry in manifest.get("files", []):
        path = entry.get("path") if isinstance(entry, dict) else None
        if (
            not isinstance(path, str)
            or not isinstance(entry.get("sha256"), str)
            or not isinstance(entry.get("size"), int)
        ):
            raise BundleError(f"{MANIFEST}: a files entry without path, sha256 and size")
        listed[path] = entry
    names = {f"{ROWS}{table.name}.jsonl" for table in tables}
    for name in sorted(names - listed.keys()):
        raise BundleError(f"{name}: missing from the manifest")
    for path in listed:
        if path.startswith(ROWS) and path not in names:
            raise BundleError(f"{path}: not a table of this schema")
    return listed


def _verify(
    tar: tarfile.TarFile,
    members: dict[str, tarfile.TarInfo],
    listed: dict[str, dict[str, Any]],
    progress: Progress,
) -> None:
    """Every member listed and every listed member there, with its size and sha256."""
    for name in members:
        if name != MANIFEST and name not in listed:
            raise BundleError(f"{name}: not listed in the manifest")
    task = progress.add_task("verifying", total=len(listed))
    for path, entry in listed.items():
        member = members.get(path)
        if member is None:
            raise BundleError(f"{path}: missing from the bundle")
        if member.size != entry["size"]:
            raise BundleError(f"{path}: {member.size} bytes, the manifest says {entry['size']}")
        if _sha256(tar, member) != entry["sha256"]:
            raise BundleError(f"{path}: sha256 does not match the manifest (damaged)")
        progress.advance(task)
    progress.remove_task(task)


def _sha256(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    handle = tar.extractfile(member)
    assert handle is not None
    digest = hashlib.sha256()
    try:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    except (tarfile.ReadError, EOFError) as err:
        raise BundleError(f"{member.name}: cut short ({err})") from None
    return digest.hexdigest()


def _rows(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[tuple[int, dict[str, Any]]]:
    handle = tar.extractfile(member)
    assert handle is not None
    for number, line in enumerate(handle, 1):
        try:
            row = json.loads(line)
        except ValueError as err:
            raise BundleError(f"{member.name}:{number}: not valid JSON ({err})") from None
        if not isinstance(row, dict):
            raise BundleError(f"{member.name}:{number}: not a JSON object")
        yield number, row


def _existing_run(conn: Connection, name: str, fingerprint: str) -> int | None:
    runs = Base.metadata.tables[ROOT]
    return conn.scalar(
        select(primary_key(runs)).where(runs.c.name == name, runs.c.fingerprint == fingerprint)
    )


# --- import: writing -------------------------------------------------------------------------


def import_bundle(
    engine: Engine, bundle: Path, media_dir: Path, *, show_progress: bool = False
) -> ImportReport:
    """Import a bundle written by export_run. Idempotent: a run with the same name and
    fingerprint already in the database is left as it is (created=False).

    Raises BundleError, having written nothing, when the bundle is damaged, truncated,
    unsafe, from another schema, or would overwrite a media file with other content."""
    head = _check_database(engine)
    tables = bundled_tables()
    try:
        tar = tarfile.open(bundle, "r:")  # noqa: SIM115 (closed by the `with` below)
    except (tarfile.ReadError, EOFError) as err:
        raise BundleError(f"{bundle}: not a tar file ({err})") from None
    with tar, _progress(show_progress) as progress:
        # 1. Read and check everything before writing anything.
        members = _members(tar)
        manifest = _read_manifest(tar, members)
        _check_version(manifest, head)
        listed = _listed_files(manifest, tables)
        _verify(tar, members, listed, progress)
        runs_member = members[f"{ROWS}{ROOT}.jsonl"]
        run_rows = [row for _, row in _rows(tar, runs_member)]
        if len(run_rows) != 1:
            raise BundleError(f"{runs_member.name}: {len(run_rows)} runs, a bundle holds one")
        old_run, name, fingerprint = (run_rows[0].get(k) for k in ("id", "name", "fingerprint"))
        if not (
            isinstance(old_run, int) and isinstance(name, str) and isinstance(fingerprint, str)
        ):
            raise BundleError(f"{runs_member.name}:1: no run id, name or fingerprint")

        # 2. Already here (an earlier import, or the same config run here): nothing to do.
        with engine.connect() as conn:
            existing = _existing_run(conn, name, fingerprint)
        if existing is not None:
            return ImportReport(run_id=existing, name=name, created=False)

        # 3. The images into a private staging folder inside the media folder (same file
        # system: moving them into place later is a rename). Its name is unguessable: the
        # media folder is served, and a blind run's images must not be reachable by URL.
        media_dir.mkdir(parents=True, exist_ok=True)
        staging = media_dir / f".bundle-import-{secrets.token_hex(16)}"
        ids: dict[str, dict[int, int]] = {}
        committed = False
        moved: list[Path] = []
        try:
            staged = _stage_media(tar, members, listed, staging, progress)
            # 4. The rows, in one transaction, and where each image will go.
            try:
                with engine.begin() as conn:
                    ids = _insert_rows(conn, tar, members, tables, staged, old_run, progress)
                    run_id = ids[ROOT][old_run]
                    moves = _check_targets(staged, media_dir, old_run, run_id)
            except IntegrityError as err:
                with engine.connect() as conn:
                    existing = _existing_run(conn, name, fingerprint)
                if existing is not None:  # another import of the same run committed first
                    return ImportReport(run_id=existing, name=name, created=False)
                reason = str(err.orig).splitlines()[0]
                raise BundleError(f"the rows do not fit this database: {reason}") from None
            committed = True
            # 5. The images into place, now that their rows are there.
            for source, target in moves:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
                moved.append(target)
        except BaseException:
            # Rows without their images would be a broken run: take them out again.
            if committed:
                _delete_rows(engine, tables, ids)
            for path in moved:
                path.unlink(missing_ok=True)
                _prune(path.parent, media_dir)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return ImportReport(
        run_id=run_id,
        name=name,
        created=True,
        rows={table: len(mapping) for table, mapping in ids.items()},
        files=len(moved),
    )


@dataclass
class _Staged:
    """A media member copied into the staging folder, under its path in the bundle."""

    path: str  # relative to the media folder, as the source run named it
    file: Path
    sha256: str


def _stage_media(
    tar: tarfile.TarFile,
    members: dict[str, tarfile.TarInfo],
    listed: dict[str, dict[str, Any]],
    staging: Path,
    progress: Progress,
) -> dict[str, _Staged]:
    paths = [name for name in listed if name.startswith(MEDIA)]
    task = progress.add_task("copying images", total=len(paths))
    staged: dict[str, _Staged] = {}
    for name in paths:
        relative = name.removeprefix(MEDIA)
        target = staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(members[name])
        assert source is not None
        digest = hashlib.sha256()
        with open(target, "wb") as handle:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                handle.write(chunk)
        # Read again from the tar: it must not have changed since it was verified.
        if digest.hexdigest() != listed[name]["sha256"]:
            raise BundleError(f"{name}: sha256 changed since it was verified")
        staged[relative] = _Staged(relative, target, digest.hexdigest())
        progress.advance(task)
    progress.remove_task(task)
    return staged


def rewrite_path(path: str, old_run: int, new_run: int) -> str:
    """The worker stores a run's images under runs/<run id>/: the imported run's go under
    its new id, so two imported runs never collide (and a blind run's stay hidden)."""
    prefix = f"runs/{old_run}/"
    return f"runs/{new_run}/{path.removeprefix(prefix)}" if path.startswith(prefix) else path


def _insert_rows(
    conn: Connection,
    tar: tarfile.TarFile,
    members: dict[str, tarfile.TarInfo],
    tables: list[Table],
    staged: dict[str, _Staged],
    old_run: int,
    progress: Progress,
) -> dict[str, dict[int, int]]:
    """Insert every bundled table's rows, parents first, with new ids; the old -> new id of
    every row, per table."""
    ids: dict[str, dict[int, int]] = {}
    task = progress.add_task("rows", total=None)
    for table in tables:
        member = members[f"{ROWS}{table.name}.jsonl"]
        key = primary_key(table)
        mapping: dict[int, int] = {}
        # A reference to a row of the same table (variants.reference_id) is inserted NULL
        # and set once the table's new ids are known: (old id, column, old reference).
        later: list[tuple[int, str, int]] = []
        rows = _prepared(tar, member, table, ids, staged, old_run, later)
        for batch in _batches(rows, BATCH):
            stmt = insert(table).returning(key, sort_by_parameter_order=True)
            new_ids = conn.execute(stmt, [values for _, values in batch]).scalars().all()
            mapping.update(zip([old for old, _ in batch], new_ids, strict=True))
            progress.advance(task, len(batch))
        ids[table.name] = mapping
        for old, column, reference in later:
            new_reference = _new_id(ids, table.name, reference, f"{member.name}: {column}")
            conn.execute(update(table).where(key == mapping[old]).values({column: new_reference}))
    progress.remove_task(task)
    return ids


def _prepared(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    table: Table,
    ids: dict[str, dict[int, int]],
    staged: dict[str, _Staged],
    old_run: int,
    later: list[tuple[int, str, int]],
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows of one table as (old id, values to insert): decoded, foreign keys and JSON
    references rewritten to the new ids, media paths to the new run's folder."""
    key = primary_key(table)
    columns = {column.name: column for column in table.columns}
    foreign = {fk.parent.name: fk.column.table.name for fk in table.foreign_keys}
    media = MEDIA_COLUMNS.get(table.name, ())
    json_refs = {col: refs for (name, col), refs in JSON_REFERENCES.items() if name == table.name}
    for number, row in _rows(tar, member):
        where = f"{member.name}:{number}"
        if row.keys() != columns.keys():
            raise BundleError(
                f"{where}: columns differ from this schema's: {sorted(row.keys() ^ columns.keys())}"
            )
        values = {name: _decode(columns[name], value) for name, value in row.items()}
        old = values.pop(key.name)
        for name, target in foreign.items():
            if values[name] is None:
                continue
            if target == table.name:
                later.append((old, name, values[name]))
                values[name] = None
            else:
                values[name] = _new_id(ids, target, values[name], f"{where}: {name}")
        for name in media:
            if values[name] is None:
                continue
            if values[name] not in staged:
                raise BundleError(f"{where}: {name} {values[name]} is not in the bundle")
            values[name] = rewrite_path(values[name], old_run, ids[ROOT][old_run])
        for name, refs in json_refs.items():
            if isinstance(values[name], dict):
                values[name] = dict(values[name])
                for inner, target in refs.items():
                    if values[name].get(inner) is not None:
                        values[name][inner] = _new_id(
                            ids, target, values[name][inner], f"{where}: {name}.{inner}"
                        )
        yield old, values


def _batches(items: Iterator[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _new_id(ids: dict[str, dict[int, int]], table: str, old: Any, where: str) -> int:
    try:
        return ids[table][old]
    except (KeyError, TypeError):
        raise BundleError(f"{where} = {old!r}: no such {table} row in the bundle") from None


def _check_targets(
    staged: dict[str, _Staged], media_dir: Path, old_run: int, new_run: int
) -> list[tuple[Path, Path]]:
    """Where each staged file goes. A file already there with the same content is kept (and
    its staged copy dropped); one with other content is never overwritten: refused."""
    moves = []
    for item in staged.values():
        target = media_dir / rewrite_path(item.path, old_run, new_run)
        if target.exists() or target.is_symlink():
            if target.is_file() and _file_sha256(target) == item.sha256:
                continue
            raise BundleError(
                f"{MEDIA}{item.path}: {target} exists with other content; not overwritten"
            )
        moves.append((item.file, target))
    return moves


def _prune(folder: Path, root: Path) -> None:
    """Remove `folder` and its parents up to `root` while they are empty."""
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _delete_rows(engine: Engine, tables: list[Table], ids: dict[str, dict[int, int]]) -> None:
    """Remove rows an import committed (children first), when its images could not follow."""
    with engine.begin() as conn:
        for table in reversed(tables):
            new_ids = list(ids.get(table.name, {}).values())
            for start in range(0, len(new_ids), BATCH):
                chunk = new_ids[start : start + BATCH]
                conn.execute(delete(table).where(primary_key(table).in_(chunk)))


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows per bundled table: what an import adds to (tests, reports)."""
    with engine.connect() as conn:
        return {
            table.name: conn.scalar(select(func.count()).select_from(table)) or 0
            for table in bundled_tables()
        }
