"""The arena pages `/arena`, `/arena/vote`, `/arena/reveal/{id}`, `/arena/images/{id}/{side}`,
on a private copy of the real demo run (tests/conftest.py), each test on SQLite and again on
PostgreSQL. Every refusal is checked twice: its status, and that the number of votes in the
database did not change."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from bs4 import BeautifulSoup, Tag
from fastapi.testclient import TestClient
from itsdangerous import URLSafeSerializer
from sqlalchemy import Engine, func, select, update

import app.arena.matchups
from app.arena.matchups import ArenaError, Offer, open_offer, seal_offer
from app.config import Settings
from app.db import make_engine, session_scope
from app.models import (
    Generation,
    Matchup,
    Panel,
    Prompt,
    Rater,
    Run,
    Variant,
    VariantStatus,
    Vote,
    VoteOutcome,
)
from app.web.arena.rater_cookie import RATER_COOKIE, RATER_SALT
from app.web.arena.vote_form import MAX_VOTE_BODY_BYTES
from app.web.main import create_app
from tests.conftest import DemoData

SECRET = "test-secret"  # writable_client's
HX = {"HX-Request": "true"}
FORM = "application/x-www-form-urlencoded"


# Each test that writes runs on a copy of the web test run on SQLite and on PostgreSQL.
pytestmark = pytest.mark.both_databases


@pytest.fixture(autouse=True)
def no_attention_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Votes in these tests are on real pairs unless a test asks for attention checks."""
    monkeypatch.setattr(app.arena.matchups, "ATTENTION_RATE", 0.0)


@dataclass
class Db:
    engine: Engine
    run_id: int

    def votes(self) -> int:
        with session_scope(self.engine) as session:
            return session.scalar(select(func.count()).select_from(Vote)) or 0

    def raters(self) -> int:
        with session_scope(self.engine) as session:
            return session.scalar(select(func.count()).select_from(Rater)) or 0

    def vote_networks(self) -> set[str | None]:
        with session_scope(self.engine) as session:
            return set(session.scalars(select(Vote.network)))

    def matchups(self) -> int:
        with session_scope(self.engine) as session:
            return session.scalar(select(func.count()).select_from(Matchup)) or 0

    def matchup(self, offer: Offer) -> Matchup | None:
        """The matchup stored for an offer (by its vote), if any."""
        with session_scope(self.engine) as session:
            row = session.scalars(select(Matchup).where(Matchup.nonce == offer.nonce)).first()
            if row is not None:
                session.expunge(row)
            return row

    def get(self, model: type[Any], key: object) -> Any:
        with session_scope(self.engine) as session:
            row = session.get(model, key)
            if row is not None:
                session.expunge(row)
            return row

    def variant_names(self) -> dict[int, str]:
        with session_scope(self.engine) as session:
            return {vid: name for vid, name in session.execute(select(Variant.id, Variant.name))}

    def generation(self, variant_id: int, prompt_id: int, seed: int) -> Generation:
        with session_scope(self.engine) as session:
            g = session.scalars(
                select(Generation).where(
                    Generation.variant_id == variant_id,
                    Generation.prompt_id == prompt_id,
                    Generation.seed == seed,
                )
            ).one()
            session.expunge(g)
            return g


@pytest.fixture
def db(writable_demo: DemoData) -> Iterator[Db]:
    engine = make_engine(writable_demo.database_url)
    yield Db(engine, writable_demo.run_id)
    engine.dispose()


@pytest.fixture
def make_client(writable_demo: DemoData) -> Iterator[Callable[..., TestClient]]:
    """A client on the writable copy with some settings changed (same secret key)."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        settings = Settings(
            database_url=writable_demo.database_url,
            media_dir=writable_demo.media_dir,
            secret_key=SECRET,
            page_cache_s=0,
            **overrides,
        )
        client = TestClient(create_app(settings))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@dataclass(frozen=True)
class Shown:
    """One matchup page as the browser gets it."""

    status: int
    soup: BeautifulSoup
    token: str
    offer: Offer

    @property
    def rater_id(self) -> str:
        return self.offer.rater_id

    @property
    def stage(self) -> Tag:
        stage = self.soup.select_one("#arena-stage")
        assert stage is not None
        return stage


def open_matchup(client: TestClient, run_id: int, **params: str) -> Shown:
    response = client.get("/arena", params={"run": str(run_id), **params})
    assert response.status_code == 200, response.text
    soup = BeautifulSoup(response.text, "html.parser")
    token_input = soup.select_one("form.arena-form input[name=token]")
    assert token_input is not None
    token = str(token_input["value"])
    return Shown(response.status_code, soup, token, open_offer(SECRET, token, max_age_s=900))


def cast(
    client: TestClient,
    token: str,
    outcome: str = "left",
    headers: dict[str, str] | None = None,
    path: str = "/arena/vote",
) -> Any:
    return client.post(
        path,
        data={"token": token, "outcome": outcome},
        headers=headers,
        follow_redirects=False,
    )


def cookie_rater(client: TestClient) -> str:
    value = client.cookies.get(RATER_COOKIE)
    assert value is not None
    rater_id = URLSafeSerializer(SECRET, salt=RATER_SALT).loads(value)
    assert isinstance(rater_id, str)
    return rater_id


def sealed_at(offer: Offer, unix_time: float, key: str = SECRET) -> str:
    """The offer sealed as if at `unix_time` (Fernet reads the clock when it encrypts)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "time", lambda: unix_time)
        return seal_offer(key, offer)


# 1. The matchup page.


def test_arena_first_visit_sets_signed_cookie_and_hides_names(
    writable_client: TestClient, db: Db
) -> None:
    response = writable_client.get("/arena", params={"run": db.run_id})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{RATER_COOKIE}=")
    assert "HttpOnly" in set_cookie
    assert "samesite=lax" in set_cookie.lower()
    assert "Max-Age=31536000" in set_cookie
    rater_id = cookie_rater(writable_client)
    # A page view writes nothing: the rater and the matchup are stored with the first vote.
    assert (db.raters(), db.matchups()) == (0, 0)

    soup = BeautifulSoup(response.text, "html.parser")
    stage = soup.select_one("#arena-stage[data-state=matchup]")
    assert stage is not None
    images = stage.select(".arena-side img")
    assert len(images) == 2
    srcs = [str(img["src"]) for img in images]
    assert srcs[0] != srcs[1]
    page_text = stage.get_text(" ")
    for name in db.variant_names().values():
        assert name not in page_text
        assert all(f"/{name}/" not in src and name not in src for src in srcs)
        assert all(name not in str(img.get("alt", "")) for img in images)
    # The prompt of the issued matchup, escaped (one prompt has a <script> in it).
    assert stage.select("script") == []
    form = stage.select_one("form.arena-form")
    assert form is not None
    assert form["method"] == "post" and str(form["action"]).startswith("/arena/vote")
    assert str(form["hx-post"]).startswith("/arena/vote")
    buttons = {str(b["value"]): b for b in form.select("button[name=outcome]")}
    assert set(buttons) == {o.value for o in VoteOutcome}
    keys = {value: [k.get_text() for k in b.select("kbd")] for value, b in buttons.items()}
    assert keys == {
        "left": ["←", "1"],
        "right": ["→", "2"],
        "tie": ["t", "3"],
        "both_bad": ["b", "4"],
    }

    # A second visit keeps the rater: no new cookie, no new rater.
    again = writable_client.get("/arena", params={"run": db.run_id})
    assert "set-cookie" not in again.headers
    assert cookie_rater(writable_client) == rater_id
    assert (db.raters(), db.matchups()) == (0, 0)


def test_arena_matchup_markup_for_keyboard_and_screen_readers(
    writable_client: TestClient, db: Db
) -> None:
    soup = open_matchup(writable_client, db.run_id).soup
    stage = soup.select_one("#arena-stage")
    assert stage is not None
    # The buttons in the order they are shown (arena.css never reorders them).
    buttons = stage.select(".arena-buttons button[name=outcome]")
    assert [b["value"] for b in buttons] == ["left", "tie", "both_bad", "right"]
    # ↓ is no shortcut (it scrolls). The keys are announced (aria-keyshortcuts) only once
    # arena.js has switched them on; the hints are for the eye.
    assert [b["data-keys"] for b in buttons] == ["ArrowLeft 1", "T 3", "B 4", "ArrowRight 2"]
    assert soup.select("[aria-keyshortcuts]") == []
    assert all(k.get("aria-hidden") == "true" for k in soup.select(".keys"))
    # The switch and its list of keys, shown by arena.js only (no JS, no shortcuts).
    keys = soup.select_one(".arena .arena-keys")
    assert keys is not None and keys.has_attr("hidden")
    switch = keys.select_one("label input#arena-shortcuts[type=checkbox]")
    assert switch is not None and switch.find_parent("label").get_text(strip=True) == (
        "Keyboard shortcuts"
    )
    help_text = soup.select_one(f"#{switch['aria-describedby']}")
    assert help_text is not None and "focus is in the arena box" in help_text.get_text()
    # One live region, outside the stage that htmx swaps.
    live = soup.select("[role=status], [role=alert], [aria-live]")
    assert [(el.get("id"), el.get("role")) for el in live] == [("arena-live", "status")]
    assert stage.select_one("#arena-live") is None
    # The images' natural width, for the display cap in arena.css.
    width = stage.select_one(".arena-side img")
    assert width is not None
    assert stage["style"] == f"--img-w: {width['width']}px"


def test_arena_matchups_skip_failed_variant_and_show_one_prompt_and_seed(
    writable_client: TestClient, writable_demo: DemoData, db: Db
) -> None:
    names = db.variant_names()
    seen: set[frozenset[str]] = set()
    for _ in range(30):
        shown = open_matchup(writable_client, db.run_id)
        matchup = shown.offer
        pair = frozenset((names[matchup.left_variant_id], names[matchup.right_variant_id]))
        assert "schnell-fp8" not in pair  # failed: it has no images
        assert len(pair) == 2
        seen.add(pair)
        prompt = shown.stage.select_one(".arena-prompt q")
        assert prompt is not None
        assert prompt.get_text() == db.get(Prompt, matchup.prompt_id).text
        for side, variant_id in (
            ("left", matchup.left_variant_id),
            ("right", matchup.right_variant_id),
        ):
            generation = db.generation(variant_id, matchup.prompt_id, matchup.seed)
            image = writable_client.get(f"/arena/images/{shown.token}/{side}")
            assert image.status_code == 200
            assert image.headers["content-type"] == "image/png"
            public = (writable_demo.media_dir / generation.image_path).read_bytes()
            # Same pixels, other bytes: no hash, size or ETag names the public file.
            assert _pixels(image.content) == _pixels(public)
            assert image.content != public and len(image.content) != len(public)
            assert "etag" not in image.headers
            again = writable_client.get(f"/arena/images/{shown.token}/{side}")
            assert again.content != image.content
    assert len(seen) >= 2


# 2. A valid vote.


def test_arena_valid_vote_is_stored_then_revealed(writable_client: TestClient, db: Db) -> None:
    shown = open_matchup(writable_client, db.run_id)
    response = cast(writable_client, shown.token, "right")
    # Without htmx: post/redirect/get to the reveal page.
    assert response.status_code == 303
    matchup = db.matchup(shown.offer)
    assert matchup is not None and matchup.answered_at is not None
    assert response.headers["location"] == f"/arena/reveal/{matchup.id}"
    assert db.votes() == 1
    assert (matchup.left_variant_id, matchup.right_variant_id) == (
        shown.offer.left_variant_id,
        shown.offer.right_variant_id,
    )
    # The rater is written with their first vote.
    assert db.get(Rater, shown.rater_id) is not None
    with session_scope(db.engine) as session:
        vote = session.scalars(select(Vote)).one()
        assert vote.matchup_id == matchup.id
        assert vote.rater_id == shown.rater_id == cookie_rater(writable_client)
        assert vote.outcome == VoteOutcome.right
        assert (vote.left_variant_id, vote.right_variant_id) == (
            matchup.left_variant_id,
            matchup.right_variant_id,
        )
        assert (vote.run_id, vote.prompt_id, vote.seed) == (
            db.run_id,
            matchup.prompt_id,
            matchup.seed,
        )
        assert vote.attention_check is False
        assert vote.panel_id is None

    reveal = writable_client.get(response.headers["location"])
    assert reveal.status_code == 200
    soup = BeautifulSoup(reveal.text, "html.parser")
    stage = soup.select_one("#arena-stage[data-state=reveal]")
    assert stage is not None
    names = db.variant_names()
    shown_names = [n.get_text() for n in stage.select(".arena-side .variant-name")]
    assert shown_names == [names[matchup.left_variant_id], names[matchup.right_variant_id]]
    assert len(stage.select(".arena-side .latency")) == 2
    chosen = stage.select(".arena-side.chosen")
    assert [c["data-side"] for c in chosen] == ["right"]
    next_link = stage.select_one("a.arena-next")
    assert next_link is not None and next_link["href"] == f"/arena?run={db.run_id}"
    assert next_link.has_attr("autofocus")


def test_arena_vote_as_json(writable_client: TestClient, db: Db) -> None:
    shown = open_matchup(writable_client, db.run_id)
    response = cast(writable_client, shown.token, "tie", {"Accept": "application/json"})
    assert response.status_code == 201
    body = response.json()
    matchup = db.matchup(shown.offer)
    assert matchup is not None
    names = db.variant_names()
    assert body["outcome"] == "tie" and body["matchup_id"] == matchup.id
    assert body["left"]["variant"] == names[matchup.left_variant_id]
    assert body["right"]["variant"] == names[matchup.right_variant_id]
    assert body["left"]["latency_s"] > 0
    assert db.votes() == 1


def test_arena_htmx_returns_only_the_fragment(writable_client: TestClient, db: Db) -> None:
    writable_client.get("/arena", params={"run": db.run_id})  # the cookie
    response = writable_client.get("/arena", params={"run": db.run_id}, headers=HX)
    assert response.status_code == 200
    assert "<html" not in response.text
    soup = BeautifulSoup(response.text, "html.parser")
    assert soup.select("nav.mainnav") == []
    stage = soup.select_one("#arena-stage[data-state=matchup]")
    assert stage is not None
    token = stage.select_one("input[name=token]")
    assert token is not None

    voted = cast(writable_client, str(token["value"]), "both_bad", HX)
    assert voted.status_code == 200
    assert "<html" not in voted.text
    stage = BeautifulSoup(voted.text, "html.parser").select_one("#arena-stage[data-state=reveal]")
    assert stage is not None
    assert len(stage.select(".variant-name")) == 2
    assert stage.select(".arena-side.chosen") == []  # "both bad" picks no side
    next_link = stage.select_one("a.arena-next")
    assert next_link is not None
    assert next_link["hx-get"] == f"/arena?run={db.run_id}"
    assert next_link["hx-target"] == "#arena-stage"
    assert db.votes() == 1


# 3. Tokens that must not count.


def test_arena_forged_token_is_refused(writable_client: TestClient, db: Db) -> None:
    shown = open_matchup(writable_client, db.run_id)
    forged = seal_offer("another-key", shown.offer)
    response = cast(writable_client, forged)
    assert response.status_code == 400
    assert "invalid matchup token" in response.text
    assert db.votes() == 0


def test_arena_tampered_token_is_refused(writable_client: TestClient, db: Db) -> None:
    shown = open_matchup(writable_client, db.run_id)
    first = shown.token[0]
    tampered = ("A" if first != "A" else "B") + shown.token[1:]
    response = cast(writable_client, tampered)
    assert response.status_code == 400
    assert (db.votes(), db.matchups()) == (0, 0)


def test_arena_expired_token_is_refused(writable_client: TestClient, db: Db) -> None:
    shown = open_matchup(writable_client, db.run_id)
    # The same offer, sealed with the right key an hour ago (the lifetime is 900 s).
    old = sealed_at(shown.offer, time.time() - 3600)
    response = cast(writable_client, old)
    assert response.status_code == 410
    assert "expired" in response.text
    assert db.votes() == 0
    # The fresh token of the same matchup still counts.
    assert cast(writable_client, shown.token).status_code == 303
    assert db.votes() == 1


def test_arena_replayed_token_is_refused(writable_client: TestClient, db: Db) -> None:
    shown = open_matchup(writable_client, db.run_id)
    assert cast(writable_client, shown.token, "left").status_code == 303
    again = cast(writable_client, shown.token, "right")
    assert again.status_code == 409
    assert "already been answered" in again.text
    assert db.votes() == 1
    with session_scope(db.engine) as session:
        assert session.scalars(select(Vote.outcome)).one() == VoteOutcome.left


def test_arena_token_of_another_rater_is_refused(writable_client: TestClient, db: Db) -> None:
    mine = open_matchup(writable_client, db.run_id)
    writable_client.cookies.clear()
    other = open_matchup(writable_client, db.run_id)
    assert other.rater_id != mine.rater_id
    # The other rater's cookie with my token.
    response = cast(writable_client, mine.token)
    assert response.status_code == 403
    assert "another rater" in response.text
    # No cookie at all.
    writable_client.cookies.clear()
    assert cast(writable_client, mine.token).status_code == 403
    assert db.votes() == 0


def test_arena_offer_names_no_variant(writable_client: TestClient, db: Db) -> None:
    """The token is encrypted, not only signed: nothing in it reads as the pair."""
    for _ in range(10):
        shown = open_matchup(writable_client, db.run_id)
        padded = shown.token + "=" * (-len(shown.token) % 4)
        raw = base64.urlsafe_b64decode(padded)
        offer = shown.offer
        plain = f"{offer.left_variant_id},{offer.right_variant_id}".encode()
        assert plain not in raw and offer.rater_id.encode() not in raw
        assert offer.nonce.encode() not in raw
        with pytest.raises(ArenaError):
            open_offer("another-key", shown.token, max_age_s=900)


def test_arena_flood_over_the_rate_limit_is_refused(
    make_client: Callable[..., TestClient], db: Db
) -> None:
    client = make_client(arena_votes_per_minute=3)
    for _ in range(3):
        assert cast(client, open_matchup(client, db.run_id).token).status_code == 303
    shown = open_matchup(client, db.run_id)
    response = cast(client, shown.token)
    assert response.status_code == 429
    assert "at most 3 a minute" in response.text
    assert (db.votes(), db.matchups()) == (3, 3)


# 4. Bodies and origins.


def test_arena_oversized_body_is_refused(writable_client: TestClient, db: Db) -> None:
    shown = open_matchup(writable_client, db.run_id)
    body = f"token={shown.token}&outcome=left&pad={'x' * MAX_VOTE_BODY_BYTES}".encode()
    response = writable_client.post(
        "/arena/vote", content=body, headers={"Content-Type": FORM}, follow_redirects=False
    )
    assert response.status_code == 413
    # Without a Content-Length (chunked), the limit holds on what arrives.
    chunked = writable_client.post(
        "/arena/vote",
        content=iter([body[:2000], body[2000:]]),
        headers={"Content-Type": FORM},
        follow_redirects=False,
    )
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413
    assert db.votes() == 0
    assert cast(writable_client, shown.token).status_code == 303  # the token was not used


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("outcome=left", FORM, 422),  # no token
        ("token={token}", FORM, 422),  # no outcome
        ("token={token}&outcome=", FORM, 422),  # empty outcome
        ("token={token}&outcome=maybe", FORM, 422),  # not one of the four
        ("token={token}&outcome=left&outcome=right", FORM, 422),  # twice
        ("", FORM, 422),
        ("token", FORM, 400),  # not a form
        (b"token=%ff&outcome=left", FORM, 400),  # not UTF-8
        ('{{"token": "{token}", "outcome": "left"}}', "application/json", 415),
        ("token={token}&outcome=left", "text/plain", 415),
        ("token={token}&outcome=left", None, 415),
    ],
)
def test_arena_malformed_body_is_refused(
    writable_client: TestClient,
    db: Db,
    body: str | bytes,
    content_type: str | None,
    status: int,
) -> None:
    shown = open_matchup(writable_client, db.run_id)
    content = body if isinstance(body, bytes) else body.format(token=shown.token).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    response = writable_client.post(
        "/arena/vote", content=content, headers=headers, follow_redirects=False
    )
    assert response.status_code == status, response.text
    soup = BeautifulSoup(response.text, "html.parser")
    assert soup.select_one("#arena-stage .arena-message .reason") is not None
    assert (db.votes(), db.matchups()) == (0, 0)


def test_arena_cross_origin_post_is_refused(writable_client: TestClient, db: Db) -> None:
    shown = open_matchup(writable_client, db.run_id)
    for origin in ("https://evil.example", "http://testserver.evil.example", "null"):
        response = cast(writable_client, shown.token, headers={"Origin": origin})
        assert response.status_code == 403, origin
        assert "cross-origin" in response.text
    assert db.votes() == 0
    # The same request from this host counts.
    assert (
        cast(writable_client, shown.token, headers={"Origin": "http://testserver"}).status_code
        == 303
    )
    assert db.votes() == 1


def test_arena_refusals_as_json_and_as_htmx_fragment(writable_client: TestClient, db: Db) -> None:
    shown = open_matchup(writable_client, db.run_id)
    assert cast(writable_client, shown.token).status_code == 303
    as_json = cast(writable_client, shown.token, headers={"Accept": "application/json"})
    assert as_json.status_code == 409
    assert as_json.json() == {"detail": "this matchup has already been answered"}
    # The form posts to /arena/vote?run=ID: the refusal links to that run's next matchup.
    fragment = cast(writable_client, shown.token, headers=HX, path=f"/arena/vote?run={db.run_id}")
    assert fragment.status_code == 409
    assert "<html" not in fragment.text
    stage = BeautifulSoup(fragment.text, "html.parser").select_one("#arena-stage")
    assert stage is not None and stage["data-state"] == "message"
    next_link = stage.select_one("a.arena-next")
    assert next_link is not None and next_link["hx-get"] == f"/arena?run={db.run_id}"
    assert db.votes() == 1


def test_arena_refused_vote_without_js_is_a_page_with_its_reason(
    writable_client: TestClient, db: Db
) -> None:
    """A plain form post (no htmx) that is refused gets the whole arena page, a 4xx, the
    reason and a link to a new matchup: never a 500, never a bare error."""
    shown = open_matchup(writable_client, db.run_id)
    assert cast(writable_client, shown.token).status_code == 303
    tampered = ("A" if shown.token[0] != "A" else "B") + shown.token[1:]
    path = f"/arena/vote?run={db.run_id}"
    for token, status, reason in (
        (shown.token, 409, "this matchup has already been answered"),
        (tampered, 400, "invalid matchup token"),
    ):
        response = cast(writable_client, token, path=path)
        assert response.status_code == status
        soup = BeautifulSoup(response.text, "html.parser")
        assert soup.select_one("header nav a[aria-current=page]") is not None  # the whole page
        message = soup.select_one(f"#arena-stage .arena-message[data-status='{status}']")
        assert message is not None
        assert message.select_one("h2") is not None
        reason_el = message.select_one(".reason")
        assert reason_el is not None and reason_el.get_text() == reason
        next_link = message.select_one("a.arena-next")
        assert next_link is not None and next_link["href"] == f"/arena?run={db.run_id}"
    # A run id that is not a number: a 4xx with the reason as well.
    bad_run = cast(writable_client, shown.token, path="/arena/vote?run=abc")
    assert bad_run.status_code == 422
    reasons = BeautifulSoup(bad_run.text, "html.parser").select(".reasons li")
    assert [li.get_text().split(":")[0] for li in reasons] == ["run"]
    assert db.votes() == 1


# 5. Raters, panels, attention checks.


def test_arena_tampered_rater_cookie_makes_a_new_rater(writable_client: TestClient, db: Db) -> None:
    first = open_matchup(writable_client, db.run_id)
    # Someone else's id, signed with another key; then plain garbage.
    forged = URLSafeSerializer("another-key", salt=RATER_SALT).dumps(first.rater_id)
    for value in (forged, "garbage", first.rater_id):
        writable_client.cookies.clear()
        response = writable_client.get(
            "/arena", params={"run": db.run_id}, headers={"Cookie": f"{RATER_COOKIE}={value}"}
        )
        assert response.status_code == 200
        assert f"{RATER_COOKIE}=" in response.headers["set-cookie"]
        assert cookie_rater(writable_client) != first.rater_id
    assert db.raters() == 0  # page views only
    # ... and such a cookie cannot vote with the real rater's token.
    writable_client.cookies.clear()
    response = cast(writable_client, first.token, headers={"Cookie": f"{RATER_COOKIE}={forged}"})
    assert response.status_code == 403
    assert db.votes() == 0


def test_arena_panel_link_joins_the_panel(writable_client: TestClient, db: Db) -> None:
    with session_scope(db.engine) as session:
        panel = Panel(code="lab-7", name="Lab <7>")
        session.add(panel)
        session.flush()
        panel_id = panel.id
    shown = open_matchup(writable_client, db.run_id, panel="lab-7")
    assert shown.offer.panel_id == panel_id
    name = shown.stage.select_one(".panel-name")
    assert name is not None and name.get_text() == "Lab <7>"
    assert cast(writable_client, shown.token).status_code == 303
    assert db.get(Rater, shown.rater_id).panel_id == panel_id
    # The rater stays in the panel without the link; another panel's link does not move them.
    with session_scope(db.engine) as session:
        session.add(Panel(code="other", name="Other"))
    for params in ({}, {"panel": "other"}):
        again = open_matchup(writable_client, db.run_id, **params)
        assert again.offer.panel_id == panel_id
        assert cast(writable_client, again.token).status_code == 303
    assert db.get(Rater, shown.rater_id).panel_id == panel_id
    with session_scope(db.engine) as session:
        assert set(session.scalars(select(Vote.panel_id))) == {panel_id}


def test_arena_unknown_panel_is_not_found(writable_client: TestClient, db: Db) -> None:
    response = writable_client.get("/arena", params={"run": db.run_id, "panel": "nope"})
    assert response.status_code == 404
    reasons = BeautifulSoup(response.text, "html.parser").select(".reasons li")
    assert [r.get_text() for r in reasons] == ["unknown panel code 'nope'"]
    assert "set-cookie" not in response.headers
    assert (db.raters(), db.matchups(), db.votes()) == (0, 0, 0)


def test_arena_attention_check_shows_one_image_twice_and_flags_after_two_misses(
    writable_client: TestClient, db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.arena.matchups, "ATTENTION_RATE", 1.0)
    for n in (1, 2):
        shown = open_matchup(writable_client, db.run_id)
        matchup = shown.offer
        assert matchup.attention_check
        assert matchup.left_variant_id == matchup.right_variant_id
        srcs = [str(img["src"]) for img in shown.stage.select(".arena-side img")]
        assert srcs[0] != srcs[1]  # the URLs do not give the check away ...
        left, right = (writable_client.get(src).content for src in srcs)
        # ... the images are the same picture, but a script comparing bytes sees two.
        assert _pixels(left) == _pixels(right) and left != right

        response = cast(writable_client, shown.token, "left", HX)
        assert response.status_code == 200
        stage = BeautifulSoup(response.text, "html.parser").select_one("#arena-stage")
        assert stage is not None
        reveal = stage.select_one(".arena-reveal[data-attention-check=true]")
        assert reveal is not None
        assert stage.select_one(".attention-note.missed") is not None
        rater = db.get(Rater, shown.rater_id)
        assert rater.attention_failed == n
        assert rater.flagged is (n == 2)
    assert db.votes() == 2


def test_arena_attention_check_passed_with_a_tie(
    writable_client: TestClient, db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.arena.matchups, "ATTENTION_RATE", 1.0)
    shown = open_matchup(writable_client, db.run_id)
    response = cast(writable_client, shown.token, "tie", HX)
    stage = BeautifulSoup(response.text, "html.parser")
    assert stage.select_one(".attention-note.passed") is not None
    rater = db.get(Rater, shown.rater_id)
    assert (rater.attention_passed, rater.attention_failed, rater.flagged) == (1, 0, False)


# 6. The edges.


def test_arena_fewer_than_two_finished_variants(writable_client: TestClient, db: Db) -> None:
    with session_scope(db.engine) as session:
        session.execute(
            update(Variant)
            .where(Variant.name.in_(["dev", "dev-turbo"]))
            .values(status=VariantStatus.failed)
        )
    response = writable_client.get("/arena", params={"run": db.run_id})
    assert response.status_code == 409
    soup = BeautifulSoup(response.text, "html.parser")
    message = soup.select_one("#arena-stage .arena-message")
    assert message is not None
    assert "fewer than two finished variants" in message.get_text()
    assert soup.select("form.arena-form") == []


def test_arena_no_runs_yet(database_url: str, tmp_path: Any) -> None:
    settings = Settings(database_url=database_url, media_dir=tmp_path / "media", page_cache_s=0)
    with TestClient(create_app(settings)) as client:
        response = client.get("/arena")
    assert response.status_code == 200
    message = BeautifulSoup(response.text, "html.parser").select_one(".arena-message h2")
    assert message is not None and message.get_text() == "No runs yet"


def test_arena_unknown_run_is_not_found(writable_client: TestClient, db: Db) -> None:
    response = writable_client.get("/arena", params={"run": 999})
    assert response.status_code == 404
    assert db.raters() == 0


def test_arena_images_and_reveals_are_private(writable_client: TestClient, db: Db) -> None:
    shown = open_matchup(writable_client, db.run_id)
    assert cast(writable_client, shown.token).status_code == 303
    matchup = db.matchup(shown.offer)
    assert matchup is not None
    assert writable_client.get(f"/arena/images/{shown.token}/left").status_code == 200
    assert writable_client.get(f"/arena/reveal/{matchup.id}").status_code == 200
    assert writable_client.get(f"/arena/images/{shown.token}/middle").status_code == 422
    assert writable_client.get(f"/arena/images/{shown.token[:-4]}/left").status_code == 400
    writable_client.cookies.clear()
    assert writable_client.get(f"/arena/images/{shown.token}/left").status_code == 404
    assert writable_client.get(f"/arena/reveal/{matchup.id}").status_code == 404


def test_arena_small_image_is_the_image_scaled_down(
    writable_client: TestClient,
    writable_demo: DemoData,
    db: Db,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from PIL import Image

    import app.web.arena.pages

    def size(png: bytes) -> tuple[int, int]:
        with Image.open(io.BytesIO(png)) as image:
            return image.size

    # The demo's images (64 px) are smaller than the small version: no srcset.
    shown = open_matchup(writable_client, db.run_id)
    img = shown.stage.select_one(".arena-side[data-side=left] img")
    assert img is not None and not img.has_attr("srcset")
    small = writable_client.get(f"/arena/images/{shown.token}/left", params={"size": "small"})
    assert small.status_code == 200 and size(small.content) == (64, 64)  # never scaled up

    monkeypatch.setattr(app.web.arena.pages, "SMALL_SIDE", 32)
    shown = open_matchup(writable_client, db.run_id)
    url = f"/arena/images/{shown.token}/left"
    img = shown.stage.select_one(".arena-side[data-side=left] img")
    assert img is not None
    assert img["src"] == url
    assert img["srcset"] == f"{url}?size=small 32w, {url} 64w"
    assert img["sizes"]
    full, small = writable_client.get(url), writable_client.get(url, params={"size": "small"})
    assert (full.status_code, small.status_code) == (200, 200)
    assert small.headers["content-type"] == "image/png"
    assert (size(full.content), size(small.content)) == ((64, 64), (32, 32))
    # The variant's pixels scaled down (no lossy thumbnail in between), in bytes of their own.
    offer = shown.offer
    generation = db.generation(offer.left_variant_id, offer.prompt_id, offer.seed)
    with Image.open(writable_demo.media_dir / generation.image_path) as image:
        image.thumbnail((32, 32), Image.Resampling.LANCZOS)
        assert _pixels(small.content) == image.convert("RGB").tobytes()
    assert small.content != writable_client.get(url, params={"size": "small"}).content
    assert writable_client.get(url, params={"size": "huge"}).status_code == 422


def _pixels(png: bytes) -> bytes:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return image.convert("RGB").tobytes()


def test_arena_vote_from_a_client_that_went_away_is_a_4xx(writable_client: TestClient) -> None:
    async def post_then_disconnect() -> list[dict[str, object]]:
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/arena/vote",
            "raw_path": b"/arena/vote",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"testserver"),
                (b"content-type", b"application/x-www-form-urlencoded"),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        await writable_client.app(scope, receive, send)  # type: ignore[arg-type]
        return sent

    assert writable_client.portal is not None
    sent = writable_client.portal.call(post_then_disconnect)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 400


# Networks: a cookie costs a bot nothing, an address does.


def _fresh_cookie_votes(client: TestClient, run_id: int, n: int, **headers: str) -> list[int]:
    """n votes, each from a fresh rater (cookie cleared before each matchup): the statuses."""
    statuses = []
    for _ in range(n):
        client.cookies.clear()
        page = client.get("/arena", params={"run": str(run_id)}, headers=headers)
        if page.status_code != 200:
            statuses.append(page.status_code)
            continue
        soup = BeautifulSoup(page.text, "html.parser")
        token_input = soup.select_one("form.arena-form input[name=token]")
        assert token_input is not None
        statuses.append(cast(client, str(token_input["value"]), headers=headers).status_code)
    return statuses


def test_arena_fresh_cookies_do_not_escape_the_network_vote_limit(
    make_client: Callable[..., TestClient], db: Db
) -> None:
    client = make_client(arena_network_votes_per_minute=5)
    statuses = _fresh_cookie_votes(client, db.run_id, 8)
    assert statuses == [303] * 5 + [429] * 3
    assert db.votes() == 5


def test_arena_new_raters_per_network_are_limited(
    make_client: Callable[..., TestClient], db: Db
) -> None:
    client = make_client(arena_network_new_raters_per_hour=3)
    # Page views make no raters; first votes do, three an hour from one network.
    assert _fresh_cookie_votes(client, db.run_id, 5) == [303] * 3 + [429] * 2
    assert (db.raters(), db.votes()) == (3, 3)
    client.cookies.clear()
    shown = open_matchup(client, db.run_id)
    refused = cast(client, shown.token, headers={"Accept": "application/json"})
    assert refused.status_code == 429
    assert "too many new raters from your network" in refused.json()["detail"]


def test_arena_forwarded_for_believed_only_from_trusted_proxies(
    make_client: Callable[..., TestClient], db: Db
) -> None:
    # Untrusted: a rotating X-Forwarded-For is ignored, the peer's address is the network.
    untrusted = make_client(arena_network_votes_per_minute=3)
    rotating = [
        _fresh_cookie_votes(untrusted, db.run_id, 1, **{"X-Forwarded-For": f"198.51.100.{n}"})[0]
        for n in range(5)
    ]
    assert rotating == [303] * 3 + [429] * 2
    # Trusted (the test client's peer is "testclient"): each forwarded network its own.
    trusted = make_client(arena_network_votes_per_minute=3, trusted_proxies="testclient")
    forwarded = [
        _fresh_cookie_votes(trusted, db.run_id, 1, **{"X-Forwarded-For": f"203.0.113.{n}"})[0]
        for n in range(5)
    ]
    assert forwarded == [303] * 5
    assert {f"203.0.113.{n}" for n in range(5)} <= db.vote_networks()


def test_arena_panel_study_refuses_uninvited_raters_and_counts_panels_only(
    writable_client: TestClient, db: Db
) -> None:
    with session_scope(db.engine) as session:
        session.execute(update(Run).where(Run.id == db.run_id).values(arena="panels"))
        session.add(Panel(code="lab-9", name="Lab 9"))
    refused = writable_client.get("/arena", params={"run": str(db.run_id)})
    assert refused.status_code == 403
    assert "panel study" in refused.text
    assert (db.raters(), db.matchups()) == (0, 0)
    # Through the invitation link: a matchup, a vote, and it counts.
    shown = open_matchup(writable_client, db.run_id, panel="lab-9")
    assert cast(writable_client, shown.token, "left").status_code == 303
    # The same rater goes on without the link: they are in a panel now.
    again = open_matchup(writable_client, db.run_id)
    assert cast(writable_client, again.token, "right").status_code == 303
    # The page shows the newest computed view and computes the current one behind it (a
    # live page polls): look until it is in.
    deadline = time.monotonic() + 20
    while True:
        board = writable_client.get(f"/leaderboard?run={db.run_id}")
        page = BeautifulSoup(board.text, "html.parser")
        if page.select_one(".votes-total").get_text() == "2" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert "invited panels only" in page.select_one(".counted-who").get_text()
    assert page.select_one(".votes-total").get_text() == "2"
