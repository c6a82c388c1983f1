"""The overview page on a real run made by the worker; HTML checked with CSS selectors."""

from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.bench.summaries import variant_summaries
from app.config import Settings
from app.db import make_engine, session_scope
from app.models import Run
from app.web.main import create_app
from app.web.templating import fmt_ratio, fmt_seconds, fmt_usd

from .conftest import DemoData


def cards(html: str) -> dict[str, BeautifulSoup]:
    page = BeautifulSoup(html, "html.parser")
    return {card["data-variant"]: card for card in page.select("article.variant-card")}


def text(card: BeautifulSoup, selector: str) -> str:
    node = card.select_one(selector)
    assert node is not None, selector
    return node.get_text(strip=True)


def test_overview_cards_match_the_database(demo_client: TestClient, demo_data: DemoData) -> None:
    response = demo_client.get("/")
    assert response.status_code == 200
    found = cards(response.text)
    engine = make_engine(demo_data.database_url)
    with session_scope(engine) as session:
        run = session.get_one(Run, demo_data.run_id)
        expected = variant_summaries(session, run)
    assert list(found) == [v.name for v in expected]
    for v in expected:
        card = found[v.name]
        assert text(card, ".latency") == fmt_seconds(v.latency_median_s)
        assert text(card, ".p90") == fmt_seconds(v.latency_p90_s)
        assert text(card, ".speedup") == fmt_ratio(v.speedup)
        # Per 1,000 images, with the decimals that tell this run's variants apart.
        costs = [e.usd_per_1k_images for e in expected]
        amortized = [
            None if e.amortized_usd_per_image is None else 1000 * e.amortized_usd_per_image
            for e in expected
        ]
        mine = None if v.amortized_usd_per_image is None else 1000 * v.amortized_usd_per_image
        assert text(card, ".cost") == fmt_usd(v.usd_per_1k_images, costs)
        assert text(card, ".amortized") == fmt_usd(mine, amortized)
        assert card.select_one(".usd-image") is None  # one unit for every cost
        assert text(card, ".steps") == str(v.steps)
    # dev-turbo is measured against dev; the others have no reference.
    assert text(found["dev-turbo"], ".speedup").endswith("×")
    assert text(found["dev"], ".speedup") == "—"


def test_overview_heading_matches_the_nav(demo_client: TestClient, demo_data: DemoData) -> None:
    page = BeautifulSoup(demo_client.get(f"/?run={demo_data.run_id}").text, "html.parser")
    current = page.select_one('nav.mainnav a[aria-current="page"]')
    assert current is not None and current.get_text(strip=True) == "Overview"
    assert [h.get_text(strip=True) for h in page.select("main h1")] == ["Overview"]
    assert page.select_one("main section.runs h2").get_text(strip=True) == "Runs"
    assert page.title is not None and page.title.get_text().startswith("Overview — webtest")
    labels = [dt.get_text(" ", strip=True) for dt in page.select("article.variant-card dt")]
    assert "$ per 1k images" in labels


def seconds_of(shown: str) -> float:
    value, unit = shown.split()
    return float(value) / 1000 if unit == "ms" else float(value)


def test_overview_cost_follows_the_cost_convention(demo_client: TestClient) -> None:
    card = cards(demo_client.get("/").text)["dev"]
    # $3.60/h = $0.001/s: $/1k images equals the latency in seconds, in dollars.
    cost = float(text(card, ".cost").lstrip("$"))
    assert cost == pytest.approx(seconds_of(text(card, ".latency")), rel=0.02)


def test_overview_failed_variant_shows_its_reason(demo_client: TestClient) -> None:
    card = cards(demo_client.get("/").text)["schnell-fp8"]
    assert text(card, ".badge") == "failed"
    assert "fp8" in text(card, ".error")
    assert text(card, ".latency") == "—"


def test_overview_sort_by_latency(demo_client: TestClient) -> None:
    found = cards(demo_client.get("/?sort=latency").text)
    latencies = [text(c, ".latency") for c in found.values()]
    assert latencies[-1] == "—"  # the failed variant, unmeasured, comes last
    seconds = [seconds_of(value) for value in latencies[:-1]]
    assert seconds == sorted(seconds)


def test_overview_htmx_sort_returns_only_the_cards(demo_client: TestClient) -> None:
    response = demo_client.get(
        "/?sort=name", headers={"HX-Request": "true", "HX-Target": "variant-cards"}
    )
    page = BeautifulSoup(response.text, "html.parser")
    assert page.select_one("html") is None and page.select_one("nav.mainnav") is None
    root = page.select_one("#variant-cards")
    assert root is not None and root["data-sort"] == "name"
    assert [c["data-variant"] for c in root.select("article")] == sorted(
        ["dev", "dev-turbo", "schnell", "schnell-fp8"]
    )
    assert "HX-Request" in response.headers["vary"]


def test_overview_htmx_history_restore_gets_the_whole_page(demo_client: TestClient) -> None:
    headers = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
    page = BeautifulSoup(demo_client.get("/", headers=headers).text, "html.parser")
    assert page.select_one("nav.mainnav") is not None


def test_overview_escapes_database_strings(demo_client: TestClient) -> None:
    page = BeautifulSoup(demo_client.get("/").text, "html.parser")
    assert page.select("main b") == []  # the run description holds "<b>not bold</b>"
    assert "<b>not bold</b>" in page.select_one("section.variants").get_text()


def test_overview_unknown_run_is_a_404_page(demo_client: TestClient) -> None:
    response = demo_client.get("/?run=999")
    assert response.status_code == 404
    page = BeautifulSoup(response.text, "html.parser")
    assert "run 999 not found" in page.select_one(".reasons").get_text()


def test_overview_bad_query_is_422_with_reason(demo_client: TestClient) -> None:
    response = demo_client.get("/?run=abc")
    assert response.status_code == 422
    assert "run" in BeautifulSoup(response.text, "html.parser").select_one(".reasons").get_text()
    assert demo_client.get("/?sort=fastest").status_code == 422


def test_overview_media_have_long_cache_and_no_traversal(
    demo_client: TestClient, demo_data: DemoData
) -> None:
    engine = make_engine(demo_data.database_url)
    with session_scope(engine) as session:
        run = session.scalars(select(Run)).one()
        assert run.id == demo_data.run_id
    thumb = next(demo_data.media_dir.rglob("*.thumb.webp")).relative_to(demo_data.media_dir)
    response = demo_client.get(f"/media/{thumb}?v=x")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/webp"
    assert "immutable" in response.headers["cache-control"]
    assert demo_client.get("/media/../../etc/passwd").status_code == 404
    assert demo_client.get("/media/%2e%2e/%2e%2e/etc/passwd").status_code == 404
    assert demo_client.get("/static/../app/config.py").status_code == 404


def test_overview_empty_database_says_how_to_start(database_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=database_url, media_dir=tmp_path / "media")
    page = BeautifulSoup(TestClient(create_app(settings)).get("/").text, "html.parser")
    assert "flux-playground run" in page.select_one("p.empty").get_text()


def test_overview_card_flags_a_series_that_recompiled_or_was_contended(
    writable_demo: DemoData, writable_client: TestClient
) -> None:
    from sqlalchemy import update

    from app.models import TimingSummary, Variant

    engine = make_engine(writable_demo.database_url)
    with session_scope(engine) as session:
        ids = {name: id_ for name, id_ in session.execute(select(Variant.name, Variant.id))}
        # Flags as measured depend on this machine's load while the test run was made: set.
        for name, recompiles, contended in (("dev", 2, True), ("dev-turbo", 0, False)):
            session.execute(
                update(TimingSummary)
                .where(TimingSummary.variant_id == ids[name])
                .values(recompiles=recompiles, contended=contended)
            )
    engine.dispose()

    found = cards(writable_client.get("/").text)
    flags = [node.get_text(strip=True) for node in found["dev"].select(".timing-flag")]
    assert len(flags) == 2
    assert "recompiled 2× while timed" in flags[0] and "contention" in flags[1]
    # A clean series has no flag; both memory figures are on every measured card.
    assert found["dev-turbo"].select(".timing-flag") == []
    assert text(found["dev-turbo"], ".load-memory").endswith("GB")
    assert text(found["dev-turbo"], ".memory").endswith("GB")


def test_overview_and_dashboard_say_which_gpus_a_variant_fits_from_its_peaks(
    writable_demo: DemoData, tmp_path: Path
) -> None:
    """ "Fits on" from the measured peaks only: the larger of load and generating, against
    the configured GPU sizes when the peak is CUDA's; a CPU peak is not comparable."""
    from app.models import Variant

    engine = make_engine(writable_demo.database_url)
    with session_scope(engine) as session:
        dev = session.scalars(select(Variant).where(Variant.name == "dev")).one()
        dev.load_peak_gb, dev.peak_mem_gb = 20.5, 15.0
        dev.peak_mem_kind = "cuda_max_memory_allocated"
    engine.dispose()
    settings = Settings(
        database_url=writable_demo.database_url,
        media_dir=writable_demo.media_dir,
        gpu_memory_gb="16,24,48",
    )
    with TestClient(create_app(settings)) as client:
        overview = BeautifulSoup(client.get("/").text, "html.parser")
        dashboard = BeautifulSoup(client.get("/dashboard").text, "html.parser")
    fits = {
        card["data-variant"]: card.select_one("dd.fits-on").get_text(strip=True)
        for card in overview.select("[data-variant]")
        if card.select_one("dd.fits-on")
    }
    assert fits["dev"] == "24 GB, 48 GB"  # 20.5 GB at load: not a 16 GB card
    assert fits["schnell"] == "not comparable (a CPU peak RSS)"
    rows = {
        row["data-variant"]: row.select_one("td.fits-on").get_text(strip=True)
        for row in dashboard.select("tr.variant-row")
    }
    assert rows["dev"] == "24 GB, 48 GB" and rows["schnell"] == fits["schnell"]
