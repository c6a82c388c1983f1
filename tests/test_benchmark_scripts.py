"""The arena's benchmark scripts still run end to end (tiny sizes): a real uvicorn or the real
write queue, real votes, and their own no-vote-lost checks. Their figures are for
docs/benchmarks.md, not for asserting here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import DemoData

ROOT = Path(__file__).resolve().parent.parent


def run_script(*args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a benchmark script from the repository root; it must exit 0."""
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout_s
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_benchmark_vote_load_runs_and_loses_no_vote(demo_data: DemoData) -> None:
    database = demo_data.database_url.removeprefix("sqlite:///")
    done = run_script(
        "benchmarks/vote_load.py",
        "--db",
        database,
        "--media",
        str(demo_data.media_dir),
        "--clients",
        "3",
        "--votes",
        "24",
    )
    out = done.stdout
    for phase in ("htmx fragments", "JSON answer", "reveal fragment", "trivial `/healthz`"):
        assert phase in out
    # Three phases of 24 votes, every one answered 2xx and stored.
    assert "votes answered 2xx: 72; votes stored in the database: 72" in out
    assert "zero lost: every one of the 72 votes answered 2xx is in the database" in out


def test_benchmark_vote_writer_runs_and_stores_every_vote(demo_data: DemoData) -> None:
    database = demo_data.database_url.removeprefix("sqlite:///")
    done = run_script("benchmarks/vote_writer.py", "--db", database, "--votes", "60")
    assert "| 50 in flight (group commit) |" in done.stdout
    assert "all 120 votes stored" in done.stdout


def test_benchmark_gpu_check_without_cuda_says_so_and_exits_0() -> None:
    import torch

    if torch.cuda.is_available():  # on a GPU machine it would run the whole check
        return
    done = run_script("benchmarks/gpu_check.py", timeout_s=120)
    assert done.stdout.strip() == (
        "gpu_check: needs a CUDA GPU (torch.cuda.is_available() is False); nothing to do"
    )


def test_benchmark_ranking_scripts_run() -> None:
    """ranking_speed.py and rater_clusters.py at tiny sizes: every step prints a row."""
    speed = run_script("benchmarks/ranking_speed.py", "--votes", "2000", "--repeats", "1")
    for step in ("count_clusters", "resampling raters", "find_anomalies", "naive"):
        assert step in speed.stdout
    clusters = run_script("benchmarks/rater_clusters.py", "--replications", "5", "--rounds", "20")
    for shape in ("| 60 × 20 |", "| 200 × 6 |", "| 20 × 60 |", "| 1200 × 1 |"):
        assert shape in clusters.stdout
