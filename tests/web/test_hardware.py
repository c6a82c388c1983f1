"""The hardware page `/hardware`: one config measured on two machines side by side, a run
with other steps refused with the reason, the size picker, sorting by links, and bad input —
on the runs tests/hardware_runs.py makes with the real worker. HTML checked with CSS
selectors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bs4 import BeautifulSoup, Tag
from fastapi.testclient import TestClient

from app.config import Settings
from app.web.main import create_app
from tests.hardware_runs import HardwareRuns, hardware_runs


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> HardwareRuns:
    return hardware_runs(tmp_path_factory, tiny_models)


@pytest.fixture(scope="module")
def client(machines: HardwareRuns) -> Iterator[TestClient]:
    settings = Settings(
        database_url=machines.database_url,
        media_dir=machines.media_dir,
        page_cache_s=0,
        gpu_memory_gb="16,24",
    )
    with TestClient(create_app(settings)) as client:
        yield client


def page(client: TestClient, url: str) -> BeautifulSoup:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return BeautifulSoup(response.text, "html.parser")


def rows(soup: BeautifulSoup) -> list[Tag]:
    return soup.select("table.hardware-table tbody tr.machine-row")


def value(row: Tag, cls: str) -> float | None:
    cell = row.select_one(f"td.{cls}")
    assert cell is not None, cls
    return float(str(cell["data-value"])) if cell.has_attr("data-value") else None


def test_hardware_page_default_shows_the_same_config_on_two_machines(
    client: TestClient, machines: HardwareRuns
) -> None:
    soup = page(client, "/hardware")
    # The latest run and the ended one that makes the same images; the pending run with
    # other steps was not asked for, so it is neither shown nor listed as refused.
    listed = [int(str(li["data-run-id"])) for li in soup.select(".hardware-runs li")]
    assert listed == [machines.big, machines.small]
    assert soup.select(".refused") == []
    table = rows(soup)
    assert [(str(r["data-variant"]), int(str(r["data-run-id"]))) for r in table] == [
        ("dev", machines.big),
        ("dev", machines.small),
        ("dev-turbo", machines.big),
        ("dev-turbo", machines.small),
    ]
    prices = {machines.big: 10.0, machines.small: 1.0}
    for row in table:
        run_id = int(str(row["data-run-id"]))
        machine = row.select_one("td.machine")
        assert machine is not None
        assert str(row["data-hardware"]) in machine.text and f"#{run_id}" in machine.text
        latency = value(row, "latency")
        assert latency is not None
        # $ / 1k images at this machine's own price.
        assert value(row, "cost-batch1") == pytest.approx(1000 * latency * prices[run_id] / 3600)
        assert value(row, "throughput") and value(row, "memory")
        fits = row.select_one("td.fits-on")
        assert fits is not None and fits.text == "not comparable (a CPU peak RSS)"
    # The cheapest machine per variant: the smallest $ / 1k at the best batch, marked in its
    # row and answered above the table.
    for variant in ("dev", "dev-turbo"):
        mine = [r for r in table if r["data-variant"] == variant]
        cheapest = min(mine, key=lambda r: value(r, "cost") or 0.0)
        assert [r for r in mine if "cheapest" in (r.get("class") or [])] == [cheapest]
        answer = soup.select_one(f"li.cheapest-answer[data-variant='{variant}']")
        assert answer is not None
        assert answer["data-run-id"] == cheapest["data-run-id"]
        assert str(cheapest["data-hardware"]) in answer.text
    nav = soup.select_one("nav.mainnav a[aria-current='page']")
    assert nav is not None and nav["href"] == "/hardware"


def test_hardware_page_refuses_a_run_with_other_steps_with_the_reason(
    client: TestClient, machines: HardwareRuns
) -> None:
    ids = f"{machines.big},{machines.other_steps},{machines.small}"
    soup = page(client, f"/hardware?runs={ids}")
    listed = [int(str(li["data-run-id"])) for li in soup.select(".hardware-runs li")]
    assert listed == [machines.big, machines.small]
    refused = soup.select(".refused li.refused-run")
    assert [int(str(li["data-run-id"])) for li in refused] == [machines.other_steps]
    reasons = [li.text for li in soup.select(".refused li.reason")]
    assert reasons == [f"variant dev: steps 2 here, 3 in run {machines.other_steps}"]
    assert {int(str(r["data-run-id"])) for r in rows(soup)} == {machines.big, machines.small}
    # The same, asked for as repeated parameters (the form's checkboxes would send these).
    again = page(
        client,
        f"/hardware?runs={machines.big}&runs={machines.other_steps}&runs={machines.small}",
    )
    assert [li.text for li in again.select(".refused li.reason")] == reasons


def test_hardware_page_at_a_size_that_does_not_fit_on_one_machine(
    client: TestClient, machines: HardwareRuns
) -> None:
    soup = page(client, f"/hardware?runs={machines.big},{machines.small}&size=96x64")
    assert "96x64" in soup.select_one("#cheapest-title").text  # type: ignore[union-attr]
    selected = soup.select_one("#hardware-size option[selected]")
    assert selected is not None and selected["value"] == "96x64"
    for row in rows(soup):
        if int(str(row["data-run-id"])) == machines.big:
            assert row["data-status"] == "does_not_fit"
            assert value(row, "latency") is None and value(row, "cost") is None
            assert "✗ does not fit, " in row.select_one("td.latency").text  # type: ignore[union-attr]
        else:
            assert row["data-status"] == "measured" and value(row, "latency")
    answers = soup.select("li.cheapest-answer")
    assert {a["data-variant"]: int(str(a["data-run-id"])) for a in answers} == {
        "dev": machines.small,
        "dev-turbo": machines.small,
    }


@pytest.mark.parametrize(
    ("sort", "cls", "descending"),
    [("cost", "cost", False), ("latency", "latency", False), ("throughput", "throughput", True)],
)
def test_hardware_page_sorts_by_links(
    client: TestClient, machines: HardwareRuns, sort: str, cls: str, descending: bool
) -> None:
    base = f"/hardware?runs={machines.big},{machines.small}&size=96x64"
    soup = page(client, f"{base}&sort={sort}")
    figures = [value(r, cls) for r in rows(soup)]
    present = [f for f in figures if f is not None]
    # The best first; a machine without the figure (does not fit) last.
    assert figures == present + [None] * (len(figures) - len(present))
    assert present == sorted(present, reverse=descending)
    head = soup.select_one(f"th a.sort-head[data-sort='{sort}']")
    assert head is not None and "active" in (head.get("class") or [])
    assert head.parent is not None
    assert head.parent["aria-sort"] == ("descending" if descending else "ascending")
    # Every sort link keeps the runs and the size: it works without JavaScript.
    for link in soup.select("a.sort-head"):
        assert str(link["href"]).startswith(
            f"/hardware?runs={machines.big}%2C{machines.small}&size=96x64&sort="
        )


def test_hardware_page_htmx_swaps_only_the_table(
    client: TestClient, machines: HardwareRuns
) -> None:
    response = client.get(
        "/hardware?sort=memory", headers={"HX-Request": "true", "HX-Target": "hardware-table"}
    )
    assert response.status_code == 200
    soup = BeautifulSoup(response.text, "html.parser")
    assert soup.select("nav.mainnav") == [] and soup.select("section.cheapest") == []
    table = soup.select_one("#hardware-table")
    assert table is not None and table["data-sort"] == "memory"
    assert len(rows(soup)) == 4


@pytest.mark.parametrize(
    ("url", "status", "detail"),
    [
        ("/hardware?runs=999", 404, "run 999 not found"),
        ("/hardware?runs=1,x", 422, "runs: not a run id: 'x'"),
        ("/hardware?runs=" + "9" * 30, 422, "not a run id"),
        ("/hardware?runs=" + ",".join(map(str, range(1, 23))), 422, "at most 20 runs"),
        ("/hardware?size=128x128", 422, "'128x128' is not one of these runs' sizes"),
        ("/hardware?sort=price", 422, "sort"),
    ],
)
def test_hardware_page_bad_input_is_a_4xx_with_the_reason(
    client: TestClient, url: str, status: int, detail: str
) -> None:
    response = client.get(url, headers={"Accept": "application/json"})
    assert response.status_code == status
    assert detail in response.text


def test_hardware_page_without_runs(database_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=database_url, media_dir=tmp_path / "media")
    with TestClient(create_app(settings)) as client:
        soup = page(client, "/hardware")
    assert soup.select("table.hardware-table") == []
    assert "No runs yet" in soup.select_one("p.empty").text  # type: ignore[union-attr]
