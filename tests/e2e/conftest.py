"""Browser tests: a real uvicorn server on a copy of the web test run, driven by a real
headless Chromium (Debian's, through Playwright; `scripts/ensure-test-servers.sh` installs it)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, expect, sync_playwright

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


@contextmanager
def server_on_a_copy(
    database_url: str, media_dir: Path, models_dir: Path, root: Path, **settings: str
) -> Iterator[tuple[str, str]]:
    """A live server on a private copy of a SQLite database and its media folder, so a test
    that writes (runs, votes, panels) leaves the data other tests read alone. `settings` are
    more FLUX_PLAYGROUND_* variables. Yields the server's URL and the copy's database URL."""
    source = database_url.removeprefix("sqlite:///")
    with sqlite3.connect(source) as src, sqlite3.connect(root / "copy.db") as dst:
        src.backup(dst)
    shutil.copytree(media_dir, root / "media")
    copy_url = f"sqlite:///{root / 'copy.db'}"
    environment = {
        "FLUX_PLAYGROUND_DATABASE_URL": copy_url,
        "FLUX_PLAYGROUND_MEDIA_DIR": str(root / "media"),
        "FLUX_PLAYGROUND_MODELS_DIR": str(models_dir),
        **settings,
    }
    with serve_in_subprocess(environment) as url:
        yield url, copy_url


@pytest.fixture(scope="session")
def live_server(
    demo_data: DemoData,
    tiny_models: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    # A copy, so the browser tests may add runs without touching the shared web test data.
    root = tmp_path_factory.mktemp("e2e")
    with server_on_a_copy(demo_data.database_url, demo_data.media_dir, tiny_models, root) as (
        url,
        database_url,
    ):
        yield LiveServer(url, database_url, root / "media", tiny_models, demo_data.run_id)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def checked_page(
    browser: Browser,
    width: int = 1280,
    height: int = 900,
    *,
    timeout_ms: int = 10_000,
    expected_error: Callable[[str], bool] = lambda text: False,
) -> Iterator[Page]:
    """A fresh page; any console error (but those `expected_error` accepts) or uncaught
    exception in it fails the test."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not expected_error(message.text):
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"browser console errors: {errors}"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page; any console error or uncaught exception in it fails the test."""
    with checked_page(browser) as page:
        yield page


def assert_shown_at_most_twice_natural(images: Locator, count: int) -> None:
    """`count` images, each loaded and drawn no wider than twice its natural width (any
    wider and it looks blurry)."""
    expect(images).to_have_count(count)
    for img in images.all():
        img.scroll_into_view_if_needed()
        expect(img).to_have_js_property("complete", True)
    sizes = images.evaluate_all(
        "imgs => imgs.map(i => [i.getBoundingClientRect().width, i.naturalWidth])"
    )
    for shown, natural in sizes:
        assert natural > 0
        assert 0 < shown <= 2 * natural + 0.5, sizes
