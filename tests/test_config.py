from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_config_every_setting_is_documented_in_the_readme(name: str) -> None:
    variable = f"FLUX_PLAYGROUND_{name.upper()}"
    short = f"_{name.upper()}`"  # the README groups HOST / PORT on one row
    assert variable in README or short in README, f"{variable} is not in README.md"


def test_config_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_PLAYGROUND_CPU_THREADS", "3")
    monkeypatch.setenv("FLUX_PLAYGROUND_DATABASE_URL", "sqlite:///x.db")
    settings = Settings()
    assert settings.cpu_threads == 3
    assert settings.database_url == "sqlite:///x.db"


def test_config_rejects_a_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("FLUX_PLAYGROUND_CPU_THREADS", "0")
    with pytest.raises(ValidationError, match="cpu_threads"):
        Settings()
