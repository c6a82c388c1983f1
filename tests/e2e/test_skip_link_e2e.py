"""The skip link (templates/base.html) by keyboard in a real Chromium: the first Tab of a page
reaches it, Enter moves the focus to <main>, and the next Tab lands on the first control in
main, past the site's navigation. And the scrollable tables' regions (.table-wrap) by
keyboard."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import LiveServer
from .test_accessibility_e2e import ADMIN_TOKEN, A11yServer, a11y_server, checked_page

__all__ = ["a11y_server"]  # the accessibility tests' server (with an admin token), reused

PAGES = [
    "/?run={run}",
    "/prompts?run={run}",
    "/dashboard?run={run}",
    "/arena?run={run}",
    "/leaderboard?run={run}",
    "/runs",
    "/runs/{run}",
    "/hardware",
    "/no-such-page",
    "/docs",
]

# The first element inside main that Tab reaches: focusable, not disabled, rendered, and
# not taken out of the tab order (positive tabindex is not used in this app).
FIRST_CONTROL_IN_MAIN = """() => {
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary,'
    + ' [tabindex]:not([tabindex="-1"]), [contenteditable=""], [contenteditable=true]';
  const main = document.getElementById("main");
  for (const el of main.querySelectorAll(selector)) {
    if (el.matches(":disabled") || el.getAttribute("tabindex") === "-1") continue;
    if (el.closest("[inert], [hidden]")) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (getComputedStyle(el).visibility === "hidden") continue;
    return el.outerHTML.slice(0, 200);
  }
  return null;
}"""

FOCUSED = "() => document.activeElement ? document.activeElement.outerHTML.slice(0, 200) : null"


@pytest.fixture
def any_page(browser: Browser) -> Iterator[Page]:
    """Like conftest's `page`, but a 4xx document (the not-found page) is no console error."""
    with checked_page(browser, 1280, 900) as page:
        yield page


def skip_through(page: Page, where: str) -> None:
    """From a freshly loaded page: Tab, Enter, Tab."""
    skip = page.locator("body > a.skip-link")
    expect(skip).to_have_count(1)
    expect(skip).to_have_attribute("href", "#main")
    first_in_body = "() => document.body.querySelector('a[href], button, input, select, textarea')"
    assert page.evaluate(f"({first_in_body})().className") == "skip-link", where
    # Out of sight until it has the focus.
    box = skip.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 0, (where, box)

    page.keyboard.press("Tab")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    box = skip.bounding_box()
    assert box is not None and box["y"] >= 0 and box["height"] > 0, (where, box)

    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()
    assert page.url.endswith("#main"), where

    first = page.evaluate(FIRST_CONTROL_IN_MAIN)
    assert first is not None, f"{where}: nothing to Tab to in main"
    page.keyboard.press("Tab")
    focused = page.evaluate(FOCUSED)
    assert focused == first, f"{where}: Tab after the skip link went to {focused}, not {first}"


@pytest.mark.parametrize("path", PAGES)
def test_skip_link_e2e_first_tab_then_enter_skips_the_navigation(
    any_page: Page, live_server: LiveServer, path: str
) -> None:
    page = any_page
    page.goto(live_server.url + path.format(run=live_server.run_id), wait_until="networkidle")
    if path == "/docs":
        expect(page.locator("#swagger-ui .opblock").first).to_be_visible()
    skip_through(page, path)


def test_skip_link_e2e_admin_pages(any_page: Page, a11y_server: A11yServer) -> None:
    page = any_page
    response = page.goto(f"{a11y_server.url}/admin", wait_until="networkidle")
    assert response is not None and response.status == 401
    # The sign-in form is the page's one purpose: its field has the focus from the start,
    # inside main, so there is nothing to skip.
    token = page.get_by_label("Admin token")
    expect(token).to_be_focused()
    assert page.evaluate("() => document.activeElement.closest('main') !== null")
    token.fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).to_contain_text("Admin: panels, raters and votes")
    page.reload(wait_until="networkidle")
    skip_through(page, "/admin (signed in)")


def test_skip_link_e2e_table_region_scrolls_by_keyboard(
    page: Page, live_server: LiveServer
) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/hardware", wait_until="networkidle")
    wrap = page.locator(".table-wrap").first
    expect(wrap).to_have_attribute("role", "region")
    expect(wrap).to_have_attribute("tabindex", "0")
    assert (wrap.get_attribute("aria-label") or "").strip()
    assert wrap.evaluate("el => el.scrollWidth > el.clientWidth"), "the table fits: no test"
    hint = "el => getComputedStyle(el, '::before').content"
    assert "scroll →" in wrap.evaluate(hint)

    is_focused = "el => document.activeElement === el"
    for _ in range(60):  # Tab through the page until the region has the focus
        page.keyboard.press("Tab")
        if wrap.evaluate(is_focused):
            break
    expect(wrap).to_be_focused()
    ring = wrap.evaluate("el => [el.matches(':focus-visible'), getComputedStyle(el).outlineStyle]")
    assert ring[0] and ring[1] != "none", ring
    first_cell = wrap.locator("tbody tr > :first-child").first
    left_before = (first_cell.bounding_box() or {})["x"]
    at_end = "el => el.scrollLeft + el.clientWidth >= el.scrollWidth - 1"
    for _ in range(60):  # the arrow key scrolls the focused region, a few dozen px a press
        if wrap.evaluate(at_end):
            break
        page.keyboard.press("ArrowRight")
    expect(wrap).to_be_focused()
    page.wait_for_function(at_end, arg=wrap.element_handle())
    assert "← scroll" in wrap.evaluate(hint)
    # The first column (the variant's name) stays in view on a narrow screen.
    assert (first_cell.bounding_box() or {})["x"] == pytest.approx(left_before, abs=1)

    # Back to the start by keyboard: the hint says so again.
    for _ in range(60):
        if wrap.evaluate("el => el.scrollLeft === 0"):
            break
        page.keyboard.press("ArrowLeft")
    page.wait_for_function("el => el.scrollLeft === 0", arg=wrap.element_handle())
    assert "scroll →" in wrap.evaluate(hint)
    # Wide enough for the table: no hint. (Chromium 156 keeps a finished scroll-driven
    # animation's last frame when its scroller stops overflowing, so a region widened while
    # scrolled to its very end keeps "← scroll" until it overflows again.)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.wait_for_function("el => el.scrollWidth <= el.clientWidth", arg=wrap.element_handle())
    assert wrap.evaluate(hint) in ('""', "none", "normal")
