"""The gallery by keyboard in a real browser: "Load more" appends the next rows and puts focus
on the first new prompt (not on <body>, where the next Tab would go back to the logo); a
polite live region says one sentence per change; without JavaScript the pager's links page
through; thumbnails are never drawn wider than twice their natural width."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from .conftest import LiveServer, assert_shown_at_most_twice_natural


def gallery_url(server: LiveServer, query: str = "") -> str:
    return f"{server.url}/prompts?run={server.run_id}{query}"


def last_link(row: Locator) -> Locator:
    return row.locator("a[href]").last


def focused_is_body(page: Page) -> bool:
    return bool(page.evaluate("document.activeElement === document.body"))


def test_gallery_keyboard_load_more_focuses_the_first_new_row(
    page: Page, live_server: LiveServer
) -> None:
    page.goto(gallery_url(live_server, "&per_page=2"))
    rows = page.locator("article.prompt-row")
    expect(rows).to_have_count(2)
    button = page.get_by_role("button", name="Load 2 more prompts")
    expect(button).to_be_visible()
    # With htmx the button takes the "Next" link's place (same URL, appended in place).
    expect(page.locator("#load-more a[rel=next]")).to_be_hidden()
    # From the last row's last link, the next Tab is the button.
    last_link(rows.nth(1)).focus()
    page.keyboard.press("Tab")
    expect(button).to_be_focused()
    page.keyboard.press("Enter")

    expect(rows).to_have_count(4)
    third = rows.nth(2)
    expect(third.locator("a.prompt-text")).to_be_focused()
    assert not focused_is_body(page)
    status = page.locator("#gallery-status")
    expect(status).to_have_text("2 more prompts loaded, 1–4 of 6 shown.")
    # Reading goes on from there: the next Tab is the same row's next link.
    page.keyboard.press("Tab")
    expect(third.locator("a.tag-category")).to_be_focused()
    assert "&page=" not in page.url  # appended, not a new page

    # Again, with Space this time, up to the last page: no button left.
    last_link(rows.nth(3)).focus()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Load 2 more prompts")).to_be_focused()
    page.keyboard.press("Space")
    expect(rows).to_have_count(6)
    expect(rows.nth(4).locator("a.prompt-text")).to_be_focused()
    expect(status).to_have_text("2 more prompts loaded, 1–6 of 6 shown.")
    expect(page.locator("#load-more")).to_have_text("1–6 of 6")
    expect(page.locator("#load-more button, #load-more a")).to_have_count(0)
    ids = rows.evaluate_all("rows => rows.map(r => r.dataset.promptId)")
    assert len(set(ids)) == 6


def test_gallery_keyboard_filter_keeps_focus_and_says_one_sentence(
    page: Page, live_server: LiveServer
) -> None:
    page.goto(gallery_url(live_server))
    results = page.locator("#results")
    status = page.locator("#gallery-status[role=status]")
    expect(status).to_have_text("")
    assert results.get_attribute("aria-live") is None
    category = page.get_by_role("combobox", name="Category")
    category.focus()
    category.select_option("Animals")
    expect(page.locator("article.prompt-row")).to_have_count(2)
    expect(status).to_have_text("2 prompts shown, filtered by category Animals.")
    # The form is outside the swapped results: focus stays on the control just used.
    expect(category).to_be_focused()
    search = page.get_by_role("searchbox", name="Search")
    search.focus()
    search.press_sequentially("zebra")
    expect(status).to_have_text("No prompts match “zebra”, category Animals.")
    expect(search).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.press("Backspace")
    expect(status).to_have_text("2 prompts shown, filtered by category Animals.")
    expect(search).to_be_focused()


def test_gallery_keyboard_without_js_pages_with_links(
    browser: Browser, live_server: LiveServer
) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(gallery_url(live_server, "&per_page=2"))
    expect(page.locator("#load-more button")).to_be_hidden()
    next_link = page.get_by_role("link", name="Next →")
    expect(next_link).to_be_visible()
    next_link.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**page=2**")
    rows = page.locator("article.prompt-row")
    expect(rows).to_have_count(2)
    expect(page.locator("#load-more")).to_contain_text("3–4 of 6")
    expect(page.get_by_role("link", name="← Previous")).to_be_visible()
    context.close()


@pytest.mark.parametrize("width", [1440, 390])
def test_gallery_thumbnails_no_wider_than_twice_their_own(
    browser: Browser, live_server: LiveServer, width: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        page = context.new_page()
        page.goto(gallery_url(live_server))
        images = page.locator("article.prompt-row img")
        assert_shown_at_most_twice_natural(images, 18)
    finally:
        context.close()
