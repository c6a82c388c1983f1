"""benchmarks/scale.py still runs end to end at a tiny scale: the build on a real migrated
database (SQLite, and PostgreSQL on a throwaway server), then every route, export, the arena
load, the vote cycle and the CLI against a real uvicorn. Its figures are for the issue, not
for asserting here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from benchmarks.scale_routes import ELSEWHERE, EXPORTS, ROUTES, VOTE_CYCLE
from benchmarks.scale_shape import SCALES

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "benchmarks/scale.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_benchmark_scale_tiny_builds_and_measures_every_route(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    media = tmp_path / "media"
    url = (
        f"sqlite:///{tmp_path / 'scale.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    built = _run("build", "--database-url", url, "--media", str(media), "--scale", "tiny")
    assert built.returncode == 0, built.stderr[-2000:]

    tiny = SCALES["tiny"]
    engine = create_engine(url)
    with engine.connect() as conn:
        counts = {
            table: conn.scalar(text(f"SELECT COUNT(*) FROM {table}"))
            for table in ("runs", "votes", "matchups", "raters")
        }
        # Every generation points at a file the build wrote.
        paths = set(conn.scalars(text("SELECT image_path FROM generations")))
    engine.dispose()
    assert counts == {
        "runs": tiny.runs,
        "votes": tiny.votes,
        "matchups": tiny.votes,
        "raters": tiny.raters,
    }
    assert all((media / path).is_file() for path in paths)

    done = _run(
        "measure",
        "--database-url",
        url,
        "--media",
        str(media),
        "--requests",
        "2",
        "--arena-seconds",
        "0.5",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for route in ROUTES + EXPORTS:
        assert f"| {route.label} |" in out
    for step in VOTE_CYCLE:
        assert f"| {step} |" in out
    assert f"| `flux-playground leaderboard {tiny.runs}` |" in out
    # A GET route added to the app without a row here fails this (or goes in ELSEWHERE).
    assert "GET routes of the app not in this benchmark: none" in out, sorted(ELSEWHERE)
