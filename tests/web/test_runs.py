"""The runs list `/runs` and the live run page `/runs/{id}`.

The finished run is the shared demo run (read-only); the run in progress is enqueued by the
real `enqueue_run` into a database of the test's own, then advanced by SQL as a worker would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup, Tag
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, select, update

from app.bench.benchmark import load_benchmark
from app.bench.prompts import load_prompts
from app.config import Settings
from app.db import make_engine
from app.models import Generation, Job, JobStatus, Run, RunStatus, Variant
from app.web.main import create_app
from app.worker.enqueue import enqueue_run
from tests.web.conftest import DemoData

POLL = "every 1s"
HTMX_POLL = {"HX-Request": "true", "HX-Target": "run-progress"}

PROMPTS = """prompt\tcategory\tchallenge
a red bicycle\tVehicles\tBasic
an owl reading\tAnimals\tImagination
a snail teapot\tArtifacts\tImagination
"""

CONFIG = """
name = "live"
prompts = "prompts.tsv"
seeds = [0, 1]
width = 64
height = 64
device = "cpu"
hardware = "Test CPU"
usd_per_hour = 3.6
warmup = 1
repeats = 3

[[variants]]
name = "a"
model = "tiny:dev"
steps = 2
guidance = 3.5
max_sequence_length = 32
dtype = "float32"

[[variants]]
name = "b"
base = "a"
steps = 1

[[variants]]
name = "c"
base = "a"
steps = 1
"""


def _page(response: Any) -> BeautifulSoup:
    assert response.status_code == 200, response.text
    return BeautifulSoup(response.text, "html.parser")


def _variant_rows(page: BeautifulSoup) -> dict[str, Tag]:
    return {str(row["data-variant"]): row for row in page.select("tr.variant-row")}


@dataclass(frozen=True)
class LiveRun:
    client: TestClient
    run_id: int


def _finish(engine: Engine, run_id: int, variant: str, latencies: list[float]) -> None:
    """Mark the variant's first jobs done with a Generation each, like the worker's _store."""
    started = datetime(2030, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        variant_id = conn.scalar(
            select(Variant.id).where(Variant.run_id == run_id, Variant.name == variant)
        )
        jobs = conn.execute(
            select(Job.id, Job.prompt_id, Job.seed)
            .where(Job.variant_id == variant_id)
            .order_by(Job.id)
            .limit(len(latencies))
        ).all()
        for i, ((job_id, prompt_id, seed), latency) in enumerate(zip(jobs, latencies, strict=True)):
            conn.execute(
                insert(Generation).values(
                    job_id=job_id,
                    run_id=run_id,
                    variant_id=variant_id,
                    prompt_id=prompt_id,
                    seed=seed,
                    image_path=f"runs/{run_id}/{variant}/{job_id}.webp",
                    thumb_path=f"runs/{run_id}/{variant}/{job_id}.thumb.webp",
                    image_sha256="0" * 64,
                    width=64,
                    height=64,
                    model="tiny:dev",
                    steps=2,
                    guidance=3.5,
                    max_sequence_length=32,
                    dtype="float32",
                    lora=None,
                    optimizations={},
                    latency_s=latency,
                )
            )
            conn.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    status=JobStatus.done,
                    attempts=1,
                    finished_at=started + timedelta(seconds=i),
                )
            )


@pytest.fixture
def live_run(engine: Engine, database_url: str, tmp_path: Path) -> Iterator[LiveRun]:
    """Three variants × 3 prompts × 2 seeds = 18 jobs. a: 2 done (0.5 s, 1.5 s), 1 running,
    3 pending; b: 1 done (4.0 s), 5 pending; c: nothing yet, 6 pending."""
    (tmp_path / "prompts.tsv").write_text(PROMPTS)
    (tmp_path / "bench.toml").write_text(CONFIG)
    bench = load_benchmark(tmp_path / "bench.toml")
    run_id = enqueue_run(engine, bench, load_prompts(bench.prompts_path))
    _finish(engine, run_id, "a", [0.5, 1.5])
    _finish(engine, run_id, "b", [4.0])
    with engine.begin() as conn:
        next_a = conn.scalar(
            select(func.min(Job.id))
            .join(Variant, Variant.id == Job.variant_id)
            .where(Variant.name == "a", Job.status == JobStatus.pending)
        )
        conn.execute(
            update(Job).where(Job.id == next_a).values(status=JobStatus.running, worker="h:1")
        )
        conn.execute(update(Run).where(Run.id == run_id).values(status=RunStatus.running))
        conn.execute(
            update(Variant)
            .where(Variant.run_id == run_id, Variant.name == "a")
            .values(status="running")
        )
    settings = Settings(database_url=database_url, media_dir=tmp_path / "media")
    with TestClient(create_app(settings)) as client:
        yield LiveRun(client=client, run_id=run_id)


def _demo_counts(demo_data: DemoData) -> dict[str, int]:
    engine = make_engine(demo_data.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Job.status, func.count())
                .where(Job.run_id == demo_data.run_id)
                .group_by(Job.status)
            ).all()
    finally:
        engine.dispose()
    return {JobStatus(status).value: n for status, n in rows}


def test_runs_list_shows_the_run_with_progress(
    demo_client: TestClient, demo_data: DemoData
) -> None:
    page = _page(demo_client.get("/runs"))
    row = page.select_one(f'tr.run-row[data-run-id="{demo_data.run_id}"]')
    assert row is not None
    link = row.select_one("a")
    assert link["href"] == f"/runs/{demo_data.run_id}"
    assert "webtest" in link.get_text()
    assert row.select_one(".badge").get_text(strip=True) == "done"
    counts = _demo_counts(demo_data)
    total = sum(counts.values())
    assert total == 4 * 6 * 2
    assert row.select_one(".done-total").get_text(strip=True) == f"{counts['done']}/{total}"
    assert row.select_one(".failed-count").get_text(strip=True) == f"· {counts['failed']} failed"
    bar = row.select_one("progress")
    assert (bar["value"], bar["max"]) == (str(counts["done"]), str(total))
    assert row.select_one(".created time")["datetime"]
    assert row.select_one(".finished time").get_text().endswith("UTC")
    assert page.select_one('nav.mainnav a[aria-current="page"]')["href"] == "/runs"


def test_runs_list_empty_database_says_how_to_start(database_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=database_url, media_dir=tmp_path / "media")
    page = _page(TestClient(create_app(settings)).get("/runs"))
    assert "flux-playground run" in page.select_one("p.empty").get_text()


def test_runs_finished_run_has_no_polling_trigger(
    demo_client: TestClient, demo_data: DemoData
) -> None:
    page = _page(demo_client.get(f"/runs/{demo_data.run_id}"))
    progress = page.select_one("#run-progress")
    assert progress is not None
    assert progress["data-status"] == "done"
    assert page.select("[hx-trigger], [hx-get]") == []
    assert page.select(".eta") == []
    rows = _variant_rows(page)
    assert list(rows) == ["dev", "dev-turbo", "schnell", "schnell-fp8"]
    assert rows["dev"].select_one(".done-total").get_text(strip=True) == "12/12"
    assert rows["dev"].select_one("progress")["value"] == "12"
    failed = rows["schnell-fp8"]
    assert failed.select_one(".badge").get_text(strip=True) == "failed"
    assert failed.select_one(".done-total").get_text(strip=True) == "0/12"
    assert failed.select_one(".failed-count").get_text(strip=True) == "12"
    reason = page.select_one('tr.variant-error-row[data-variant="schnell-fp8"] .error')
    assert reason is not None
    assert len(reason.get_text(strip=True)) > len("schnell-fp8 failed: ")
    counts = _demo_counts(demo_data)
    overall = page.select_one(".overall-line")
    assert overall.select_one(".done-total").get_text() == f"{counts['done']}/48"
    assert overall.select_one(".failed-count").get_text() == str(counts["failed"])
    assert page.select_one(".run-times .finished time").get_text().endswith("UTC")
    # The environment record, collapsed.
    details = page.select_one("details.environment")
    assert details is not None
    assert not details.has_attr("open")
    env = {
        item.select_one("dt").get_text(): item.select_one("dd").get_text()
        for item in details.select(".env-list > div")
    }
    assert env["device"] == "cpu"
    assert env["packages.torch"]
    assert "host" not in env and "process" not in env  # which machine: not public


def test_runs_htmx_poll_of_finished_run_returns_fragment_without_trigger(
    demo_client: TestClient, demo_data: DemoData
) -> None:
    response = demo_client.get(f"/runs/{demo_data.run_id}", headers=HTMX_POLL)
    page = _page(response)
    assert page.select("html, header.topbar, details.environment") == []
    top = [el for el in page.contents if isinstance(el, Tag)]
    assert [(el.name, el.get("id")) for el in top] == [("section", "run-progress")]
    assert not top[0].has_attr("hx-trigger")


def test_runs_in_progress_run_polls_and_shows_progress_and_eta(live_run: LiveRun) -> None:
    page = _page(live_run.client.get(f"/runs/{live_run.run_id}"))
    progress = page.select_one("#run-progress")
    assert progress["hx-trigger"] == POLL
    assert progress["hx-get"] == f"/runs/{live_run.run_id}"
    assert progress["hx-swap"] == "outerHTML"
    assert progress["data-status"] == "running"
    overall = page.select_one(".overall-line")
    assert overall.select_one(".done-total").get_text() == "3/18"
    assert "1 in progress" in overall.get_text()
    assert page.select_one(".overall-bar")["value"] == "3"
    assert page.select_one(".overall-bar")["max"] == "18"
    rows = _variant_rows(page)
    assert {name: row.select_one(".done-total").get_text() for name, row in rows.items()} == {
        "a": "2/6",
        "b": "1/6",
        "c": "0/6",
    }
    assert rows["a"].select_one(".badge").get_text() == "running"
    # a: mean 1.0 s × 4 left; b: 4.0 s × 5 left; c: no image, the run's mean 2.0 s × 6 left.
    etas = {name: float(row.select_one("td.eta")["data-seconds"]) for name, row in rows.items()}
    assert etas == {"a": 4.0, "b": 20.0, "c": 12.0}
    assert rows["c"].select_one("td.eta").get_text(strip=True).endswith("*")
    eta = page.select_one(".run-times .eta")
    assert float(eta["data-seconds"]) == 36.0
    assert eta.get_text(strip=True) == "≥ 36 s"
    assert "mean latency" in page.select_one("#run-progress .note").get_text()
    assert page.select_one(".run-times .finished").get_text(strip=True) == "—"
    details = page.select_one("details.environment")
    assert not details.has_attr("open")
    assert "Not recorded yet" in details.get_text()


def test_runs_htmx_poll_returns_only_the_progress_fragment(live_run: LiveRun) -> None:
    response = live_run.client.get(f"/runs/{live_run.run_id}", headers=HTMX_POLL)
    page = _page(response)
    assert "HX-Request" in response.headers["vary"]
    top = [el for el in page.contents if isinstance(el, Tag)]
    assert [(el.name, el.get("id")) for el in top] == [("section", "run-progress")]
    assert top[0]["hx-trigger"] == POLL
    assert page.select("html, header.topbar, details.environment, h1") == []
    assert page.select_one(".overall-line .done-total").get_text() == "3/18"


def test_runs_poll_stops_when_the_run_ends(live_run: LiveRun, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(Run)
            .where(Run.id == live_run.run_id)
            .values(status=RunStatus.done, finished_at=datetime.now(UTC))
        )
    page = _page(live_run.client.get(f"/runs/{live_run.run_id}", headers=HTMX_POLL))
    progress = page.select_one("#run-progress")
    assert progress["data-status"] == "done"
    assert not progress.has_attr("hx-trigger")
    assert not progress.has_attr("hx-get")


def test_runs_unknown_run_is_404(demo_client: TestClient) -> None:
    response = demo_client.get("/runs/999")
    assert response.status_code == 404
    page = BeautifulSoup(response.text, "html.parser")
    assert page.select_one(".reasons").get_text(strip=True) == "run 999 not found"
    assert demo_client.get("/runs/abc").status_code == 422
    assert demo_client.get("/runs/0").status_code == 422


def test_runs_escapes_database_strings(live_run: LiveRun, engine: Engine) -> None:
    error = '<img src=x onerror="alert(1)"> no fp8 here'
    with engine.begin() as conn:
        conn.execute(
            update(Variant)
            .where(Variant.run_id == live_run.run_id, Variant.name == "c")
            .values(status="failed", error=error)
        )
        conn.execute(
            update(Run)
            .where(Run.id == live_run.run_id)
            .values(
                description="<b>bold?</b>",
                environment={"device": "cpu", "gpu": "<script>alert(2)</script>"},
            )
        )
    response = live_run.client.get(f"/runs/{live_run.run_id}")
    page = _page(response)
    assert page.select("img, b, main script") == []
    assert error in page.select_one('tr.variant-error-row[data-variant="c"] .error').get_text()
    env = page.select_one("details.environment").get_text()
    assert "<script>alert(2)</script>" in env
