"""The first page, rendered from a real database; HTML checked with CSS selectors."""

from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine

from app.config import Settings
from app.db import session_scope
from app.models import (
    Generation,
    Job,
    JobStatus,
    Prompt,
    Run,
    RunStatus,
    TimingSummary,
    Variant,
    VariantStatus,
)
from app.web.main import create_app
from app.worker.images import store_image


def _timing(median: float) -> TimingSummary:
    return TimingSummary(
        kind="steady_state",
        n=10,
        warmup=2,
        latency_median_s=median,
        latency_p10_s=median * 0.9,
        latency_p90_s=median * 1.1,
        latency_mean_s=median,
        latency_min_s=median * 0.8,
        latency_max_s=median * 1.2,
    )


@pytest.fixture
def seeded(engine: Engine, tmp_path: Path) -> dict[str, int]:
    """A finished run with a reference variant (1.0 s) and a 4x faster one (0.25 s)."""
    media = tmp_path / "media"
    with session_scope(engine) as session:
        run = Run(
            name="bench",
            fingerprint="f",
            config_path="/x/bench.toml",
            config={"seeds": [7]},
            prompt_set="p.tsv",
            width=64,
            height=64,
            device="cpu",
            hardware="Test CPU",
            usd_per_hour=3.6,
            warmup=2,
            repeats=10,
            status=RunStatus.done,
            environment={},
        )
        session.add(run)
        base = Variant(name="base", position=0, config={"steps": 28}, status=VariantStatus.done)
        fast = Variant(
            name="fast",
            position=1,
            config={"steps": 8},
            status=VariantStatus.done,
            reference=base,
        )
        broken = Variant(
            name="broken",
            position=2,
            config={"steps": 8},
            status=VariantStatus.failed,
            error="onediffx is not installed",
            reference=base,
        )
        run.variants.extend([base, fast, broken])
        base.timings.append(_timing(1.0))
        fast.timings.append(_timing(0.25))
        prompt = Prompt(
            position=0,
            text="<script>alert(1)</script> a cat",
            category="Animals",
            challenge="Basic",
        )
        run.prompts.append(prompt)
        session.flush()
        for variant in (base, fast):
            job = Job(
                run_id=run.id,
                variant_id=variant.id,
                prompt_id=prompt.id,
                seed=7,
                status=JobStatus.done,
                attempts=1,
            )
            session.add(job)
            session.flush()
            stored = store_image(
                Image.new("RGB", (64, 64), "red"), media, f"runs/1/{variant.name}/{job.id}"
            )
            session.add(
                Generation(
                    job_id=job.id,
                    run_id=run.id,
                    variant_id=variant.id,
                    prompt_id=prompt.id,
                    seed=7,
                    image_path=stored.image_path,
                    thumb_path=stored.thumb_path,
                    image_sha256=stored.sha256,
                    width=64,
                    height=64,
                    model="tiny:dev",
                    steps=8,
                    guidance=3.5,
                    max_sequence_length=512,
                    dtype="float32",
                    lora=None,
                    optimizations={},
                    latency_s=0.5,
                )
            )
        return {"run": run.id}


@pytest.fixture
def client(database_url: str, tmp_path: Path, seeded: dict[str, int]) -> TestClient:
    settings = Settings(database_url=database_url, media_dir=tmp_path / "media")
    return TestClient(create_app(settings))


def test_overview_lists_variants_with_speedup_and_cost(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    page = BeautifulSoup(response.text, "html.parser")
    rows = {row["data-variant"]: row for row in page.select("tr.variant-row")}
    assert list(rows) == ["base", "fast", "broken"]
    assert rows["fast"].select_one(".speedup").get_text(strip=True) == "4.00×"
    assert rows["base"].select_one(".speedup").get_text(strip=True) == "—"
    # 1.0 s at $3.60/h = $0.001 per image = $1.00 per 1k images.
    assert rows["base"].select_one(".cost").get_text(strip=True) == "$1.00"
    assert rows["fast"].select_one(".cost").get_text(strip=True) == "$0.2500"
    assert rows["fast"].select_one(".latency").get_text(strip=True) == "250.0 ms"
    assert "onediffx is not installed" in rows["broken"].select_one(".error").get_text()


def test_overview_shows_each_prompts_images_side_by_side(client: TestClient) -> None:
    page = BeautifulSoup(client.get("/").text, "html.parser")
    row = page.select_one("article.prompt-row")
    assert row is not None
    images = row.select("figure img")
    assert len(images) == 2
    assert row.select_one("figure.missing .placeholder").get_text(strip=True) == "failed"
    for img in images:
        media = client.get(img["src"])
        assert media.status_code == 200
        assert media.headers["content-type"] == "image/webp"


def test_overview_escapes_prompt_text(client: TestClient) -> None:
    response = client.get("/")
    assert "<script>alert(1)</script>" not in response.text
    page = BeautifulSoup(response.text, "html.parser")
    assert page.select_one(".prompt-text").get_text().startswith("<script>alert(1)</script> a cat")
    assert page.select("main script") == []


def test_overview_unknown_run_is_404(client: TestClient) -> None:
    assert client.get("/?run=999").status_code == 404


def test_overview_bad_query_is_422(client: TestClient) -> None:
    assert client.get("/?run=abc").status_code == 422
    assert client.get("/?page=0").status_code == 422


def test_overview_media_traversal_is_404(client: TestClient) -> None:
    assert client.get("/media/../../etc/passwd").status_code == 404
    assert client.get("/media/%2e%2e/%2e%2e/etc/passwd").status_code == 404


def test_overview_empty_database_says_how_to_start(database_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=database_url, media_dir=tmp_path / "m2")
    page = BeautifulSoup(TestClient(create_app(settings)).get("/").text, "html.parser")
    assert "flux-playground run" in page.select_one("p.empty").get_text()
