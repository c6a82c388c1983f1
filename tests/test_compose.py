"""compose.yaml, checked here where Docker is not available: every FLUX_PLAYGROUND_* it
passes is a setting, every command is one the CLI takes, and the image installs what the
database URL needs. (The web app with two processes against PostgreSQL, with the settings
it passes, runs in tests/test_postgres.py.)"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from app import cli
from app.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_passes_only_real_settings() -> None:
    services = _compose()["services"]
    fields = {f"FLUX_PLAYGROUND_{name.upper()}" for name in Settings.model_fields}
    for name in ("web", "worker"):
        passed = {k for k in services[name]["environment"] if k.startswith("FLUX_PLAYGROUND_")}
        assert passed and passed <= fields, (name, passed - fields)
        url = services[name]["environment"]["FLUX_PLAYGROUND_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://")
    assert "postgres" in (ROOT / "Dockerfile").read_text().split("pip install -c")[1].split("\n")[0]


def test_compose_commands_are_cli_commands() -> None:
    services = _compose()["services"]
    web = services["web"]["command"][-1]  # sh -c "init && serve ..."
    commands = [shlex.split(part) for part in web.split("&&")]
    commands.append(services["worker"]["command"])
    for command in commands:
        assert command[0] == "flux-playground"
        # The command line parses (--help stops before it runs).
        result = CliRunner().invoke(cli.app, [*command[1:], "--help"])
        assert result.exit_code == 0, (command, result.output)
    assert ["flux-playground", "serve", "--workers", "2"] in commands


def test_compose_worker_reserves_a_gpu() -> None:
    worker = _compose()["services"]["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
