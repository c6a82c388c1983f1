"""The dashboard `/dashboard`: charts' data, the table behind them, and the price control.

Reads the shared demo run (read-only); tests that need other data make their own database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup, Tag
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.bench.summaries import VariantSummary, variant_summaries
from app.config import Settings
from app.db import make_engine, session_scope
from app.models import Run, RunStatus, TimingSummary, Variant, VariantStatus
from app.web.dashboard import MAX_USD_PER_HOUR, price_error
from app.web.main import create_app
from app.web.templating import fmt_gb, fmt_ratio, fmt_seconds, fmt_usd
from tests.web.conftest import DemoData

# table cell class -> (VariantSummary field, formatter of the visible text)
CELLS = {
    "latency": ("latency_median_s", fmt_seconds),
    "p10": ("latency_p10_s", fmt_seconds),
    "p90": ("latency_p90_s", fmt_seconds),
    "speedup": ("speedup", fmt_ratio),
    "memory": ("peak_mem_gb", fmt_gb),
}
# cost cell class -> its figure per 1,000 images (every cost column's unit)
COSTS = {
    "cost": lambda s: s.usd_per_1k_images,
    "amortized": lambda s: (
        None if s.amortized_usd_per_image is None else 1000 * s.amortized_usd_per_image
    ),
}


@pytest.fixture
def demo_engine(demo_data: DemoData) -> Iterator[Engine]:
    engine = make_engine(demo_data.database_url)
    yield engine
    engine.dispose()


def _summaries(engine: Engine, run_id: int, usd_per_hour: float | None = None) -> list[Any]:
    with Session(engine) as session:
        run = session.get_one(Run, run_id)
        return variant_summaries(session, run, usd_per_hour=usd_per_hour)


def _page(response: Any) -> BeautifulSoup:
    assert response.status_code == 200, response.text
    return BeautifulSoup(response.text, "html.parser")


def _rows(page: BeautifulSoup) -> dict[str, Tag]:
    return {str(row["data-variant"]): row for row in page.select("tr.variant-row")}


def _value(row: Tag, cell: str) -> float | None:
    td = row.select_one(f"td.{cell}")
    assert td is not None
    raw = td.get("data-value")
    return None if raw is None else float(str(raw))


def _data(page: BeautifulSoup) -> dict[str, Any]:
    script = page.select_one('script#dashboard-data[type="application/json"]')
    assert script is not None
    data: dict[str, Any] = json.loads(script.get_text())
    return data


def _snapshot(engine: Engine) -> dict[str, list[Any]]:
    tables = ("runs", "variants", "timing_summaries", "jobs", "generations")
    with engine.connect() as conn:
        return {t: list(conn.execute(text(f"SELECT * FROM {t} ORDER BY id"))) for t in tables}


def test_dashboard_table_equals_variant_summaries(
    demo_client: TestClient, demo_data: DemoData, demo_engine: Engine
) -> None:
    page = _page(demo_client.get(f"/dashboard?run={demo_data.run_id}"))
    rows = _rows(page)
    summaries: list[VariantSummary] = _summaries(demo_engine, demo_data.run_id)
    assert [s.name for s in summaries] == ["dev", "dev-turbo", "schnell", "schnell-fp8"]
    assert list(rows) == [s.name for s in summaries]
    for summary in summaries:
        row = rows[summary.name]
        assert row["data-status"] == summary.status
        for cell, (field, fmt) in CELLS.items():
            expected = getattr(summary, field)
            assert _value(row, cell) == expected, (summary.name, cell)
            assert row.select_one(f"td.{cell}").get_text(strip=True) == fmt(expected)
        for cell, cost in COSTS.items():
            # Formatted against the whole column: the decimals that tell variants apart.
            column = [cost(s) for s in summaries]
            assert _value(row, cell) == cost(summary), (summary.name, cell)
            assert row.select_one(f"td.{cell}").get_text(strip=True) == fmt_usd(
                cost(summary), column
            )
        images = row.select_one("td.images").get_text(strip=True)
        assert images == f"{summary.jobs_done}/{summary.jobs_total}"
    assert rows["dev-turbo"].select_one(".speedup").get_text(strip=True).endswith("×")


def test_dashboard_failed_variant_has_reason_and_no_figures(
    demo_client: TestClient, demo_data: DemoData, demo_engine: Engine
) -> None:
    page = _page(demo_client.get(f"/dashboard?run={demo_data.run_id}"))
    failed = _rows(page)["schnell-fp8"]
    assert failed["data-status"] == "failed"
    assert all(_value(failed, cell) is None for cell in [*CELLS, *COSTS])
    error = page.select_one('tr.variant-error-row[data-variant="schnell-fp8"] .error')
    summary = next(s for s in _summaries(demo_engine, demo_data.run_id) if s.status == "failed")
    assert summary.error
    assert summary.error in error.get_text()
    entry = next(v for v in _data(page)["variants"] if v["name"] == "schnell-fp8")
    assert entry["latency_median_s"] is None
    assert entry["usd_per_1k_images"] is None
    assert entry["error"] == summary.error


def test_dashboard_price_override_doubles_costs_and_leaves_db_unchanged(
    demo_client: TestClient, demo_data: DemoData, demo_engine: Engine
) -> None:
    before = _snapshot(demo_engine)
    base = _rows(_page(demo_client.get(f"/dashboard?run={demo_data.run_id}")))
    response = demo_client.get(f"/dashboard?run={demo_data.run_id}&usd_per_hour=7.2")
    page = _page(response)
    doubled = _rows(page)
    compared = 0
    for name, row in base.items():
        for cell in [*CELLS, *COSTS]:
            old, new = _value(row, cell), _value(doubled[name], cell)
            if old is None:
                assert new is None
            elif cell in COSTS:
                assert new == pytest.approx(2 * old, rel=1e-12)
                compared += 1
            else:
                assert new == old
    assert compared == 3 * 2  # three measured variants, two cost figures each
    assert page.select_one(".price-in-effect").get_text(strip=True) == "$7.20/h"
    assert "$3.60/h" in page.select_one(".price-note").get_text()
    assert page.select_one("input#usd-per-hour")["value"] == "7.2"
    data = _data(page)
    assert data["run"]["usd_per_hour"] == 7.2
    assert data["run"]["run_usd_per_hour"] == 3.6
    # The what-if equals variant_summaries at that price, and nothing was written.
    for summary in _summaries(demo_engine, demo_data.run_id, usd_per_hour=7.2):
        assert _value(doubled[summary.name], "cost") == summary.usd_per_1k_images
    assert _snapshot(demo_engine) == before
    with Session(demo_engine) as session:
        assert session.get_one(Run, demo_data.run_id).usd_per_hour == 3.6


@pytest.mark.parametrize(
    ("price", "reason"),
    [
        ("", "Enter a price from $0 to $1,000 per hour."),
        ("   ", "Enter a price from $0 to $1,000 per hour."),
        ("-1", "Enter a price from $0 to $1,000 per hour."),
        ("1e9", "Enter a price from $0 to $1,000 per hour."),
        ("1000.01", "Enter a price from $0 to $1,000 per hour."),
        ("1e400", "Enter a price from $0 to $1,000 per hour."),
        ("abc", "Enter the price as a number, like 2.50, from $0 to $1,000 per hour."),
        ("nan", "Enter the price as a number, like 2.50, from $0 to $1,000 per hour."),
        ("inf", "Enter the price as a number, like 2.50, from $0 to $1,000 per hour."),
        ("2.5.1", "Enter the price as a number, like 2.50, from $0 to $1,000 per hour."),
        ("<b>9</b>", "Enter the price as a number, like 2.50, from $0 to $1,000 per hour."),
    ],
)
def test_dashboard_bad_price_is_the_page_with_the_reason(
    demo_client: TestClient, demo_data: DemoData, demo_engine: Engine, price: str, reason: str
) -> None:
    response = demo_client.get(
        "/dashboard", params={"run": demo_data.run_id, "usd_per_hour": price}
    )
    assert response.status_code == 422
    page = BeautifulSoup(response.text, "html.parser")
    assert price_error(price) == reason
    # The field keeps what was typed (escaped), marked invalid and described by the reason.
    field = page.select_one("form.price-form input#usd-per-hour")
    assert field["value"] == price
    assert field["aria-invalid"] == "true"
    error = page.select_one(f"#{field['aria-describedby']}")
    assert error is not None and not error.has_attr("hidden")
    assert error.get_text(strip=True) == reason
    assert page.select("form.price-form b") == []
    # The figures are the run's own price's, and say so.
    assert page.select_one(".price-in-effect").get_text(strip=True) == "$3.60/h"
    assert "the run's own price" in page.select_one(".price-note").get_text()
    for summary in _summaries(demo_engine, demo_data.run_id):
        assert _value(_rows(page)[summary.name], "cost") == summary.usd_per_1k_images
    assert _data(page)["run"]["usd_per_hour"] == 3.6


@pytest.mark.parametrize("price", ["0", "2.5", "$2.50", " 7.2 ", ".5", "1e3", "1000", "-0"])
def test_dashboard_price_forms_people_type_are_accepted(
    demo_client: TestClient, demo_data: DemoData, price: str
) -> None:
    response = demo_client.get(
        "/dashboard", params={"run": demo_data.run_id, "usd_per_hour": price}
    )
    page = _page(response)
    expected = float(price.replace("$", "").strip()) + 0.0
    assert 0 <= expected <= MAX_USD_PER_HOUR
    assert _data(page)["run"]["usd_per_hour"] == expected
    field = page.select_one("input#usd-per-hour")
    assert not field.has_attr("aria-invalid")
    assert page.select_one("#usd-per-hour-error").has_attr("hidden")


def test_dashboard_valid_price_field_has_no_error(
    demo_client: TestClient, demo_data: DemoData
) -> None:
    page = _page(demo_client.get(f"/dashboard?run={demo_data.run_id}"))
    field = page.select_one("input#usd-per-hour")
    assert field["type"] == "text"
    assert field["inputmode"] == "decimal"
    assert not field.has_attr("aria-invalid") and not field.has_attr("aria-describedby")
    error = page.select_one("#usd-per-hour-error")
    assert error.has_attr("hidden") and error.get_text(strip=True) == ""
    form = page.select_one("form.price-form")
    assert float(form["data-max-usd-per-hour"]) == MAX_USD_PER_HOUR


def test_dashboard_live_region_is_one_sentence_not_the_table(
    demo_client: TestClient, demo_data: DemoData
) -> None:
    page = _page(demo_client.get(f"/dashboard?run={demo_data.run_id}"))
    live = page.select("section.dashboard :is([aria-live], [role=status], [role=alert])")
    assert [el.get("id") for el in live] == ["price-status"]
    # Outside the swapped figures (a replaced live region is not reliably announced).
    assert page.select_one("#dashboard-figures #price-status") is None
    assert page.select_one("#dashboard-figures").get("aria-live") is None


def test_dashboard_costs_come_first_in_a_scroll_region(
    demo_client: TestClient, demo_data: DemoData
) -> None:
    page = _page(demo_client.get(f"/dashboard?run={demo_data.run_id}"))
    wrap = page.select_one("#dashboard-figures .table-wrap")
    assert wrap["tabindex"] == "0" and wrap["role"] == "region" and wrap["aria-label"]
    assert "sticky-first" in wrap["class"]
    heads = [th.get_text(" ", strip=True) for th in wrap.select("thead th")]
    # Every cost in one unit, said in its header, next to the variant.
    assert heads[:3] == ["Variant", "$ per 1k images", "$ per 1k images incl. compile"]
    assert not any("/ image" in h or "per image" in h for h in heads)
    row = wrap.select_one("tr.variant-row")
    assert [c.get("class", [None])[-1] for c in row.select("th, td")][:3] == [
        "name",
        "cost",
        "amortized",
    ]
    assert int(wrap.select_one("td.error")["colspan"]) == len(heads)


def test_dashboard_zero_price_makes_costs_zero(
    demo_client: TestClient, demo_data: DemoData
) -> None:
    page = _page(demo_client.get(f"/dashboard?run={demo_data.run_id}&usd_per_hour=0"))
    row = _rows(page)["dev"]
    assert _value(row, "cost") == 0.0
    assert row.select_one("td.cost").get_text(strip=True) == "$0"


def test_dashboard_json_has_one_entry_per_variant(
    demo_client: TestClient, demo_data: DemoData, demo_engine: Engine
) -> None:
    page = _page(demo_client.get(f"/dashboard?run={demo_data.run_id}"))
    data = _data(page)
    summaries = _summaries(demo_engine, demo_data.run_id)
    assert [v["name"] for v in data["variants"]] == [s.name for s in summaries]
    for entry, summary in zip(data["variants"], summaries, strict=True):
        assert entry["latency_median_s"] == summary.latency_median_s
        assert entry["latency_p10_s"] == summary.latency_p10_s
        assert entry["latency_p90_s"] == summary.latency_p90_s
        assert entry["speedup"] == summary.speedup
        assert entry["usd_per_1k_images"] == summary.usd_per_1k_images
        assert entry["peak_mem_gb"] == summary.peak_mem_gb
        assert entry["quality"] is None
    assert data["run"] == {
        "id": demo_data.run_id,
        "name": "webtest",
        "hardware": "Test CPU",
        "usd_per_hour": 3.6,
        "price_label": "$3.60/h",
        "run_usd_per_hour": 3.6,
    }


def test_dashboard_htmx_request_returns_only_the_figures(
    demo_client: TestClient, demo_data: DemoData
) -> None:
    response = demo_client.get(
        f"/dashboard?run={demo_data.run_id}&usd_per_hour=7.2",
        headers={"HX-Request": "true", "HX-Target": "dashboard-figures"},
    )
    page = _page(response)
    assert "HX-Request" in response.headers["vary"]
    assert page.select("html, header.topbar, form.price-form, canvas, #dashboard-figures") == []
    assert len(page.select("table.dashboard-table tr.variant-row")) == 4
    assert _data(page)["run"]["usd_per_hour"] == 7.2
    assert page.select_one(".price-in-effect").get_text(strip=True) == "$7.20/h"


def test_dashboard_page_has_charts_price_form_and_scripts(
    demo_client: TestClient, demo_data: DemoData
) -> None:
    page = _page(demo_client.get(f"/dashboard?run={demo_data.run_id}"))
    for chart in ("latency", "speedup", "cost", "memory"):
        assert page.select_one(f"canvas#chart-{chart}") is not None
    form = page.select_one("form.price-form")
    assert form["method"] == "get"
    assert form["action"] == form["hx-get"] == "/dashboard"
    assert form["hx-target"] == "#dashboard-figures"
    assert form["hx-push-url"] == "true"
    assert "delay:" in form["hx-trigger"]
    assert form.select_one('input[type="hidden"][name="run"]')["value"] == str(demo_data.run_id)
    price = form.select_one('input[name="usd_per_hour"]')
    assert price["value"] == "3.6"
    reset = page.select_one("a.reset-price")
    assert reset["href"] == f"/dashboard?run={demo_data.run_id}"
    assert "$3.60/h" in reset.get_text()
    assert page.select_one("#dashboard-figures table.dashboard-table") is not None
    assert page.select_one('nav.mainnav a[aria-current="page"]')["href"].startswith("/dashboard")
    sources = [str(s["src"]) for s in page.select("script[src]")]
    chart = "/static/vendor/chart-4.6.1.umd.min.js"
    assert chart in sources
    dashboard_js = next(s for s in sources if s.startswith("/static/js/dashboard.js"))
    numbers_js = next(s for s in sources if s.startswith("/static/js/numbers.js"))
    assert sources.index(chart) < sources.index(dashboard_js)
    assert sources.index(numbers_js) < sources.index(dashboard_js)
    for src in (chart, numbers_js, dashboard_js):
        assert demo_client.get(src).status_code == 200
    css = page.select_one('head link[href^="/static/css/dashboard.css"]')
    assert demo_client.get(css["href"]).status_code == 200


def test_dashboard_quality_chart_says_there_is_no_quality_data(
    demo_client: TestClient, demo_data: DemoData
) -> None:
    page = _page(demo_client.get(f"/dashboard?run={demo_data.run_id}"))
    note = page.select_one("#quality-box .no-quality")
    assert note.get_text(strip=True) == "no quality data yet: the arena and metrics fill this axis"
    assert page.select_one("canvas#chart-quality") is None


def test_dashboard_defaults_to_latest_run(demo_client: TestClient, demo_data: DemoData) -> None:
    page = _page(demo_client.get("/dashboard"))
    assert _data(page)["run"]["id"] == demo_data.run_id


def test_dashboard_unknown_run_is_404(demo_client: TestClient) -> None:
    response = demo_client.get("/dashboard?run=999")
    assert response.status_code == 404
    page = BeautifulSoup(response.text, "html.parser")
    assert "run 999 not found" in page.select_one(".reasons").get_text()


def test_dashboard_empty_database_says_how_to_start(database_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=database_url, media_dir=tmp_path / "media")
    page = _page(TestClient(create_app(settings)).get("/dashboard"))
    assert "flux-playground run" in page.select_one("p.empty").get_text()
    assert page.select("script#dashboard-data, form.price-form") == []


def test_dashboard_escapes_names_and_errors(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    hostile = "</script><script>alert(1)</script>"
    error = '<img src=x onerror="alert(2)"> broke'
    with session_scope(engine) as session:
        run = Run(
            name="<b>run</b>",
            fingerprint="f",
            config_path="/x.toml",
            config={"seeds": [0]},
            prompt_set="p.tsv",
            width=64,
            height=64,
            device="cpu",
            hardware="<i>cpu</i>",
            usd_per_hour=1.0,
            warmup=1,
            repeats=3,
            status=RunStatus.done,
            environment={},
        )
        ok = Variant(name=hostile, position=0, config={"steps": 2}, status=VariantStatus.done)
        ok.timings.append(
            TimingSummary(
                kind="steady_state",
                n=3,
                warmup=1,
                latency_median_s=0.5,
                latency_p10_s=0.4,
                latency_p90_s=0.6,
                latency_mean_s=0.5,
                latency_min_s=0.4,
                latency_max_s=0.6,
            )
        )
        bad = Variant(
            name="bad",
            position=1,
            config={"steps": 2},
            status=VariantStatus.failed,
            error=error,
        )
        run.variants.extend([ok, bad])
        session.add(run)
    settings = Settings(database_url=database_url, media_dir=tmp_path / "media")
    response = TestClient(create_app(settings)).get("/dashboard")
    page = _page(response)
    assert hostile not in response.text
    assert page.select("img, b, i, main script:not([type])") == []
    assert [v["name"] for v in _data(page)["variants"]] == [hostile, "bad"]
    assert _rows(page)[hostile].select_one("th.name").get_text(strip=True) == hostile
    assert error in page.select_one("tr.variant-error-row .error").get_text()


def test_dashboard_quality_is_the_arena_rating_once_votes_exist(
    writable_client: TestClient, writable_demo: DemoData
) -> None:
    from app.arena.leaderboard_cache import leaderboard
    from tests.arena.test_leaderboard import MIXED, add_votes

    add_votes(writable_demo.database_url, writable_demo.run_id, MIXED)
    page = _page(writable_client.get(f"/dashboard?run={writable_demo.run_id}"))
    engine = make_engine(writable_demo.database_url)
    try:
        with Session(engine) as session:
            ranking = leaderboard(session, session.get_one(Run, writable_demo.run_id)).ranking
    finally:
        engine.dispose()
    data = _data(page)
    quality = {v["name"]: v["quality"] for v in data["variants"]}
    for name in ("dev", "dev-turbo", "schnell"):
        assert quality[name] == {
            "rating": ranking[name].rating,
            "ci_low": ranking[name].ci_low,
            "ci_high": ranking[name].ci_high,
        }
    assert quality["dev"]["rating"] == 1000.0
    assert quality["schnell-fp8"] is None  # failed: no votes, no point
    assert data["quality_label"] == "arena rating (Elo scale)"
    assert data["reference"] == "dev"
    assert page.select_one("canvas#chart-quality") is not None
    assert page.select_one("#quality-box .no-quality") is None
    # The price what-if swaps the figures: their JSON keeps the ratings.
    figures = writable_client.get(
        f"/dashboard?run={writable_demo.run_id}&usd_per_hour=7.2",
        headers={"HX-Request": "true", "HX-Target": "dashboard-figures"},
    )
    assert _data(_page(figures))["variants"][0]["quality"] == quality["dev"]
