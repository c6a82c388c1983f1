"""The scaling charts and the hardware page in a real browser: a real uvicorn server on a copy
of the runs tests/hardware_runs.py makes (one config on two machines), driven by headless
Chromium. Any console error fails a test (tests/e2e/conftest.py `page`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from app.web.devserver import serve_in_subprocess
from tests.hardware_runs import HardwareRuns, hardware_runs


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> HardwareRuns:
    return hardware_runs(tmp_path_factory, tiny_models)


@pytest.fixture(scope="module")
def server(machines: HardwareRuns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("hardware-e2e")
    source = machines.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(source) as src, sqlite3.connect(root / "e2e.db") as dst:
        src.backup(dst)
    settings = {
        "FLUX_PLAYGROUND_DATABASE_URL": f"sqlite:///{root / 'e2e.db'}",
        "FLUX_PLAYGROUND_MEDIA_DIR": str(machines.media_dir),
    }
    with serve_in_subprocess(settings) as url:
        yield url


# Whether Chart.js drew the chart: its instance, its datasets, and pixels on the canvas.
CHART_STATE = """canvas => {
  const chart = Chart.getChart(canvas);
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  return chart ? {datasets: chart.data.datasets.map(d => d.label), painted} : null;
}"""


def test_dashboard_e2e_scaling_charts_render(
    page: Page, server: str, machines: HardwareRuns
) -> None:
    page.goto(f"{server}/dashboard?run={machines.small}")
    expect(page.locator("section#scaling")).to_be_visible()
    for name in ("latency", "throughput", "memory"):
        canvas = page.locator(f"#chart-scaling-{name}")
        expect(canvas).to_be_visible()
        state = canvas.evaluate(CHART_STATE)
        assert state is not None, name
        assert state["datasets"][:2] == ["dev", "dev-turbo"], name
        assert state["painted"] > 1000, name
    # The fallback tables are on the page with JavaScript too.
    expect(page.locator("table.fits-matrix td[data-state='does_not_fit']")).to_have_count(2)


def test_hardware_e2e_renders_and_sorts_in_place(
    page: Page, server: str, machines: HardwareRuns
) -> None:
    page.goto(f"{server}/hardware?runs={machines.big},{machines.other_steps},{machines.small}")
    rows = page.locator("table.hardware-table tbody tr.machine-row")
    expect(rows).to_have_count(4)
    expect(page.locator(".refused li.reason")).to_have_text(
        [f"variant dev: steps 2 here, 3 in run {machines.other_steps}"]
    )
    expect(page.locator("li.cheapest-answer")).to_have_count(2)
    page.evaluate("window.notReloaded = true")

    page.locator("th a.sort-head[data-sort='cost']").click()
    expect(page.locator("#hardware-table")).to_have_attribute("data-sort", "cost")
    assert "sort=cost" in page.url and f"runs={machines.big}" in page.url
    costs = [float(c.get_attribute("data-value") or "nan") for c in rows.locator("td.cost").all()]
    assert len(costs) == 4 and costs == sorted(costs)
    # htmx swapped the table; the page was not reloaded.
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator("th[aria-sort='ascending'] a.sort-head")).to_have_attribute(
        "data-sort", "cost"
    )

    page.locator("th a.sort-head[data-sort='throughput']").click()
    expect(page.locator("#hardware-table")).to_have_attribute("data-sort", "throughput")
    speeds = [
        float(c.get_attribute("data-value") or "nan") for c in rows.locator("td.throughput").all()
    ]
    assert speeds == sorted(speeds, reverse=True)


def test_hardware_e2e_size_picker(page: Page, server: str, machines: HardwareRuns) -> None:
    page.goto(f"{server}/hardware")
    page.locator("#hardware-size").select_option("96x64")
    page.locator(".hardware-form button[type=submit]").click()
    expect(page.locator("#cheapest-title")).to_contain_text("96x64")
    big = page.locator(f"tr.machine-row[data-run-id='{machines.big}']")
    expect(big).to_have_count(2)
    for status in big.all():
        expect(status).to_have_attribute("data-status", "does_not_fit")
    expect(page.locator("li.cheapest-answer[data-run-id]")).to_have_count(2)
