"""Browser tests: a real uvicorn server on a copy of the web test run, driven by a real
headless Chromium (Debian's, through Playwright; `scripts/ensure-test-servers.sh` installs it)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from app.web.devserver import serve_in_subprocess
from tests.conftest import DemoData

CHROMIUM = os.environ.get("FLUX_PLAYGROUND_CHROMIUM", "/usr/bin/chromium")

# As root in a container: no sandbox; and no background traffic (this machine has no network).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class LiveServer:
    url: str
    database_url: str
    media_dir: Path
    models_dir: Path
    run_id: int


@pytest.fixture(scope="session")
def live_server(
    demo_data: DemoData,
    tiny_models: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    # A copy, so the browser tests may add runs without touching the shared web test data.
    root = tmp_path_factory.mktemp("e2e")
    source = demo_data.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(source) as src, sqlite3.connect(root / "e2e.db") as dst:
        src.backup(dst)
    shutil.copytree(demo_data.media_dir, root / "media")
    database_url = f"sqlite:///{root / 'e2e.db'}"
    settings = {
        "FLUX_PLAYGROUND_DATABASE_URL": database_url,
        "FLUX_PLAYGROUND_MEDIA_DIR": str(root / "media"),
        "FLUX_PLAYGROUND_MODELS_DIR": str(tiny_models),
    }
    with serve_in_subprocess(settings) as url:
        yield LiveServer(url, database_url, root / "media", tiny_models, demo_data.run_id)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page; any console error or uncaught exception in it fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"browser console errors: {errors}"
