"""The arena in a real browser: ten votes by keyboard, each revealed, then the leaderboard."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from app.arena.matchups import Offer, open_offer
from app.config import DEFAULT_SECRET_KEY
from app.db import make_engine, session_scope
from app.models import Matchup, Variant, VariantStatus, Vote

from .conftest import LiveServer

# A mix of the four answers, by their keys; attention checks are answered "t" (a tie), as an
# attentive rater would, so that this rater is not flagged and every real vote counts.
KEYS = ["ArrowLeft", "ArrowRight", "t", "b", "ArrowLeft", "t", "ArrowRight", "b", "t", "ArrowLeft"]
OUTCOMES = {"ArrowLeft": "left", "ArrowRight": "right", "t": "tie", "b": "both_bad"}


def offer_of(token: str) -> Offer:
    # The live server runs with the default key (it serves on loopback only).
    return open_offer(DEFAULT_SECRET_KEY, token, max_age_s=900)


def test_arena_e2e_ten_keyboard_votes_reach_the_leaderboard(
    page: Page, live_server: LiveServer
) -> None:
    engine = make_engine(live_server.database_url)
    with session_scope(engine) as session:
        finished = set(
            session.scalars(
                select(Variant.name).where(
                    Variant.run_id == live_server.run_id, Variant.status == VariantStatus.done
                )
            )
        )
    board = page.locator("#leaderboard")
    page.goto(f"{live_server.url}/leaderboard?run={live_server.run_id}")
    before = int(board.get_attribute("data-votes-total") or "nan")

    page.goto(f"{live_server.url}/arena?run={live_server.run_id}")
    # Survives only if every later step swaps the stage in place instead of loading a page.
    page.evaluate("window.arenaMarker = 1")
    stage = page.locator("#arena-stage")
    # The shortcuts act while the focus is in the arena box: a click in it, as a rater would.
    stage.locator(".arena-prompt").click()
    nonces: list[str] = []
    counted = 0
    for n, key in enumerate(KEYS):
        expect(stage).to_have_attribute("data-state", "matchup")
        offer = offer_of(page.locator("input[name=token]").input_value())
        assert offer.nonce not in nonces
        nonces.append(offer.nonce)
        for img in page.locator(".arena-side img").all():
            expect(img).to_have_js_property("complete", True)
            assert img.evaluate("el => el.naturalWidth") > 0
        attention = offer.attention_check
        if attention:
            key = "t"
        counted += not attention

        page.keyboard.press(key)
        expect(stage).to_have_attribute("data-state", "reveal")
        reveal = stage.locator(".arena-reveal")
        expect(reveal).to_have_attribute("data-outcome", OUTCOMES[key])
        expect(reveal).to_have_attribute("data-attention-check", "true" if attention else "false")
        names = stage.locator(".arena-side .variant-name").all_inner_texts()
        assert len(names) == 2 and set(names) <= finished, names
        assert (names[0] == names[1]) is attention
        expect(stage.locator(".arena-side .latency")).to_have_count(2)
        # "Next" has the focus: Enter follows it; "n" works from anywhere.
        expect(stage.locator("a.arena-next")).to_be_focused()
        page.keyboard.press("Enter" if n % 2 else "n")

    expect(stage).to_have_attribute("data-state", "matchup")
    assert page.evaluate("window.arenaMarker") == 1

    with session_scope(engine) as session:
        answered = select(Matchup.id).where(Matchup.nonce.in_(nonces))
        votes = list(session.scalars(select(Vote).where(Vote.matchup_id.in_(answered))))
        assert len(votes) == 10
        assert sum(not v.attention_check for v in votes) == counted
        assert {v.outcome.value for v in votes} >= {"left", "right", "tie"}
        rater_votes = session.scalar(
            select(func.count()).select_from(Vote).where(Vote.rater_id == votes[0].rater_id)
        )
        assert rater_votes == 10
    engine.dispose()

    page.goto(f"{live_server.url}/leaderboard?run={live_server.run_id}")
    expect(board).to_have_attribute("data-votes-total", str(before + counted))
