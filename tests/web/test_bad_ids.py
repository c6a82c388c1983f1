"""Ids beyond 64 bits (or below 1) are a client's mistake: a 4xx with a reason, never an
overflow in the database driver (a 500 and a logged traceback)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import DemoData

HUGE = str(2**64)

URLS = [
    f"/?run={HUGE}",
    f"/prompts?run={HUGE}",
    f"/prompts?page={HUGE}",
    f"/prompts/{HUGE}",
    f"/prompts/1?seed={HUGE}",
    f"/dashboard?run={HUGE}",
    f"/runs/{HUGE}",
    f"/leaderboard?run={HUGE}",
    f"/arena?run={HUGE}",
    f"/arena/images/{HUGE}/left",
    f"/arena/reveal/{HUGE}",
    f"/api/v1/runs/{HUGE}",
    "/?run=0",
    "/runs/-1",
]


@pytest.mark.parametrize("url", URLS)
def test_bad_ids_answered_4xx(demo_client: TestClient, demo_data: DemoData, url: str) -> None:
    response = demo_client.get(url, headers={"Accept": "text/html"})
    assert 400 <= response.status_code < 500, (url, response.status_code)
