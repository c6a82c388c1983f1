"""Reading a run bundle and verifying it before anything is written: every member a regular
file at a safe path, the manifest whole and of this schema and row format, every member listed
with its size and sha256 (a tar cut short or a flipped byte is caught here); the rows of a
member as JSON objects.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from typing import Any

from rich.progress import Progress
from sqlalchemy import Table

from app.bench.bundles.format import (
    CHUNK,
    FORMAT,
    MANIFEST,
    MANIFEST_MAX_BYTES,
    MEDIA,
    ROW_FORMAT,
    ROWS,
    BundleError,
    known_revisions,
    manifest_checksum,
    safe_name,
)


def read_members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
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


def read_manifest(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> dict[str, Any]:
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


def check_version(manifest: dict[str, Any], head: str) -> None:
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


def listed_files(manifest: dict[str, Any], tables: list[Table]) -> dict[str, dict[str, Any]]:
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


def verify_members(
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


def read_rows(
    tar: tarfile.TarFile, member: tarfile.TarInfo
) -> Iterator[tuple[int, dict[str, Any]]]:
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
