"""Automatic metrics on the pages: the prompt page's settings, the overview cards, the
dashboard's quality axis and the leaderboard's "can a metric stand in for votes?" table.

The metrics are computed once (tiny CLIP) into a private copy of the web test run."""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import make_engine, session_scope
from app.models import Generation, GenerationMetric, MetricStatus, Variant, utcnow
from app.quality import METRIC_RANGES, compute_run_metrics, metric_summaries
from app.quality.adherence import ORACLE
from app.web.main import create_app
from app.worker.tiny_clip import resolve_clip_ref
from tests.arena.test_leaderboard import MIXED, add_votes
from tests.conftest import DemoData, first_prompt_id


def _copy(data: DemoData, path: Path) -> None:
    source = sqlite3.connect(data.database_url.removeprefix("sqlite:///"))
    with source as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    source.close()


@pytest.fixture(scope="module")
def metrics_db(
    demo_data: DemoData, tiny_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> DemoData:
    path = tmp_path_factory.mktemp("metrics") / "metrics.db"
    _copy(demo_data, path)
    data = DemoData(f"sqlite:///{path}", demo_data.media_dir, demo_data.run_id)
    engine = make_engine(data.database_url)
    compute_run_metrics(
        engine,
        data.run_id,
        media_dir=data.media_dir,
        resolve_clip=functools.partial(resolve_clip_ref, models_dir=tiny_models),
        clip_model="tiny:clip",
    )
    engine.dispose()
    return data


@pytest.fixture
def metrics_demo(metrics_db: DemoData, tmp_path: Path) -> DemoData:
    """A private copy of the run with its metrics, for tests that write."""
    path = tmp_path / "copy.db"
    _copy(metrics_db, path)
    return DemoData(f"sqlite:///{path}", metrics_db.media_dir, metrics_db.run_id)


@pytest.fixture
def client(metrics_demo: DemoData) -> Iterator[TestClient]:
    settings = Settings(
        database_url=metrics_demo.database_url, media_dir=metrics_demo.media_dir, page_cache_s=0
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _page(response: Any) -> BeautifulSoup:
    assert response.status_code == 200, response.text
    return BeautifulSoup(response.text, "html.parser")


def _first_prompt(data: DemoData) -> int:
    return first_prompt_id(data.database_url, data.run_id)


def _summaries(data: DemoData) -> dict[tuple[str, str], Any]:
    engine = make_engine(data.database_url)
    with Session(engine) as session:
        out = {(s.variant, s.metric): s for s in metric_summaries(session, data.run_id)}
    engine.dispose()
    return out


def _dashboard_data(page: BeautifulSoup) -> dict[str, Any]:
    script = page.select_one("script#dashboard-data")
    assert script is not None
    data: dict[str, Any] = json.loads(script.get_text())
    return data


# --- prompt page ----------------------------------------------------------------------------


def test_prompt_metrics_listed_in_each_images_settings(
    client: TestClient, metrics_demo: DemoData
) -> None:
    page = _page(client.get(f"/prompts/{_first_prompt(metrics_demo)}"))
    turbo = page.select_one('figure[data-variant="dev-turbo"] dl.settings')
    keys = [d["data-key"] for d in turbo.select("div.setting.metric")]
    assert keys == ["metric-ssim", "metric-psnr_db", "metric-clip_score"]
    ssim = turbo.select_one('[data-key="metric-ssim"]')
    assert ssim.select_one("dt").get_text() == "SSIM vs dev"
    assert 0 <= float(ssim.select_one("dd").get_text()) <= 1
    assert turbo.select_one('[data-key="metric-psnr_db"] dd').get_text().endswith("dB")
    # A reference has no fidelity to itself: only its CLIP score.
    dev = page.select_one('figure[data-variant="dev"] dl.settings')
    assert [d["data-key"] for d in dev.select("div.metric")] == ["metric-clip_score"]
    clip = dev.select_one('[data-key="metric-clip_score"] dt').get_text()
    assert clip == "CLIP score (tiny:clip)"


def test_prompt_metrics_unavailable_says_why_escaped(
    client: TestClient, metrics_demo: DemoData
) -> None:
    engine = make_engine(metrics_demo.database_url)
    with session_scope(engine) as session:
        session.execute(
            update(GenerationMetric)
            .where(GenerationMetric.metric == "clip_score")
            .values(status=MetricStatus.unavailable, value=None, reason="<b>no weights</b>")
        )
    engine.dispose()
    response = client.get(f"/prompts/{_first_prompt(metrics_demo)}")
    page = _page(response)
    cell = page.select_one('figure[data-variant="dev"] [data-key="metric-clip_score"] dd')
    assert cell.get_text() == "unavailable: <b>no weights</b>"
    assert page.select("dl.settings b") == []


# --- overview cards -----------------------------------------------------------------------


def test_overview_metrics_summary_lines_per_card(
    client: TestClient, metrics_demo: DemoData
) -> None:
    page = _page(client.get(f"/?run={metrics_demo.run_id}"))
    summaries = _summaries(metrics_demo)
    turbo = page.select_one('article.variant-card[data-variant="dev-turbo"]')
    ssim = turbo.select_one('.metric-line[data-metric="ssim"]')
    assert ssim.select_one("dt").get_text() == "SSIM vs dev"
    assert ssim.select_one("dd").get_text() == summaries[("dev-turbo", "ssim")].display
    dev = page.select_one('article.variant-card[data-variant="dev"]')
    assert [d["data-metric"] for d in dev.select(".metric-line")] == ["clip_score"]
    clip = dev.select_one(".metric-line dd").get_text()
    assert clip == summaries[("dev", "clip_score")].display
    # The failed variant has no images, so no metric lines.
    assert page.select('article[data-variant="schnell-fp8"] .metric-line') == []


def test_overview_adherence_line_is_the_share_fully_right_with_wilsons_interval(
    client: TestClient, metrics_demo: DemoData
) -> None:
    # As the metrics command stores them for prompts that state a scene: 3 of dev's 12
    # images fully right. The demo's prompts state none, so the rows are made here.
    engine = make_engine(metrics_demo.database_url)
    with session_scope(engine) as session:
        generations = session.scalars(
            select(Generation.id)
            .join(Variant, Variant.id == Generation.variant_id)
            .where(Variant.name == "dev")
            .order_by(Generation.id)
        ).all()
        for k, generation in enumerate(generations):
            session.add(
                GenerationMetric(
                    generation_id=generation,
                    metric="adherence",
                    model=ORACLE,
                    params={},
                    value=float(k < 3),
                    status=MetricStatus.ok,
                )
            )
    engine.dispose()
    summary = _summaries(metrics_demo)[("dev", "adherence")]
    assert summary.mean == 3 / len(generations)
    page = _page(client.get(f"/?run={metrics_demo.run_id}"))
    line = page.select_one('article[data-variant="dev"] .metric-line[data-metric="adherence"]')
    assert line.select_one("dt").get_text() == "Adherence (fully right)"
    assert line.select_one("dd").get_text() == summary.display
    assert summary.ci_low is not None and summary.ci_high is not None
    assert 0 < summary.ci_low < summary.mean < summary.ci_high < 1


def _set_values(data: DemoData, variant: str, metric: str, values: list[float]) -> None:
    """Give `variant`'s images these `metric` values (in generation order), as if computed
    now (the summaries' cache key is the metrics' latest change)."""
    engine = make_engine(data.database_url)
    with session_scope(engine) as session:
        rows = session.scalars(
            select(GenerationMetric)
            .join(Generation, Generation.id == GenerationMetric.generation_id)
            .join(Variant, Variant.id == Generation.variant_id)
            .where(Variant.name == variant, GenerationMetric.metric == metric)
            .order_by(GenerationMetric.generation_id)
        ).all()
        assert len(rows) == len(values)
        for row, value in zip(rows, values, strict=True):
            row.value, row.created_at = value, utcnow()
    engine.dispose()


NUMBER = r"-?[0-9][0-9,]*(?:\.([0-9]+))?"
ESTIMATE = re.compile(rf"({NUMBER}) \[({NUMBER}), ({NUMBER})\]")


def test_overview_metric_intervals_clipped_to_the_range(
    client: TestClient, metrics_demo: DemoData
) -> None:
    # One image scores 9, eleven score 0: the Student-t interval reaches below 0, which a
    # CLIP score (100 × max(cos, 0)) cannot. An SSIM of 1 but one image: above 1.
    _set_values(metrics_demo, "dev", "clip_score", [9.0] + [0.0] * 11)
    _set_values(metrics_demo, "dev-turbo", "ssim", [1.0] * 11 + [0.9])
    summaries = _summaries(metrics_demo)
    clip, ssim = summaries[("dev", "clip_score")], summaries[("dev-turbo", "ssim")]
    assert clip.ci_low is not None and clip.ci_low < 0  # the raw interval, as computed
    assert ssim.ci_high is not None and ssim.ci_high > 1
    page = _page(client.get(f"/?run={metrics_demo.run_id}"))
    shown = {
        (card["data-variant"], line["data-metric"]): line.select_one("dd").get_text()
        for card in page.select("article.variant-card")
        for line in card.select(".metric-line")
    }
    # mean 0.75, half-width 1.65: one decimal (two figures of the half-width), low end 0.
    assert shown[("dev", "clip_score")] == "0.8 [0.0, 2.4]"
    assert shown[("dev-turbo", "ssim")] == "0.992 [0.973, 1.000]"
    for (variant, metric), text in shown.items():
        assert text == summaries[(variant, metric)].display
        found = ESTIMATE.fullmatch(text)
        assert found is not None, text
        mean, low, high = (float(found.group(i).replace(",", "")) for i in (1, 3, 5))
        lo, hi = METRIC_RANGES[metric]
        assert lo <= low <= mean <= high <= hi, text
        # The mean and both ends at one number of decimals.
        assert len({len(found.group(i) or "") for i in (2, 4, 6)}) == 1, text


def test_dashboard_metric_interval_clipped_in_chart_data(
    client: TestClient, metrics_demo: DemoData
) -> None:
    _set_values(metrics_demo, "dev", "clip_score", [9.0] + [0.0] * 11)
    page = _page(client.get(f"/dashboard?run={metrics_demo.run_id}&quality=clip_score"))
    quality = {v["name"]: v["quality"] for v in _dashboard_data(page)["variants"]}
    assert quality["dev"]["ci_low"] == 0.0  # the error bar stops at the range
    raw = _summaries(metrics_demo)[("dev", "clip_score")]
    assert quality["dev"]["ci_high"] == raw.ci_high  # within the range: unchanged
    assert quality["dev"]["text"] == "0.8 [0.0, 2.4]"
    note = page.select_one("p.note:-soup-contains('clipped to the metric')")
    assert note is not None


# --- dashboard ----------------------------------------------------------------------------


def test_dashboard_metrics_default_to_ssim_without_votes(
    client: TestClient, metrics_demo: DemoData
) -> None:
    page = _page(client.get(f"/dashboard?run={metrics_demo.run_id}"))
    data = _dashboard_data(page)
    assert data["quality_kind"] == "ssim"
    assert data["quality_label"] == "SSIM vs reference (mean)"
    quality = {v["name"]: v["quality"] for v in data["variants"]}
    summary = _summaries(metrics_demo)[("dev-turbo", "ssim")]
    assert quality["dev-turbo"] == {
        "value": summary.mean,
        "ci_low": summary.interval[0],
        "ci_high": summary.interval[1],
        "text": summary.display,
    }
    assert quality["dev"] is None  # a reference has no fidelity to itself
    assert page.select_one("canvas#chart-quality") is not None
    selected = page.select_one("form.quality-form select[name=quality] option[selected]")
    assert selected["value"] == "ssim"


def test_dashboard_metrics_clip_score_axis(client: TestClient, metrics_demo: DemoData) -> None:
    page = _page(client.get(f"/dashboard?run={metrics_demo.run_id}&quality=clip_score"))
    data = _dashboard_data(page)
    assert data["quality_kind"] == "clip_score"
    assert data["quality_label"] == "CLIP score (mean), tiny:clip"
    quality = {v["name"]: v["quality"] for v in data["variants"]}
    assert quality["dev"]["value"] == _summaries(metrics_demo)[("dev", "clip_score")].mean
    # The price form keeps the chosen axis.
    hidden = page.select_one('form.price-form input[name="quality"]')
    assert hidden["value"] == "clip_score"


def test_dashboard_metrics_rating_once_votes_exist(
    client: TestClient, metrics_demo: DemoData
) -> None:
    add_votes(metrics_demo.database_url, metrics_demo.run_id, MIXED)
    data = _dashboard_data(_page(client.get(f"/dashboard?run={metrics_demo.run_id}")))
    assert data["quality_kind"] == "rating"
    assert data["quality_label"] == "arena rating (Elo scale)"
    ssim = _dashboard_data(_page(client.get(f"/dashboard?run={metrics_demo.run_id}&quality=ssim")))
    assert ssim["quality_kind"] == "ssim"


def test_dashboard_metrics_unknown_quality_is_422(
    client: TestClient, metrics_demo: DemoData
) -> None:
    response = client.get(f"/dashboard?run={metrics_demo.run_id}&quality=lpips")
    assert response.status_code == 422


def test_dashboard_metrics_missing_metric_says_so(
    demo_client: TestClient, demo_data: DemoData
) -> None:
    page = _page(demo_client.get(f"/dashboard?run={demo_data.run_id}&quality=clip_score"))
    note = page.select_one("#quality-box .no-quality").get_text(" ", strip=True)
    assert note.startswith("no CLIP score values yet")
    assert page.select_one("canvas#chart-quality") is None


# --- leaderboard --------------------------------------------------------------------------


def _leaderboard_settled(client: TestClient, run_id: int) -> BeautifulSoup:
    """The leaderboard page once its agreement report is of the board's current votes: the
    first view starts it in the background (the page then says so), a later view shows it."""
    deadline = time.monotonic() + 20
    while True:
        page = _page(client.get(f"/leaderboard?run={run_id}"))
        board = page.select_one("#leaderboard")
        report = page.select_one(".metric-agreement")
        current = board is not None and report is not None
        if current and report["data-version"] == board["data-version"]:
            return page
        assert time.monotonic() < deadline, "the agreement report never caught up"
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def agreement_without_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new report as soon as the votes change (the page waits 10 s between reports)."""
    monkeypatch.setattr("app.arena.agreement.PAGE_REPORT_INTERVAL_S", 0.0)


def test_leaderboard_metrics_no_votes_yet(client: TestClient, metrics_demo: DemoData) -> None:
    page = _leaderboard_settled(client, metrics_demo.run_id)
    assert page.select_one(".metric-agreement .no-agreement-votes") is not None
    assert page.select_one("table.agreement-table") is None


def test_leaderboard_metrics_no_metrics_yet(
    writable_client: TestClient, writable_demo: DemoData
) -> None:
    add_votes(writable_demo.database_url, writable_demo.run_id, MIXED)
    first = _page(writable_client.get(f"/leaderboard?run={writable_demo.run_id}"))
    assert first.select_one(".agreement-pending") is not None  # not waited for
    page = _leaderboard_settled(writable_client, writable_demo.run_id)
    assert page.select_one(".metric-agreement .no-agreement-metrics") is not None


def test_leaderboard_metrics_agreement_table(client: TestClient, metrics_demo: DemoData) -> None:
    add_votes(metrics_demo.database_url, metrics_demo.run_id, MIXED)
    page = _leaderboard_settled(client, metrics_demo.run_id)
    rows = {r["data-metric"]: r for r in page.select("table.agreement-table tr.agreement-row")}
    assert list(rows) == ["ssim", "psnr_db", "clip_score"]
    decided = sum(1 for *_, outcome in MIXED if outcome in ("left", "right"))
    clip = rows["clip_score"]
    used = int(clip.select_one("td.used")["data-value"])
    assert 0 < used <= decided
    assert 0 <= float(clip.select_one("td.agreement")["data-value"]) <= 1
    # Every vote has dev (the reference) or schnell (no reference) on a side: no fidelity.
    ssim = rows["ssim"]
    assert ssim.select_one("td.used")["data-value"] == "0"
    assert "reference's own image" in ssim.select_one("td.skipped").get_text()
