"""Importing a verified run bundle into a database: the images staged in a private folder,
the rows inserted in one transaction with new ids (every foreign key and JSON reference among
them rewritten, the images under the new run's folder), the images moved into place only after
that transaction committed, and the rows taken out again when they cannot follow.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rich.progress import Progress
from sqlalchemy import Connection, Engine, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.bench.bundles.format import (
    BATCH,
    CHUNK,
    MEDIA,
    ROWS,
    BundleError,
    check_database,
    decode,
    progress_bar,
)
from app.bench.bundles.tables import (
    JSON_REFERENCES,
    MEDIA_COLUMNS,
    ROOT,
    bundled_tables,
    primary_key,
)
from app.bench.bundles.verify import (
    check_version,
    listed_files,
    read_manifest,
    read_members,
    read_rows,
    verify_members,
)
from app.models import Base

T = TypeVar("T")


@dataclass(frozen=True)
class ImportReport:
    run_id: int  # the run's id in this database
    name: str
    created: bool  # False: the run was already here, nothing changed
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0  # media files written (identical files already in place are not)


def _existing_run(conn: Connection, name: str, fingerprint: str) -> int | None:
    runs = Base.metadata.tables[ROOT]
    return conn.scalar(
        select(primary_key(runs)).where(runs.c.name == name, runs.c.fingerprint == fingerprint)
    )


def import_bundle(
    engine: Engine, bundle: Path, media_dir: Path, *, show_progress: bool = False
) -> ImportReport:
    """Import a bundle written by export_run. Idempotent: a run with the same name and
    fingerprint already in the database is left as it is (created=False).

    Raises BundleError, having written nothing, when the bundle is damaged, truncated,
    unsafe, from another schema, or would overwrite a media file with other content."""
    head = check_database(engine)
    tables = bundled_tables()
    try:
        tar = tarfile.open(bundle, "r:")  # noqa: SIM115 (closed by the `with` below)
    except (tarfile.ReadError, EOFError) as err:
        raise BundleError(f"{bundle}: not a tar file ({err})") from None
    with tar, progress_bar(show_progress) as progress:
        # 1. Read and check everything before writing anything.
        members = read_members(tar)
        manifest = read_manifest(tar, members)
        check_version(manifest, head)
        listed = listed_files(manifest, tables)
        verify_members(tar, members, listed, progress)
        runs_member = members[f"{ROWS}{ROOT}.jsonl"]
        run_rows = [row for _, row in read_rows(tar, runs_member)]
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
    for number, row in read_rows(tar, member):
        where = f"{member.name}:{number}"
        if row.keys() != columns.keys():
            raise BundleError(
                f"{where}: columns differ from this schema's: {sorted(row.keys() ^ columns.keys())}"
            )
        values = {name: decode(columns[name], value) for name, value in row.items()}
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
