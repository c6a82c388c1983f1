"""The dashboard's price control and figures in a real Chromium: the reason a price is
refused (with and without JavaScript), one live sentence when costs follow a new price, the
JavaScript number formats equal to the server's, the table on a 390 px phone; and the
leaderboard's one-sentence announcement of new votes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from app.numbers import fixed, fmt_sig, fmt_usd
from app.web.dashboard import fmt_price, price_error
from tests.arena.test_leaderboard import MIXED, add_votes
from tests.conftest import DemoData

from .conftest import LiveServer, server_on_a_copy

COST_COLUMNS = ("cost", "amortized")
PHONE = {"width": 390, "height": 844}


def _dashboard(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.url}/dashboard?run={server.run_id}")
    expect(page.locator("#dashboard-data")).to_be_attached()


def _column(page: Page, cell: str) -> list[tuple[float | None, str]]:
    """(data-value, text) of every variant's `cell`, in table order."""
    out = []
    for td in page.locator(f"tr.variant-row td.{cell}").all():
        raw = td.get_attribute("data-value")
        out.append((None if raw is None else float(raw), td.inner_text().strip()))
    return out


def _set_price(page: Page, price: str) -> None:
    """Type a valid price and wait until the swapped figures are at it."""
    page.locator("#usd-per-hour").fill(price)
    expect(page.locator(".price-in-effect")).to_have_text(fmt_price(float(price)))


@pytest.mark.parametrize("price", ["3.6", "0.09", "2.5", "999"])
def test_dashboard_price_e2e_js_costs_equal_server_costs(
    page: Page, live_server: LiveServer, price: str
) -> None:
    _dashboard(page, live_server)
    if price != "3.6":
        _set_price(page, price)
    compared = 0
    for cell in COST_COLUMNS:
        column = _column(page, cell)
        values = [value for value, _ in column]
        # The page's own formatter (static/js/numbers.js), on the same column.
        in_js = page.evaluate(
            "values => values.map(v => window.FluxNumbers.fmtUsd(v, values))", values
        )
        for (value, text), js in zip(column, in_js, strict=True):
            assert js == text == fmt_usd(value, values), (cell, value)
            compared += value is not None
    assert compared == 2 * 3  # two cost columns, three measured variants


def test_dashboard_price_e2e_js_numbers_equal_python_on_hard_cases(
    page: Page, live_server: LiveServer
) -> None:
    _dashboard(page, live_server)
    # Exact halves (0.125, 2.5), decade edges (0.09996, 999.96), a gap at the sixth figure,
    # tiny and large figures, negatives and zeros.
    columns = [
        [0.125, 0.135, 2.5, 3.5],
        [0.09996, 999.96, 0.0009996, 1e-7],
        [1.0, 1.00003, 1.000003],
        [1.0941, 1.0952, 5.0, None],
        [0.0394 * 0.09 / 3.6, 0.0323 * 0.09 / 3.6],
        [1234567.891, 1234.5, 0.0, -0.0, -2.5],
        [i / 7 for i in range(1, 30)],
        [1.005, 2.675, 1.45, 8.345e-3],
    ]
    in_js = page.evaluate(
        "columns => columns.map(c => c.map(v => [window.FluxNumbers.fmtUsd(v, c),"
        " window.FluxNumbers.fmtSig(v, c)]))",
        columns,
    )
    for column, shown in zip(columns, in_js, strict=True):
        for value, (usd, plain) in zip(column, shown, strict=True):
            assert usd == fmt_usd(value, column), value
            assert plain == fmt_sig(value, column), value
    fixed_cases = [(0.125, 2), (2.5, 0), (-2.5, 0), (1.005, 2), (-0.0001, 2), (1234567.891, 1)]
    in_js_fixed = page.evaluate(
        "cases => cases.map(([v, d]) => window.FluxNumbers.fixed(v, d))", fixed_cases
    )
    assert in_js_fixed == [fixed(v, d) for v, d in fixed_cases]


@pytest.mark.parametrize("typed", ["", "-1", "1e9", "abc"])
def test_dashboard_price_e2e_refused_price_says_why(
    page: Page, live_server: LiveServer, typed: str
) -> None:
    _dashboard(page, live_server)
    before = _column(page, "cost")
    url = page.url
    field = page.locator("#usd-per-hour")
    field.fill(typed)
    error = page.locator("#usd-per-hour-error")
    reason = price_error(typed)
    assert reason  # the server refuses it too, with this very sentence
    expect(error).to_be_visible()
    expect(error).to_have_text(reason)
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_attribute("aria-describedby", "usd-per-hour-error")
    expect(page.locator("#price-status")).to_have_text(reason)
    # Enter sends nothing either: the figures stay at the price they name.
    field.press("Enter")
    page.wait_for_timeout(400)
    assert page.url == url
    assert _column(page, "cost") == before
    expect(page.locator(".price-in-effect")).to_have_text("$3.60/h")
    # A good price clears the reason and is applied.
    _set_price(page, "7.2")
    expect(error).to_be_hidden()
    expect(field).not_to_have_attribute("aria-invalid", "true")
    assert field.get_attribute("aria-describedby") is None
    assert "usd_per_hour=7.2" in page.url


@pytest.mark.parametrize("typed", ["", "-1", "1e9", "abc"])
def test_dashboard_price_e2e_refused_price_without_javascript(
    browser: Browser, live_server: LiveServer, typed: str
) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/dashboard?run={live_server.run_id}")
        page.locator("#usd-per-hour").fill(typed)
        with page.expect_navigation() as navigation:
            page.get_by_role("button", name="Apply").click()
        response = navigation.value
        assert response is not None and response.status == 422
        field = page.locator("#usd-per-hour")
        expect(field).to_have_value(typed)
        expect(field).to_have_attribute("aria-invalid", "true")
        error = page.locator("#usd-per-hour-error")
        expect(error).to_be_visible()
        expect(error).to_have_text(str(price_error(typed)))
        expect(page.locator(".price-in-effect")).to_have_text("$3.60/h")
    finally:
        context.close()


def test_dashboard_price_e2e_live_region_says_one_sentence(
    page: Page, live_server: LiveServer
) -> None:
    _dashboard(page, live_server)
    status = page.locator("#price-status")
    expect(status).to_have_attribute("role", "status")
    expect(status).to_have_text("")
    _set_price(page, "2.5")
    expect(status).to_have_text("Costs updated for $2.50/h")
    _set_price(page, "0.37")
    expect(status).to_have_text("Costs updated for $0.37/h")
    # The only live region on the page; the swapped table is not one.
    live = page.locator("main [aria-live], main [role=status], main [role=alert]")
    assert live.evaluate_all("els => els.map(e => e.id)") == ["price-status"]


def _in_view(cell: Locator, width: int) -> bool:
    box = cell.bounding_box()
    assert box is not None
    return box["x"] >= 0 and box["x"] + box["width"] <= width


def test_dashboard_price_e2e_phone_shows_the_costs_the_price_changes(
    page: Page, live_server: LiveServer
) -> None:
    page.set_viewport_size(PHONE)
    _dashboard(page, live_server)
    _set_price(page, "7.2")
    wrap = page.locator("#dashboard-figures .table-wrap")
    expect(wrap).to_have_attribute("role", "region")
    expect(wrap).to_have_attribute("tabindex", "0")
    # The table is wider than the phone: it scrolls in its region, which says so.
    assert wrap.evaluate("el => el.scrollWidth > el.clientWidth")
    # (A scroll-driven animation shows it: polled, as it starts a frame after the swap.)
    page.wait_for_function(
        "() => { const el = document.querySelector('#dashboard-figures .table-wrap');"
        " const s = getComputedStyle(el, '::before');"
        " return s.display !== 'none' && s.content.includes('scroll') }",
        timeout=5_000,
    )
    # The cost the price changes ($ per 1k images) is in view without scrolling, and the
    # one with the compile spread over the images starts in view (how far it reaches
    # depends on the measured timings' digits, which differ from run to run; the hint
    # above says the rest scrolls).
    for row in page.locator("tr.variant-row").all():
        assert _in_view(row.locator("td.cost"), PHONE["width"])
        box = row.locator("td.amortized").bounding_box()
        assert box is not None and 0 <= box["x"] < PHONE["width"]
    # Scrolled sideways, the variant's name stays in view (sticky first column).
    name = page.locator("tr.variant-row th.name").first
    x = (name.bounding_box() or {"x": -1})["x"]
    wrap.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    page.wait_for_timeout(100)
    assert (name.bounding_box() or {"x": -2})["x"] == pytest.approx(x, abs=1)
    assert _in_view(name, PHONE["width"])


# --- leaderboard ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def voting_server(
    demo_data: DemoData, tiny_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server on a private copy of the web test run: this module adds votes to it."""
    root = tmp_path_factory.mktemp("leaderboard-e2e")
    with server_on_a_copy(demo_data.database_url, demo_data.media_dir, tiny_models, root) as (
        url,
        database_url,
    ):
        yield LiveServer(url, database_url, root / "media", tiny_models, demo_data.run_id)


def test_leaderboard_e2e_new_votes_are_announced_in_one_sentence(
    page: Page, voting_server: LiveServer
) -> None:
    page.goto(f"{voting_server.url}/leaderboard?run={voting_server.run_id}")
    board = page.locator("#leaderboard")
    expect(board).to_have_attribute("data-votes-total", "0")
    status = page.locator("#board-status")
    expect(status).to_have_attribute("role", "status")
    expect(status).to_have_text("")
    add_votes(voting_server.database_url, voting_server.run_id, MIXED)
    expect(board).to_have_attribute("data-votes-total", str(len(MIXED)), timeout=30_000)
    expect(status).to_have_text(f"{len(MIXED)} new votes; ranking updated")
    add_votes(voting_server.database_url, voting_server.run_id, [("schnell", "dev", "left")])
    expect(board).to_have_attribute("data-votes-total", str(len(MIXED) + 1), timeout=30_000)
    expect(status).to_have_text("1 new vote; ranking updated")
    # The board itself is not a live region (it would be read whole at every poll).
    assert board.get_attribute("aria-live") is None
