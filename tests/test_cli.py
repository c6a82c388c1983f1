"""The command line as a user runs it: a real subprocess of the installed console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "flux-playground"
DEMO = (ROOT / "configs" / "demo.toml").read_text()


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "FLUX_PLAYGROUND_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "FLUX_PLAYGROUND_MEDIA_DIR": str(tmp_path / "media"),
        "FLUX_PLAYGROUND_MODELS_DIR": str(tmp_path / "models"),
        "COLUMNS": "300",
    }
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )


def write_config(tmp_path: Path, text: str, prompts: str | None = None) -> Path:
    (tmp_path / "p.tsv").write_text(
        prompts if prompts is not None else "prompt\tcategory\tchallenge\na cat\tAnimals\tBasic\n"
    )
    path = tmp_path / "broken.toml"
    path.write_text(text.replace("../prompts/parti-64.tsv", "p.tsv"))
    return path


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("steps = 4\n", "steps = 4\nstepz = 3\n"), ":{stepz}: variants[0].stepz: unknown key"),
        (
            ('base = "dev"\nsteps = 8', 'base = "nope"\nsteps = 8'),
            ": variants[3].base: unknown base",
        ),
        (
            ('prompts = "p.tsv"', 'prompts = "gone.tsv"'),
            ":{prompts}: prompts: prompt file not found",
        ),
        (("steps = 4\n", "steps = 0\n"), ":{steps}: variants[0].steps: Input should be greater"),
    ],
)
def test_cli_broken_config_one_line_error(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    text = DEMO.replace("../prompts/parti-64.tsv", "p.tsv").replace(*edit, 1)
    path = write_config(tmp_path, text)
    result = cli(tmp_path, "run", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}")
    # The line of the edited key in the file as written (the demo config's comments move).
    numbered = text.splitlines()
    where = {
        key: next(i + 1 for i, line in enumerate(numbered) if line.startswith(start))
        for key, start in (("stepz", "stepz"), ("prompts", "prompts ="), ("steps", "steps = 0"))
        if any(line.startswith(start) for line in numbered)
    }
    assert expected.format(**where) in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_broken_prompt_file_one_line_error(tmp_path: Path) -> None:
    prompts = "prompt\tcategory\tchallenge\na cat\tAnimals\tBasic\na dog\tAnimals\n"
    path = write_config(tmp_path, DEMO, prompts=prompts)
    result = cli(tmp_path, "run", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {tmp_path / 'p.tsv'}:3: ")
    assert "Traceback" not in result.stderr


def test_cli_missing_config_file(tmp_path: Path) -> None:
    result = cli(tmp_path, "run", "nope.toml")
    assert result.returncode == 2
    assert "nope.toml: config file not found" in result.stderr


def test_cli_init_creates_schema_through_alembic(tmp_path: Path) -> None:
    import sqlite3

    result = cli(tmp_path, "init")
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        tables = {name for (name,) in conn.execute("select name from sqlite_master")}
        version = conn.execute("select version_num from alembic_version").fetchone()
    assert {"runs", "variants", "prompts", "jobs", "generations", "timing_summaries"} <= tables
    assert version is not None


def test_cli_bad_setting_one_line_error(tmp_path: Path) -> None:
    env = os.environ | {"FLUX_PLAYGROUND_CPU_THREADS": "zero"}
    result = subprocess.run(
        [str(CLI), "runs"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: setting FLUX_PLAYGROUND_CPU_THREADS: Input should be a valid integer, unable "
        "to parse string as an integer"
    ]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.org"])
def test_cli_serve_refuses_the_default_secret_off_loopback(tmp_path: Path, host: str) -> None:
    env = os.environ | {"FLUX_PLAYGROUND_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    env.pop("FLUX_PLAYGROUND_SECRET_KEY", None)
    done = subprocess.run(
        [str(CLI), "serve", "--host", host], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "FLUX_PLAYGROUND_SECRET_KEY is the default" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.db").exists()  # refused before touching anything


def test_cli_serve_several_workers_need_postgresql(tmp_path: Path) -> None:
    env = os.environ | {"FLUX_PLAYGROUND_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    done = subprocess.run(
        [str(CLI), "serve", "--workers", "2"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "--workers 2 needs PostgreSQL" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.db").exists()
