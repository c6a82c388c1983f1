"""Run bundles (app/bench/bundles/): export a run the real worker made, import it into
real databases and media folders, and refuse every kind of damaged bundle unchanged."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Integer, select, update

from app.bench.bundles import BundleError, export_run, import_bundle
from app.bench.bundles.format import MANIFEST, manifest_checksum, schema_head
from app.bench.bundles.importing import rewrite_path
from app.bench.bundles.tables import (
    EXCLUDED,
    JSON_REFERENCES,
    MEDIA_COLUMNS,
    NOT_MEDIA,
    ROOT,
    bundled_tables,
    owner_key,
    primary_key,
    row_counts,
)
from app.config import Settings
from app.db import make_engine, session_scope
from app.migrate import upgrade
from app.models import Base, Generation, GenerationMetric, MetricStatus, Run, Variant
from app.web.main import create_app
from tests.conftest import DemoData, sqlite_copy

CLI = Path(sys.executable).parent / "flux-playground"


# --- helpers -------------------------------------------------------------------------------


def with_metrics(demo: DemoData) -> DemoData:
    """The run with quality figures too: generation_metrics rows whose params name the
    reference image's generation id (a reference inside JSON), one PSNR of +inf."""
    engine = make_engine(demo.database_url)
    with session_scope(engine) as session:
        generations = session.scalars(
            select(Generation).where(Generation.run_id == demo.run_id).order_by(Generation.id)
        ).all()
        variants = {v.id: v for v in session.scalars(select(Variant))}
        by_key = {(variants[g.variant_id].name, g.prompt_id, g.seed): g for g in generations}
        for g in generations:
            reference = variants[g.variant_id].reference
            if reference is None:
                continue
            ref = by_key[(reference.name, g.prompt_id, g.seed)]
            params = {"reference_generation_id": ref.id, "reference_variant": reference.name}
            session.add_all(
                [
                    GenerationMetric(
                        generation_id=g.id,
                        metric="ssim",
                        model="torchmetrics",
                        params=params,
                        value=0.5,
                        status=MetricStatus.ok,
                    ),
                    GenerationMetric(
                        generation_id=g.id,
                        metric="psnr_db",
                        model="torchmetrics",
                        params=params,
                        value=float("inf"),
                        status=MetricStatus.ok,
                    ),
                ]
            )
    engine.dispose()
    return demo


def migrated(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'target.db'}"
    upgrade(url)
    return url


def counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        return row_counts(engine)
    finally:
        engine.dispose()


def files(folder: Path) -> dict[str, str]:
    """Every file under the folder (staging folders included) with its sha256."""
    if not folder.exists():
        return {}
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def do_import(url: str, bundle: Path, media: Path) -> Any:
    engine = make_engine(url)
    try:
        return import_bundle(engine, bundle, media)
    finally:
        engine.dispose()


def api_json(url: str, media: Path, run_id: int) -> dict[str, Any]:
    """The run as the API shows it: run, variants, prompts, generations."""
    settings = Settings(database_url=url, media_dir=media, page_cache_s=0)
    out: dict[str, Any] = {}
    with TestClient(create_app(settings)) as client:
        for what in ("", "/variants", "/prompts", "/generations"):
            response = client.get(f"/api/v1/runs/{run_id}{what}", params={"limit": 500})
            assert response.status_code == 200, response.text
            out[what or "/run"] = response.json()
    return out


def normalized(data: dict[str, Any], run_id: int) -> dict[str, Any]:
    """The API's JSON with the ids the target database assigns itself taken out, and the
    run's id in media URLs replaced: what must be equal between source and target."""
    data = json.loads(json.dumps(data).replace(f"/media/runs/{run_id}/", "/media/runs/RUN/"))
    data["/run"].pop("id")
    data["/variants"].pop("run_id")
    for variant in data["/variants"]["variants"]:
        variant.pop("id")
    for prompt in data["/prompts"]["items"]:
        prompt.pop("id")
    for item in data["/generations"]["items"]:
        for key in ("generation_id", "job_id", "prompt_id"):
            item.pop(key)
    return data


def check_same_run(
    source: DemoData, source_api: dict[str, Any], url: str, media: Path, run_id: int
) -> dict[str, Any]:
    """The imported run reads as the source run through the API, its images have the
    source's bytes, and its foreign keys point inside it."""
    target_api = api_json(url, media, run_id)
    assert normalized(target_api, run_id) == normalized(source_api, source.run_id)
    prompt_ids = {p["id"] for p in target_api["/prompts"]["items"]}
    items = target_api["/generations"]["items"]
    assert items and {g["prompt_id"] for g in items} <= prompt_ids
    for g in items:
        path = g["image_url"].removeprefix("/media/").split("?")[0]
        assert path.startswith(f"runs/{run_id}/")
        assert hashlib.sha256((media / path).read_bytes()).hexdigest() == g["sha256"]
        source_path = path.replace(f"runs/{run_id}/", f"runs/{source.run_id}/", 1)
        assert (media / path).read_bytes() == (source.media_dir / source_path).read_bytes()
    return target_api


def table_rows(url: str, run_id: int) -> dict[str, list[str]]:
    """Every bundled table's rows of the run without ids, foreign keys, media paths and ids
    inside JSON, as sorted JSON (times in UTC): equal between source and target, on SQLite
    or PostgreSQL, whatever the ids."""
    from app.bench.bundles.format import encode
    from app.bench.bundles.tables import of_run

    tables = bundled_tables()
    bundled = {t.name for t in tables}
    engine = make_engine(url)
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for table in tables:
            skip = {c.name for c in table.columns if c.primary_key or c.foreign_keys}
            skip |= set(MEDIA_COLUMNS.get(table.name, ()))
            rows = conn.execute(select(table).where(of_run(table, run_id, bundled)))
            refs = {
                column: keys
                for (name, column), keys in JSON_REFERENCES.items()
                if name == table.name
            }
            out[table.name] = sorted(
                json.dumps(
                    {
                        k: {i: j for i, j in v.items() if i not in refs[k]}
                        if k in refs
                        else encode(v)
                        for k, v in row.items()
                        if k not in skip
                    },
                    sort_keys=True,
                )
                for row in rows.mappings()
            )
    engine.dispose()
    return out


def metric_references(url: str, run_id: int) -> set[tuple[Any, ...]]:
    """(variant, prompt text, seed) of each metric's image and of its reference image, read
    through the JSON reference: the same in source and target when it was remapped."""
    engine = make_engine(url)
    with session_scope(engine) as session:
        generations = {
            g.id: g for g in session.scalars(select(Generation).where(Generation.run_id == run_id))
        }
        out = set()
        for m in session.scalars(
            select(GenerationMetric).where(GenerationMetric.generation_id.in_(generations))
        ):
            g, ref = generations[m.generation_id], generations[m.params["reference_generation_id"]]
            out.add(
                (g.variant.name, g.prompt.text, g.seed, ref.variant.name, ref.prompt.text, ref.seed)
            )
    engine.dispose()
    return out


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def source(demo_data: DemoData, tmp_path: Path) -> DemoData:
    """A private copy of the demo run (images shared, read-only), with quality figures."""
    folder = tmp_path / "source"
    folder.mkdir()
    return with_metrics(sqlite_copy(demo_data, folder))


@pytest.fixture
def bundle(source: DemoData, tmp_path: Path) -> Path:
    engine = make_engine(source.database_url)
    out = tmp_path / "run.tar"
    export_run(engine, source.run_id, source.media_dir, out)
    engine.dispose()
    return out


# --- which tables --------------------------------------------------------------------------


def test_bundles_every_table_is_bundled_or_excluded() -> None:
    tables = bundled_tables()
    names = {t.name for t in tables}
    # A new table must be decided on: part of a run's results, or in EXCLUDED.
    assert names | EXCLUDED == set(Base.metadata.tables)
    assert not names & EXCLUDED
    assert {
        "runs",
        "variants",
        "prompts",
        "jobs",
        "generations",
        "generation_metrics",
        "timing_summaries",
    } <= names
    order = [t.name for t in tables]
    for table in tables:
        assert isinstance(primary_key(table).type, Integer)
        for fk in table.foreign_keys:  # every reference stays inside the bundle
            assert fk.column.table.name in names, (table.name, fk.parent.name)
            assert fk.column.primary_key
            assert order.index(fk.column.table.name) <= order.index(table.name)
        if table.name != ROOT:
            owner_key(table, names)
        for column in table.columns:  # a new path column must be decided on too
            if column.name.endswith("_path"):
                assert (
                    column.name in MEDIA_COLUMNS.get(table.name, ())
                    or (table.name, column.name) in NOT_MEDIA
                ), (table.name, column.name)
    for table_name, column_name in JSON_REFERENCES:
        assert column_name in Base.metadata.tables[table_name].columns


# --- export, import ------------------------------------------------------------------------


def test_bundles_export_writes_manifest_of_every_member(source: DemoData, bundle: Path) -> None:
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile(MANIFEST).read())  # type: ignore[union-attr]
        for entry in manifest["files"]:
            data = tar.extractfile(entry["path"]).read()  # type: ignore[union-attr]
            assert len(data) == entry["size"]
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert names[-1] == MANIFEST
    assert sorted(names[:-1]) == sorted(e["path"] for e in manifest["files"])
    assert manifest["schema"] == schema_head()
    assert manifest["row_format"] == 1
    assert manifest["manifest_sha256"] == manifest_checksum(manifest)
    assert manifest["run"]["name"] == "webtest"
    assert manifest["tables"] == counts(source.database_url)
    images = [n for n in names if n.endswith(".png")]
    assert len(images) == 3 * 6 * 2  # schnell-fp8 failed on the CPU: no images
    assert all(n.startswith(f"media/runs/{source.run_id}/") for n in images)


def test_bundles_import_into_empty_database_reproduces_run(
    source: DemoData, bundle: Path, tmp_path: Path
) -> None:
    url, media = migrated(tmp_path / "target"), tmp_path / "target" / "media"
    report = do_import(url, bundle, media)
    assert report.created
    assert report.rows == counts(source.database_url)
    source_api = api_json(source.database_url, source.media_dir, source.run_id)
    target_api = check_same_run(source, source_api, url, media, report.run_id)
    assert target_api["/run"]["environment"]  # the worker's environment came along
    assert table_rows(url, report.run_id) == table_rows(source.database_url, source.run_id)
    assert metric_references(url, report.run_id) == metric_references(
        source.database_url, source.run_id
    )
    engine = make_engine(url)
    with session_scope(engine) as session:
        variants = {v.name: v for v in session.scalars(select(Variant))}
        assert variants["dev-turbo"].reference is variants["dev"]
        assert all(v.environment for v in variants.values() if v.status.value == "done")
    engine.dispose()
    assert not list(media.glob(".bundle-import-*"))  # the staging folder is gone


def test_bundles_second_import_changes_nothing(bundle: Path, tmp_path: Path) -> None:
    url, media = migrated(tmp_path / "target"), tmp_path / "target" / "media"
    first = do_import(url, bundle, media)
    before, before_files = counts(url), files(media)
    again = do_import(url, bundle, media)
    assert not again.created
    assert again.run_id == first.run_id
    assert counts(url) == before
    assert files(media) == before_files


def test_bundles_cli_export_import(source: DemoData, tmp_path: Path) -> None:
    def cli(database: str, media: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = os.environ | {
            "FLUX_PLAYGROUND_DATABASE_URL": database,
            "FLUX_PLAYGROUND_MEDIA_DIR": str(media),
            "COLUMNS": "300",
        }
        return subprocess.run(
            [str(CLI), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
        )

    out = cli(source.database_url, source.media_dir, "export", str(source.run_id), "-o", "r.tar")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"exported run {source.run_id} webtest: ")
    target = (f"sqlite:///{tmp_path / 'target.db'}", tmp_path / "media")
    first = cli(*target, "import", "r.tar")
    assert first.returncode == 0, first.stderr
    assert re.match(r"imported run webtest as run 1: \d+ rows, 72 files$", first.stdout.strip())
    again = cli(*target, "import", "r.tar")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == ("already imported: run webtest is run 1 here; nothing changed")

    name = flip_byte(tmp_path / "r.tar", tmp_path / "bad.tar", lambda m: m.name.endswith(".png"))
    bad = cli(*target, "import", "bad.tar")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        f"error: bad.tar: {name}: sha256 does not match the manifest (damaged)"
    )
    assert "Traceback" not in bad.stderr + bad.stdout
    missing = cli(source.database_url, source.media_dir, "export", "999")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: run 999 not found"


# --- damaged bundles -----------------------------------------------------------------------


Members = list[tuple[tarfile.TarInfo, bytes]]


def read_members(path: Path) -> Members:
    with tarfile.open(path) as tar:
        return [
            (m, tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
            for m in tar.getmembers()
        ]


def write_members(path: Path, members: Members) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


def edit_manifest(members: Members, edit: Callable[[dict[str, Any]], None], *, fix: bool) -> None:
    for i, (info, data) in enumerate(members):
        if info.name == MANIFEST:
            manifest = json.loads(data)
            edit(manifest)
            if fix:  # a consistent manifest: only the edit itself is wrong
                manifest["manifest_sha256"] = manifest_checksum(manifest)
            members[i] = (info, json.dumps(manifest).encode())


def first_image(members: Members) -> str:
    return next(info.name for info, _ in members if info.name.endswith(".png"))


def flip_byte(bundle: Path, out: Path, member: Callable[[tarfile.TarInfo], bool]) -> str:
    data = bytearray(bundle.read_bytes())
    with tarfile.open(bundle) as tar:
        found = next(m for m in tar.getmembers() if member(m))
    data[found.offset_data + found.size // 2] ^= 0x01
    out.write_bytes(bytes(data))
    return found.name


def damage_image(bundle: Path, out: Path) -> str:
    name = flip_byte(bundle, out, lambda m: m.name.endswith(".png"))
    return f"{name}: sha256 does not match the manifest"


def damage_rows(bundle: Path, out: Path) -> str:
    name = flip_byte(bundle, out, lambda m: m.name == "rows/generations.jsonl")
    return f"{name}: sha256 does not match the manifest"


def damage_manifest_byte(bundle: Path, out: Path) -> str:
    flip_byte(bundle, out, lambda m: m.name == MANIFEST)
    return f"{MANIFEST}: "


def drop_image(bundle: Path, out: Path) -> str:
    members = read_members(bundle)
    name = first_image(members)
    write_members(out, [(i, d) for i, d in members if i.name != name])
    return f"{name}: missing from the bundle"


def add_unlisted(bundle: Path, out: Path) -> str:
    members = read_members(bundle)
    write_members(out, [*members, (tarfile.TarInfo("media/extra.png"), b"x")])
    return "media/extra.png: not listed in the manifest"


def truncate_in_member(bundle: Path, out: Path) -> str:
    with tarfile.open(bundle) as tar:
        member = [m for m in tar.getmembers() if m.name.endswith(".png")][-1]
    out.write_bytes(bundle.read_bytes()[: member.offset_data + member.size // 2])
    return f"{member.name}: cut short: the tar is truncated or damaged"


def truncate_between_members(bundle: Path, out: Path) -> str:
    with tarfile.open(bundle) as tar:
        manifest = tar.getmember(MANIFEST)
        before = tar.getmembers()[-2]
    out.write_bytes(bundle.read_bytes()[: manifest.offset])
    return f"{MANIFEST}: missing (the tar ends after {before.name}"


def tamper_manifest_hash(bundle: Path, out: Path) -> str:
    members = read_members(bundle)
    edit_manifest(members, lambda m: m["files"][0].update(sha256="0" * 64), fix=False)
    write_members(out, members)
    return f"{MANIFEST}: checksum mismatch"


def tamper_manifest_consistently(bundle: Path, out: Path) -> str:
    members = read_members(bundle)
    name = first_image(members)

    def edit(manifest: dict[str, Any]) -> None:
        for entry in manifest["files"]:
            if entry["path"] == name:
                entry["sha256"] = "0" * 64

    edit_manifest(members, edit, fix=True)
    write_members(out, members)
    return f"{name}: sha256 does not match the manifest"


def damage_header(bundle: Path, out: Path) -> str:
    """A flipped byte in a member's tar header: tarfile takes the tar to end there."""
    data = bytearray(bundle.read_bytes())
    with tarfile.open(bundle) as tar:
        members = tar.getmembers()
    middle = len(members) // 2
    data[members[middle].offset + 3] ^= 0x01  # in the name field; the checksum fails
    out.write_bytes(bytes(data))
    return f"{MANIFEST}: missing (the tar ends after {members[middle - 1].name}"


def older_schema(bundle: Path, out: Path) -> str:
    members = read_members(bundle)
    edit_manifest(members, lambda m: m.update(schema="0001"), fix=True)
    write_members(out, members)
    return (
        f"{MANIFEST}: the bundle is schema 0001 (row format 1), this database {schema_head()} "
        "(row format 1): upgrade flux-playground where the run was made"
    )


def newer_schema(bundle: Path, out: Path) -> str:
    members = read_members(bundle)
    edit_manifest(members, lambda m: m.update(schema="9999"), fix=True)
    write_members(out, members)
    return f"{MANIFEST}: the bundle is schema 9999 (row format 1), this database {schema_head()}"


def unsafe(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> Any:
    def make(bundle: Path, out: Path) -> str:
        members = read_members(bundle)
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, linkname
        write_members(out, [(info, b"x"), *members])
        return f"{name}: "

    return make


DAMAGES = {
    "flipped byte in an image": damage_image,
    "flipped byte in the rows": damage_rows,
    "flipped byte in the manifest": damage_manifest_byte,
    "missing member": drop_image,
    "member not in the manifest": add_unlisted,
    "tar truncated in a member": truncate_in_member,
    "tar truncated between members": truncate_between_members,
    "flipped byte in a tar header": damage_header,
    "manifest hash edited": tamper_manifest_hash,
    "manifest edited, checksum fixed": tamper_manifest_consistently,
    "older schema": older_schema,
    "newer schema": newer_schema,
    "absolute path": unsafe("/tmp/evil.png"),
    "parent path": unsafe("media/../../evil.png"),
    "symlink": unsafe("media/runs/9/link.png", tarfile.SYMTYPE, "/etc/passwd"),
    "hard link": unsafe("media/runs/9/hard.png", tarfile.LNKTYPE, "manifest.json"),
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_bundles_damaged_bundle_refused_and_nothing_written(
    bundle: Path, tmp_path: Path, damage: Callable[[Path, Path], str]
) -> None:
    url, media = migrated(tmp_path / "target"), tmp_path / "target" / "media"
    (media / "runs" / "1").mkdir(parents=True)
    (media / "runs" / "1" / "kept.png").write_bytes(b"already here")
    before, before_files = counts(url), files(media)
    expected = damage(bundle, tmp_path / "damaged.tar")
    with pytest.raises(BundleError) as refused:
        do_import(url, tmp_path / "damaged.tar", media)
    assert expected in str(refused.value)
    assert "\n" not in str(refused.value)
    assert counts(url) == before
    assert files(media) == before_files
    assert sorted(p.name for p in media.iterdir()) == ["runs"]


def test_bundles_never_overwrite_a_media_file(
    source: DemoData, bundle: Path, tmp_path: Path
) -> None:
    """A file at an imported image's path with other content stays, and nothing is
    imported (SQLite reuses the id of a deleted last run: its folder may still be there)."""
    url, media = migrated(tmp_path / "target"), tmp_path / "target" / "media"
    with tarfile.open(bundle) as tar:
        name = next(n for n in tar.getnames() if n.endswith(".png"))
    # The empty target's first run is run 1.
    stale = media / rewrite_path(name.removeprefix("media/"), source.run_id, 1)
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an older run's image")
    before_files = files(media)
    with pytest.raises(BundleError, match="exists with other content; not overwritten"):
        do_import(url, bundle, media)
    assert counts(url) == dict.fromkeys(counts(url), 0)
    assert files(media) == before_files


def test_bundles_failure_after_commit_takes_the_run_out_again(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows are committed, then an image cannot be moved into place (a full or
    read-only disk): the run's rows are deleted again and the images moved so far removed."""
    url, media = migrated(tmp_path / "target"), tmp_path / "target" / "media"
    moves = 0
    real_replace = os.replace

    def failing_replace(source: Any, target: Any) -> None:
        nonlocal moves
        moves += 1
        if moves == 5:
            raise OSError(28, "No space left on device", str(target))
        real_replace(source, target)

    monkeypatch.setattr("app.bench.bundles.importing.os.replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        do_import(url, bundle, media)
    assert moves == 5
    assert counts(url) == dict.fromkeys(counts(url), 0)
    assert list(media.iterdir()) == []  # no file, no folder, no staging folder


# --- beside other runs ---------------------------------------------------------------------


def test_bundles_import_beside_other_runs_remaps_ids(
    source: DemoData, bundle: Path, demo_data: DemoData, tmp_path: Path
) -> None:
    """The target already holds a run (the demo run with another fingerprint, images in
    runs/1/): the import gets new ids everywhere and its images their own folder."""
    folder = tmp_path / "target"
    folder.mkdir()
    target = sqlite_copy(demo_data, folder)
    media = folder / "media"
    shutil.copytree(demo_data.media_dir, media)
    engine = make_engine(target.database_url)
    with session_scope(engine) as session:
        session.execute(update(Run).values(fingerprint="another-config"))
    engine.dispose()
    existing_api = api_json(target.database_url, media, target.run_id)
    existing_files = files(media)
    before = counts(target.database_url)

    report = do_import(target.database_url, bundle, media)
    assert report.created and report.run_id != target.run_id
    source_api = api_json(source.database_url, source.media_dir, source.run_id)
    check_same_run(source, source_api, target.database_url, media, report.run_id)
    assert table_rows(target.database_url, report.run_id) == table_rows(
        source.database_url, source.run_id
    )
    assert metric_references(target.database_url, report.run_id) == metric_references(
        source.database_url, source.run_id
    )
    # The run that was there is untouched, rows and files.
    assert api_json(target.database_url, media, target.run_id) == existing_api
    assert {k: v for k, v in files(media).items() if k in existing_files} == existing_files
    after = counts(target.database_url)
    assert {t: after[t] - before[t] for t in after} == counts(source.database_url)


# --- PostgreSQL ----------------------------------------------------------------------------


def test_bundles_import_into_postgres(
    source: DemoData, bundle: Path, postgres_url: str, tmp_path: Path
) -> None:
    media = tmp_path / "pg-media"
    report = do_import(postgres_url, bundle, media)
    assert report.created
    source_api = api_json(source.database_url, source.media_dir, source.run_id)
    check_same_run(source, source_api, postgres_url, media, report.run_id)
    assert table_rows(postgres_url, report.run_id) == table_rows(source.database_url, source.run_id)
    assert metric_references(postgres_url, report.run_id) == metric_references(
        source.database_url, source.run_id
    )
    assert not do_import(postgres_url, bundle, media).created
