"""Blind runs: the images stay behind the admin token until an admin publishes the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.config import Settings
from app.db import make_engine, session_scope
from app.models import Generation, Prompt, Run
from app.web.main import create_app
from tests.conftest import DemoData

ADMIN = {"Authorization": "Bearer test-admin-token"}

pytestmark = pytest.mark.both_databases


@pytest.fixture
def blind_demo(writable_demo: DemoData) -> DemoData:
    engine = make_engine(writable_demo.database_url)
    with session_scope(engine) as session:
        session.execute(update(Run).where(Run.id == writable_demo.run_id).values(blind=True))
    engine.dispose()
    return writable_demo


def _client(demo: DemoData, page_cache_s: float = 0) -> TestClient:
    return TestClient(
        create_app(
            Settings(
                database_url=demo.database_url,
                media_dir=demo.media_dir,
                admin_token="test-admin-token",
                secret_key="test-secret",
                page_cache_s=page_cache_s,
            )
        )
    )


@pytest.fixture
def client(blind_demo: DemoData) -> Iterator[TestClient]:
    with _client(blind_demo) as client:
        yield client


def _urls(demo: DemoData) -> tuple[list[str], str]:
    engine = make_engine(demo.database_url)
    with session_scope(engine) as session:
        prompt_id = session.scalars(
            select(Prompt.id).where(Prompt.run_id == demo.run_id).order_by(Prompt.position)
        ).first()
        image = session.scalars(
            select(Generation.image_path).where(Generation.run_id == demo.run_id)
        ).first()
    engine.dispose()
    run = demo.run_id
    pages = [
        f"/prompts?run={run}",
        f"/prompts/{prompt_id}",
        f"/api/v1/runs/{run}/generations",
        f"/api/v1/runs/{run}/export/generations.csv",
    ]
    return pages, f"/media/{image}"


def test_blind_run_images_hidden_from_the_public(client: TestClient, blind_demo: DemoData) -> None:
    pages, media = _urls(blind_demo)
    for url in pages:
        response = client.get(url)
        assert response.status_code == 403, url
        assert "hidden until an admin publishes" in response.text
    assert client.get(media).status_code == 404
    # "../" cannot walk around the check.
    assert client.get(media.replace("/runs/", "/runs/x/../")).status_code == 404
    # Names, timings, the arena and the leaderboard stay public.
    run = blind_demo.run_id
    for url in (f"/?run={run}", f"/dashboard?run={run}", f"/leaderboard?run={run}"):
        assert client.get(url).status_code == 200, url
    assert client.get(f"/arena?run={run}").status_code == 200
    assert client.get(f"/api/v1/runs/{run}/variants").status_code == 200


def test_blind_run_images_shown_to_an_admin_privately(
    client: TestClient, blind_demo: DemoData
) -> None:
    pages, media = _urls(blind_demo)
    for url in [*pages, media]:
        response = client.get(url, headers=ADMIN)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == "private, no-store", url


def test_blind_run_admin_view_never_served_from_the_page_cache(blind_demo: DemoData) -> None:
    pages, _ = _urls(blind_demo)
    with _client(blind_demo, page_cache_s=60) as client:
        assert client.get(pages[0], headers=ADMIN).status_code == 200
        assert client.get(pages[0]).status_code == 403


def test_blind_run_published_by_an_admin_is_public(
    client: TestClient, blind_demo: DemoData
) -> None:
    pages, media = _urls(blind_demo)
    assert client.post(f"/admin/runs/{blind_demo.run_id}/publish").status_code == 401
    published = client.post(
        f"/admin/runs/{blind_demo.run_id}/publish", headers=ADMIN, follow_redirects=False
    )
    assert published.status_code == 303
    for url in [*pages, media]:
        assert client.get(url).status_code == 200, url
    admin_page = client.get("/admin", headers=ADMIN)
    assert "published" in admin_page.text
