"""PostgreSQL, for real (tests/postgres_server.py): the schema the migrations make, the worker
making the web test run, and every page and API route reading it. The arena, admin,
leaderboard, agreement and metrics tests also run each of their tests on PostgreSQL (they
override writable_demo with both databases)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.config import Settings
from app.db import make_engine, session_scope
from app.models import Base, Generation, Job, JobStatus, Variant, VariantStatus
from app.web.main import create_app
from tests.conftest import DemoData
from tests.postgres_server import new_database


def test_postgres_tests_run_on_one_xdist_worker(
    request: pytest.FixtureRequest, postgres: Path
) -> None:
    # Under `make test` (xdist, --dist loadgroup) every PostgreSQL test carries its group in
    # its id, which is what sends them all to one worker and its one server (conftest._group).
    if getattr(request.config.option, "loadgroup", False):
        assert request.node.nodeid.endswith("@postgres"), request.node.nodeid


def test_postgres_migrations_match_the_models(postgres_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.dialect.name == "postgresql"
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_postgres_worker_made_the_demo_run(postgres_demo: DemoData) -> None:
    engine = make_engine(postgres_demo.database_url)
    with session_scope(engine) as session:
        statuses = {
            name: status for name, status in session.execute(select(Variant.name, Variant.status))
        }
        generations = session.scalar(select(func.count()).select_from(Generation))
        open_jobs = session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.status.not_in([JobStatus.done, JobStatus.failed]))
        )
    engine.dispose()
    assert statuses == {
        "dev": VariantStatus.done,
        "dev-turbo": VariantStatus.done,
        "schnell": VariantStatus.done,
        "schnell-fp8": VariantStatus.failed,  # fp8 needs CUDA
    }
    assert generations == 3 * 6 * 2
    assert open_jobs == 0


@pytest.fixture(scope="module")
def postgres_pages(postgres: Path, postgres_demo: DemoData) -> DemoData:
    """A copy of the run for the pages: the demo database stays free of connections, as
    the template the other tests copy."""
    url = new_database(postgres, copy_of=postgres_demo.database_url)
    return DemoData(url, postgres_demo.media_dir, postgres_demo.run_id)


@pytest.fixture
def postgres_client(postgres_pages: DemoData) -> Iterator[TestClient]:
    settings = Settings(
        database_url=postgres_pages.database_url, media_dir=postgres_pages.media_dir, page_cache_s=0
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/prompts?run={run}",
        "/prompts/{prompt}?run={run}",
        "/dashboard?run={run}",
        "/leaderboard?run={run}",
        "/runs",
        "/runs/{run}",
        "/api/v1/runs",
        "/api/v1/runs/{run}",
        "/api/v1/runs/{run}/variants",
        "/api/v1/runs/{run}/prompts",
        "/api/v1/runs/{run}/generations",
        "/api/v1/runs/{run}/export/generations.csv",
        "/api/v1/runs/{run}/export/variants.csv",
    ],
)
def test_postgres_pages_and_api_read_the_run(
    postgres_client: TestClient, postgres_pages: DemoData, path: str
) -> None:
    engine = make_engine(postgres_pages.database_url)
    with session_scope(engine) as session:
        prompt = session.scalar(select(func.min(Generation.prompt_id)))
    engine.dispose()
    response = postgres_client.get(path.format(run=postgres_pages.run_id, prompt=prompt))
    assert response.status_code == 200, response.text[:500]
    # Every page and answer names the run, its variants or its prompts.
    assert any(name in response.text for name in ("webtest", "dev-turbo", "red bicycle"))


@pytest.mark.parametrize("writable_demo", ["postgresql"], indirect=True)
def test_postgres_several_server_processes_share_the_limits_and_lose_no_vote(
    writable_demo: DemoData,
) -> None:
    """Two processes (`serve --workers 2`): a network's votes are limited to the limit in
    all, not twice it; every vote answered 2xx is stored."""
    import httpx
    from bs4 import BeautifulSoup

    from app.models import Vote
    from app.web.devserver import serve_in_subprocess

    settings = {
        "FLUX_PLAYGROUND_DATABASE_URL": writable_demo.database_url,
        "FLUX_PLAYGROUND_MEDIA_DIR": str(writable_demo.media_dir),
        "FLUX_PLAYGROUND_SECRET_KEY": "several-processes-test",
        "FLUX_PLAYGROUND_ARENA_NETWORK_VOTES_PER_MINUTE": "4",
        "FLUX_PLAYGROUND_ARENA_NETWORK_NEW_RATERS_PER_HOUR": "100",
    }
    statuses = []
    with serve_in_subprocess(settings, workers=2, timeout_s=60) as base:
        for _ in range(12):
            # A new connection (and cookie) each time: the kernel spreads them over both.
            with httpx.Client(base_url=base) as client:
                page = client.get("/arena", params={"run": writable_demo.run_id})
                token = BeautifulSoup(page.text, "html.parser").select_one("input[name=token]")
                assert token is not None
                voted = client.post(
                    "/arena/vote", data={"token": str(token["value"]), "outcome": "tie"}
                )
                statuses.append(voted.status_code)
    stored = statuses.count(303)
    assert set(statuses) <= {303, 429}
    assert 1 <= stored <= 4, statuses  # 2 per process: 4 in all, never 8
    engine = make_engine(writable_demo.database_url)
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Vote)) == stored
    engine.dispose()
