"""The overview in a real browser."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .conftest import LiveServer


def test_overview_e2e_sort_swaps_cards_in_place(page: Page, live_server: LiveServer) -> None:
    page.goto(f"{live_server.url}/?run={live_server.run_id}")
    expect(page.locator("article.variant-card")).to_have_count(4)
    page.locator("a.sort-link[data-sort='name']").click()
    expect(page.locator("#variant-cards")).to_have_attribute("data-sort", "name")
    names = page.locator("article.variant-card h3").all_inner_texts()
    assert names == sorted(names)
    # htmx swapped the cards and pushed the URL; the page itself was not reloaded.
    assert "sort=name" in page.url
    expect(page.locator("nav.mainnav")).to_have_count(1)


def test_overview_e2e_every_page_opens(page: Page, live_server: LiveServer) -> None:
    for path in ("/", "/prompts", "/dashboard", "/runs", f"/runs/{live_server.run_id}", "/docs"):
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == 200, path
        expect(page.locator("body")).to_be_visible()
