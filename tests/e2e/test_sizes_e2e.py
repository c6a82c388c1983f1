"""Sizes in a real browser: the size selector on the gallery (htmx swaps the results) and on
the prompt page (the form submits on change) shows the other size's images, each at its own
shape. A real uvicorn server on a copy of the sized run (tests/conftest.py `sized_data`)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from app.db import make_engine, session_scope
from app.models import Generation, Prompt
from app.web.devserver import serve_in_subprocess
from tests.conftest import DemoData

from .conftest import LiveServer


@pytest.fixture(scope="module")
def sized_server(
    sized_data: DemoData, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    # A copy, as live_server makes one: the server never writes to the shared sized run.
    root = tmp_path_factory.mktemp("e2e-sizes")
    source = sized_data.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(source) as src, sqlite3.connect(root / "sizes.db") as dst:
        src.backup(dst)
    shutil.copytree(sized_data.media_dir, root / "media")
    database_url = f"sqlite:///{root / 'sizes.db'}"
    settings = {
        "FLUX_PLAYGROUND_DATABASE_URL": database_url,
        "FLUX_PLAYGROUND_MEDIA_DIR": str(root / "media"),
    }
    with serve_in_subprocess(settings) as url:
        yield LiveServer(url, database_url, root / "media", root, sized_data.run_id)


def image_paths(server: LiveServer, width: int, height: int) -> tuple[set[str], set[str]]:
    """(thumbnail paths, PNG paths) of the run's images at this size."""
    engine = make_engine(server.database_url)
    with session_scope(engine) as session:
        rows = session.execute(
            select(Generation.thumb_path, Generation.image_path).where(
                Generation.run_id == server.run_id,
                Generation.width == width,
                Generation.height == height,
            )
        ).all()
    engine.dispose()
    return {f"/media/{t}" for t, _ in rows}, {f"/media/{i}" for _, i in rows}


def shown(images: Locator) -> set[str]:
    return {
        (src or "").split("?")[0]
        for src in images.evaluate_all("els => els.map(e => e.getAttribute('src'))")
    }


def rendered_ratio(image: Locator) -> float:
    box = image.bounding_box()
    assert box is not None and box["height"] > 0
    return box["width"] / box["height"]


def test_gallery_e2e_size_selector_shows_the_other_size(
    page: Page, sized_server: LiveServer
) -> None:
    main_thumbs, _ = image_paths(sized_server, 64, 64)
    wide_thumbs, _ = image_paths(sized_server, 96, 64)
    page.goto(f"{sized_server.url}/prompts?run={sized_server.run_id}")
    images = page.locator("article.prompt-row img")
    expect(images).to_have_count(9)
    assert shown(images) == main_thumbs
    # Found by its accessible name, which the <label> around it gives it.
    page.get_by_role("combobox", name="Size").select_option("96x64")
    # htmx swaps the results in place and pushes the URL with the size.
    expect(page.locator("#results")).to_have_attribute("data-size", "96x64")
    expect(images).to_have_count(9)
    assert shown(images) == wide_thumbs
    assert "size=96x64" in page.url
    assert rendered_ratio(images.first) == pytest.approx(96 / 64, rel=0.05)
    # A prompt's link keeps the size.
    page.locator("article.prompt-row .prompt-text").first.click()
    expect(page.locator("article.prompt-page")).to_have_attribute("data-size", "96x64")


def test_prompt_page_e2e_size_selector_shows_the_other_size(
    page: Page, sized_server: LiveServer
) -> None:
    main_thumbs, _ = image_paths(sized_server, 64, 64)
    wide_thumbs, wide_pngs = image_paths(sized_server, 96, 64)
    engine = make_engine(sized_server.database_url)
    with session_scope(engine) as session:
        prompt_id = session.scalars(
            select(Prompt.id).where(Prompt.run_id == sized_server.run_id).order_by(Prompt.position)
        ).first()
    engine.dispose()
    page.goto(f"{sized_server.url}/prompts/{prompt_id}")
    images = page.locator("figure.variant-image a.zoom img")
    expect(images).to_have_count(3)
    assert shown(images) <= main_thumbs
    page.get_by_role("combobox", name="Size").select_option("96x64")
    # The form submits on change: a new page at that size.
    expect(page.locator("article.prompt-page")).to_have_attribute("data-size", "96x64")
    expect(images).to_have_count(3)
    assert shown(images) <= wide_thumbs
    assert "size=96x64" in page.url
    slider = page.locator("#compare-slider")
    expect(slider).to_be_visible()
    assert shown(slider.locator("img")) <= wide_pngs
    assert rendered_ratio(slider.locator("img[data-side=left]")) == pytest.approx(96 / 64, rel=0.05)
    # Swapping a side of the slider keeps to this size's images.
    page.locator("select[name=right]").select_option("schnell")
    expect(slider.locator("img[data-side=right]")).to_have_attribute("data-variant", "schnell")
    assert shown(slider.locator("img[data-side=right]")) <= wide_pngs
    # And the next prompt keeps the size.
    page.locator("a[rel=next]").click()
    expect(page.locator("article.prompt-page")).to_have_attribute("data-size", "96x64")
