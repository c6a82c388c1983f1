"""The arena by keyboard, in a real browser: the shortcuts act only while the arena box has
the focus and never on a key the focused control uses; their switch is remembered; the Tab
order of the vote buttons is their order on screen; a vote that fails says so (on the page
and in the live region), with and without JavaScript; images are not blown up past twice
their natural width."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Route, expect
from sqlalchemy import select

from app.arena.matchups import Offer, open_offer
from app.config import DEFAULT_SECRET_KEY
from app.db import make_engine, session_scope
from app.models import Matchup, Vote

from .conftest import LiveServer

VOTE_PATH = "/arena/vote"
VOTE_ORDER = ["left", "tie", "both_bad", "right"]
# What Chromium and htmx log for a request that failed on purpose in these tests.
FAILED_REQUEST = re.compile(
    r"Failed to load resource: "
    r"(the server responded with a status of (400|409|500)|net::ERR_FAILED)"
    r"|Response Status Error Code 500 from /arena/vote"
    r"|htmx:(sendError|afterRequest)"
)
AXE = sorted(Path(__file__).resolve().parents[2].glob("static/vendor/axe-core-*.min.js"))

OpenArena = Callable[..., Page]


def offer_of(page: Page) -> Offer:
    # The live server runs with the default key (it serves on loopback only).
    return open_offer(DEFAULT_SECRET_KEY, page.locator("input[name=token]").input_value(), 900)


def vote_of(live_server: LiveServer, offer: Offer) -> Vote | None:
    engine = make_engine(live_server.database_url)
    try:
        with session_scope(engine) as session:
            answered = select(Matchup.id).where(Matchup.nonce == offer.nonce)
            vote = session.scalars(select(Vote).where(Vote.matchup_id.in_(answered))).first()
            if vote is not None:
                session.expunge(vote)
            return vote
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def patient_expect() -> Iterator[None]:
    """expect() waits as long as the page's actions (10 s, conftest): the test machine is
    shared, and a vote through a loaded server can take more than the default 5 s."""
    expect.set_options(timeout=10_000)
    yield
    expect.set_options(timeout=5_000)


@pytest.fixture
def open_arena(browser: Browser, live_server: LiveServer) -> Iterator[OpenArena]:
    """Opens the arena in a fresh browser context of the given size. Console errors fail the
    test, except those of requests a test made fail (`expected_failures=True`)."""
    contexts = []
    errors: list[str] = []

    def open_(
        width: int = 1280,
        height: int = 900,
        *,
        expected_failures: bool = False,
        javascript: bool = True,
    ) -> Page:
        context = browser.new_context(
            viewport={"width": width, "height": height}, java_script_enabled=javascript
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and not (
                expected_failures and FAILED_REQUEST.search(message.text)
            ):
                errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{live_server.url}/arena?run={live_server.run_id}")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert errors == [], f"browser console errors: {errors}"


def vote_posts(page: Page) -> list[str]:
    """The vote requests the page sends from now on."""
    posts: list[str] = []

    def on_request(request: Request) -> None:
        if request.method == "POST" and VOTE_PATH in request.url:
            posts.append(request.url)

    page.on("request", on_request)
    return posts


def tamper(page: Page) -> None:
    """Spoil the form's matchup token (its signature no longer holds)."""
    page.locator("input[name=token]").evaluate("input => { input.value = 'x' + input.value }")


def focus_arena(page: Page) -> None:
    """As a rater does: a click in the arena box (on the prompt, not on a button)."""
    page.locator("#arena-stage .arena-prompt").click()
    expect(page.locator("#arena-stage")).to_be_focused()


def test_arena_keyboard_keys_outside_the_arena_or_on_a_link_do_not_vote(
    open_arena: OpenArena, live_server: LiveServer
) -> None:
    # A short window: the page scrolls, so ↓ has something to do.
    page = open_arena(1440, 400)
    posts = vote_posts(page)
    stage = page.locator("#arena-stage")
    offer = offer_of(page)
    # Whether ↓ was left to the browser (which scrolls with it) is read from the event, seen
    # last, on window: waiting for the scroll itself raced Chromium's smooth-scroll animation
    # (one fresh-clone run in three timed out, issue 21).
    page.evaluate(
        "window.keysSeen = [];"
        " window.addEventListener('keydown',"
        " (e) => window.keysSeen.push([e.key, e.defaultPrevented]))"
    )

    def arrow_down_left_to_the_browser() -> None:
        page.evaluate("window.keysSeen = []")
        page.keyboard.press("ArrowDown")
        assert page.evaluate("window.keysSeen") == [["ArrowDown", False]]

    # On the "Leaderboard →" link: ↓ scrolls the page, nothing votes.
    leaderboard = page.locator(".arena .section-head > a[href^='/leaderboard']")
    leaderboard.focus()
    arrow_down_left_to_the_browser()
    expect(leaderboard).to_be_focused()
    page.wait_for_function("window.scrollY > 0")  # and the browser did scroll with it
    for key in ("ArrowLeft", "ArrowRight", "1", "2", "t", "b"):
        page.keyboard.press(key)

    # Nothing focused (the body): ↓ is the browser's, the vote keys do nothing.
    page.evaluate("document.activeElement.blur()")
    arrow_down_left_to_the_browser()
    for key in ("ArrowLeft", "1", "t", "b"):
        page.keyboard.press(key)

    # In the arena, ↓ is still the browser's: it is not a shortcut.
    focus_arena(page)
    arrow_down_left_to_the_browser()

    # Let any request the keys might have started arrive.
    page.wait_for_timeout(500)
    assert posts == []
    expect(stage).to_have_attribute("data-state", "matchup")
    assert offer_of(page).nonce == offer.nonce
    assert vote_of(live_server, offer) is None


def test_arena_keyboard_shortcuts_vote_while_the_arena_has_focus(
    open_arena: OpenArena, live_server: LiveServer
) -> None:
    page = open_arena()
    stage = page.locator("#arena-stage")
    live = page.locator("#arena-live")
    expect(page.locator("#arena-shortcuts")).to_be_checked()  # on by default
    expect(page.locator("button.vote-left")).to_have_attribute("aria-keyshortcuts", "ArrowLeft 1")
    expect(page.locator("button.vote-left .keys")).to_be_visible()

    first = offer_of(page)
    focus_arena(page)
    page.keyboard.press("1")
    expect(stage).to_have_attribute("data-state", "reveal")
    expect(stage.locator(".arena-reveal")).to_have_attribute("data-outcome", "left")
    expect(live).to_have_text("Vote saved: left is better.")
    next_link = stage.locator("a.arena-next")
    expect(next_link).to_be_focused()
    expect(next_link).to_have_attribute("aria-keyshortcuts", "N Enter")

    page.keyboard.press("n")
    expect(stage).to_have_attribute("data-state", "matchup")
    expect(stage).to_be_focused()
    expect(live).to_have_text("New pair loaded.")
    second = offer_of(page)
    assert second.nonce != first.nonce

    # On a vote button: the arrows are not the button's, so → votes right.
    page.keyboard.press("Tab")
    expect(page.locator("button.vote-left")).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(stage.locator(".arena-reveal")).to_have_attribute("data-outcome", "right")

    stored = [vote_of(live_server, offer) for offer in (first, second)]
    assert [v.outcome.value if v else None for v in stored] == ["left", "right"]


def test_arena_keyboard_switch_turns_shortcuts_off_and_is_remembered(
    open_arena: OpenArena,
) -> None:
    page = open_arena()
    posts = vote_posts(page)
    stage = page.locator("#arena-stage")
    switch = page.locator("#arena-shortcuts")
    left = page.locator("button.vote-left")
    expect(page.get_by_label("Keyboard shortcuts")).to_be_checked()

    switch.click()
    expect(switch).not_to_be_checked()
    # Off: no hints, and no aria-keyshortcuts for keys that do nothing.
    expect(left.locator(".keys")).to_be_hidden()
    expect(left).not_to_have_attribute("aria-keyshortcuts", re.compile(".*"))
    focus_arena(page)
    for key in ("1", "ArrowLeft", "t", "b"):
        page.keyboard.press(key)

    page.reload()
    expect(switch).not_to_be_checked()
    expect(left.locator(".keys")).to_be_hidden()
    focus_arena(page)
    page.keyboard.press("2")
    page.wait_for_timeout(500)
    assert posts == []
    expect(stage).to_have_attribute("data-state", "matchup")

    # Back on, by keyboard, and remembered as on.
    switch.focus()
    page.keyboard.press("Space")
    expect(switch).to_be_checked()
    expect(left.locator(".keys")).to_be_visible()
    page.reload()
    expect(switch).to_be_checked()
    focus_arena(page)
    page.keyboard.press("2")
    expect(stage.locator(".arena-reveal")).to_have_attribute("data-outcome", "right")
    assert len(posts) == 1


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1440, 900)])
def test_arena_keyboard_tab_order_of_the_votes_is_their_order_on_screen(
    open_arena: OpenArena, width: int, height: int
) -> None:
    page = open_arena(width, height)
    buttons = page.locator(".arena-buttons button")
    expect(buttons).to_have_count(4)
    # On screen: top to bottom, then left to right.
    boxes = []
    for button in buttons.all():
        box = button.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
        boxes.append((round(box["y"]), box["x"], button.get_attribute("value")))
    on_screen = [value for _, _, value in sorted(boxes)]

    # By Tab, from the control just before the arena box.
    page.locator("#arena-shortcuts").focus()
    tabbed: list[str] = []
    for _ in range(8):
        page.keyboard.press("Tab")
        value = page.evaluate(
            "document.activeElement.matches('.arena-buttons button')"
            " ? document.activeElement.value : null"
        )
        if value is None and tabbed:
            break
        if value is not None:
            tabbed.append(value)

    assert tabbed == on_screen == VOTE_ORDER
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_arena_keyboard_failed_votes_say_so(open_arena: OpenArena, live_server: LiveServer) -> None:
    page = open_arena(expected_failures=True)
    stage = page.locator("#arena-stage")
    live = page.locator("#arena-live")
    failure = stage.locator(".arena-failure")
    next_link = stage.locator("a.arena-next")
    vote_url = f"{live_server.url}/arena/vote?run={live_server.run_id}"
    # The browser's vote requests go through one route set up before anything is clicked,
    # told below what to do with them: a route added just before a key press once let the
    # vote through to the server (a full suite's run, 1 of 3).
    votes_do = ["go on"]

    def vote_route(route: Route) -> None:
        if votes_do[0] == "answer 500":
            route.fulfill(status=500, body="boom")
        elif votes_do[0] == "fail":
            route.abort()
        else:
            route.continue_()

    page.route(f"**{VOTE_PATH}*", vote_route)
    focus_arena(page)

    # Replayed: the token was used (from this browser's cookie) before the key is pressed.
    token = page.locator("input[name=token]").input_value()
    used = page.request.post(vote_url, form={"token": token, "outcome": "tie"}, max_redirects=0)
    assert used.status == 303
    page.keyboard.press("1")
    expect(stage).to_have_attribute("data-state", "message")
    expect(stage.locator(".arena-message")).to_have_attribute("data-status", "409")
    expect(stage.locator(".reason")).to_have_text("this matchup has already been answered")
    expect(live).to_have_text(
        "Vote not saved: this pair was already answered; load a new pair to go on."
    )
    expect(next_link).to_be_focused()
    page.keyboard.press("n")
    expect(stage).to_have_attribute("data-state", "matchup")

    # Tampered: the server cannot read the token.
    tamper(page)
    page.keyboard.press("b")
    expect(stage.locator(".arena-message")).to_have_attribute("data-status", "400")
    expect(live).to_have_text("Vote not saved: invalid matchup token; load a new pair to go on.")
    next_link.click()
    expect(stage).to_have_attribute("data-state", "matchup")

    # A server error, then no network: the pair stays, with the message under the buttons.
    offer = offer_of(page)
    focus_arena(page)
    votes_do[0] = "answer 500"
    page.keyboard.press("2")
    expect(failure).to_have_text("Vote not saved: the server answered with error 500; try again.")
    expect(live).to_have_text("Vote not saved: the server answered with error 500; try again.")
    votes_do[0] = "fail"
    page.locator("button.vote-right").click()
    expect(failure).to_have_text("Vote not saved: the server could not be reached; try again.")
    expect(live).to_have_text("Vote not saved: the server could not be reached; try again.")
    expect(stage).to_have_attribute("data-state", "matchup")
    assert vote_of(live_server, offer) is None

    # Trying again, with the server back, counts the vote.
    votes_do[0] = "go on"
    page.locator("button.vote-right").click()
    expect(stage.locator(".arena-reveal")).to_have_attribute("data-outcome", "right")
    expect(failure).to_have_count(0)
    stored = vote_of(live_server, offer)
    assert stored is not None and stored.outcome.value == "right"


def test_arena_keyboard_failed_vote_without_javascript_shows_the_reason(
    open_arena: OpenArena, live_server: LiveServer
) -> None:
    page = open_arena(javascript=False, expected_failures=True)
    token = page.locator("input[name=token]").input_value()
    vote_url = f"{live_server.url}/arena/vote?run={live_server.run_id}"
    used = page.request.post(vote_url, form={"token": token, "outcome": "tie"}, max_redirects=0)
    assert used.status == 303
    # Without JS, neither the switch nor key hints: there are no shortcuts.
    expect(page.locator(".arena-keys")).to_be_hidden()
    expect(page.locator("button.vote-left .keys")).to_be_hidden()

    with page.expect_response(lambda response: VOTE_PATH in response.url) as answer:
        page.locator("button.vote-left").click()
    assert answer.value.status == 409
    message = page.locator("#arena-stage .arena-message")
    expect(message.locator("h2")).to_contain_text("Already answered")
    expect(message.locator(".reason")).to_have_text("this matchup has already been answered")
    expect(message.locator("a.arena-next")).to_have_attribute(
        "href", f"/arena?run={live_server.run_id}"
    )
    message.locator("a.arena-next").click()
    expect(page.locator("#arena-stage")).to_have_attribute("data-state", "matchup")


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1440, 900)])
def test_arena_keyboard_images_are_shown_at_most_twice_their_natural_width(
    open_arena: OpenArena, width: int, height: int
) -> None:
    page = open_arena(width, height)
    stage = page.locator("#arena-stage")
    for state in ("matchup", "reveal"):
        expect(stage).to_have_attribute("data-state", state)
        images = stage.locator(".arena-side img")
        expect(images).to_have_count(2)
        for img in images.all():
            expect(img).to_have_js_property("complete", True)
            shown, natural = img.evaluate(
                "el => [el.getBoundingClientRect().width, el.naturalWidth]"
            )
            assert natural > 0
            assert natural <= shown <= 2 * natural + 0.5, (state, shown, natural)
        if state == "matchup":
            page.locator("button.vote-tie").click()


@pytest.mark.skipif(not AXE, reason="axe-core is not vendored")
def test_arena_keyboard_axe_finds_no_violations(open_arena: OpenArena) -> None:
    page = open_arena(expected_failures=True)
    stage = page.locator("#arena-stage")
    for state in ("matchup", "reveal", "message"):
        if state == "reveal":
            page.locator("button.vote-left").click()
        elif state == "message":
            page.keyboard.press("n")
            expect(stage).to_have_attribute("data-state", "matchup")
            tamper(page)
            page.locator("button.vote-left").click()
        expect(stage).to_have_attribute("data-state", state)
        page.add_script_tag(path=AXE[-1])
        violations = page.evaluate(
            """async () => {
                const tags = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"];
                const result = await axe.run(document, { runOnly: tags });
                return result.violations.map(
                    v => `${v.id}: ${v.nodes.map(n => n.target.join(" ")).join(", ")}`);
            }"""
        )
        assert violations == [], (state, violations)
