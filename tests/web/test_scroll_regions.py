"""Every table that can scroll sideways is a region the keyboard can reach and a screen
reader can name (axe's scrollable-region-focusable): whether a table overflows depends on a
run's digits and the screen's width, so the markup holds for all of them, not only for the
data a browser test happens to render."""

from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from app.config import Settings
from app.web.main import create_app
from tests.conftest import DemoData

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def scroll_regions(html: str) -> list[dict[str, str]]:
    soup = BeautifulSoup(html, "html.parser")
    return [
        {name: str(element.get(name, "")) for name in ("tabindex", "role", "aria-label")}
        for element in soup.select(".table-wrap")
    ]


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_scroll_regions_every_table_wrap_in_the_templates_is_focusable_and_named(
    template: str,
) -> None:
    # The templates' own markup, every branch of it (a Jinja condition hides none here).
    for region in scroll_regions((TEMPLATES / template).read_text()):
        assert region["tabindex"] == "0", (template, region)
        assert region["role"] == "region", (template, region)
        assert region["aria-label"].strip(), (template, region)


def test_scroll_regions_the_sized_runs_dashboard_renders_them_focusable(
    sized_data: DemoData,
) -> None:
    # The run with sizes and batch sizes (as the demo has): the dashboard's scaling, fits
    # and similarity tables are there, the ones a run of one size never shows.
    settings = Settings(database_url=sized_data.database_url, media_dir=sized_data.media_dir)
    with TestClient(create_app(settings)) as client:
        page = client.get(f"/dashboard?run={sized_data.run_id}")
    assert page.status_code == 200
    regions = scroll_regions(page.text)
    assert len(regions) >= 6, regions
    assert {r["tabindex"] for r in regions} == {"0"}
    assert all(r["role"] == "region" and r["aria-label"] for r in regions)
    assert len({r["aria-label"] for r in regions}) == len(regions)  # each named apart
