"""Admin: token auth (bearer and signed cookie), panels, rater flags, and the vote exports,
on a private copy of the database the real worker wrote."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import Engine, func, select

from app.arena.vote_export import COLUMNS, csv_chunks
from app.config import Settings
from app.db import make_engine, session_scope
from app.models import (
    Matchup,
    Panel,
    Prompt,
    Rater,
    Run,
    RunStatus,
    Variant,
    VariantStatus,
    Vote,
    VoteOutcome,
)
from app.web import admin
from app.web.main import create_app
from tests.conftest import DemoData

# Each test that writes runs on a copy of the web test run on SQLite and on PostgreSQL.
pytestmark = pytest.mark.both_databases


ROOT = Path(__file__).resolve().parent.parent.parent
TOKEN = "test-admin-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
FORMULA_PROMPT = '=HYPERLINK("http://evil.example","click")'
FORMULA_PANEL = "+growth team"


@dataclass(frozen=True)
class Seeded:
    run_id: int
    other_run_id: int
    panel_id: int
    panel_code: str
    rater: str  # in the panel, three counted votes and one attention check
    flagged: str  # flagged, two votes
    loner: str  # no panel, one vote in each run
    counted: frozenset[int]  # the run's votes the ranking counts
    flagged_votes: frozenset[int]
    attention_votes: frozenset[int]
    other_run_votes: frozenset[int]
    formula_vote: int


@pytest.fixture
def db(writable_demo: DemoData) -> Iterator[Engine]:
    engine = make_engine(writable_demo.database_url)
    yield engine
    engine.dispose()


def _vote(
    session: Any,
    *,
    run_id: int,
    prompt_id: int,
    left: int,
    right: int,
    rater: Rater,
    outcome: VoteOutcome,
    attention: bool = False,
) -> int:
    matchup = Matchup(
        run_id=run_id,
        prompt_id=prompt_id,
        seed=0,
        left_variant_id=left,
        right_variant_id=right,
        rater_id=rater.id,
        attention_check=attention,
    )
    session.add(matchup)
    session.flush()
    vote = Vote(
        matchup_id=matchup.id,
        run_id=run_id,
        prompt_id=prompt_id,
        seed=0,
        left_variant_id=left,
        right_variant_id=right,
        outcome=outcome,
        rater_id=rater.id,
        panel_id=rater.panel_id,
        attention_check=attention,
    )
    session.add(vote)
    session.flush()
    return vote.id


@pytest.fixture
def seeded(writable_demo: DemoData, db: Engine) -> Seeded:
    with session_scope(db) as session:
        run_id = writable_demo.run_id
        variants = {
            v.name: v.id
            for v in session.scalars(
                select(Variant).where(
                    Variant.run_id == run_id, Variant.status == VariantStatus.done
                )
            )
        }
        prompts = list(session.scalars(select(Prompt).where(Prompt.run_id == run_id)))
        prompts[0].text = FORMULA_PROMPT
        other = Run(
            name="other",
            fingerprint="f" * 32,
            config_path="other.toml",
            config={"seeds": [0]},
            prompt_set="other.tsv",
            width=64,
            height=64,
            device="cpu",
            hardware="Test CPU",
            usd_per_hour=1.0,
            warmup=0,
            repeats=1,
            status=RunStatus.done,
        )
        session.add(other)
        session.flush()
        other_prompt = Prompt(
            run_id=other.id, position=0, text="a plain prompt", category="c", challenge="c"
        )
        other_a = Variant(
            run_id=other.id, name="a", position=0, config={}, status=VariantStatus.done
        )
        other_b = Variant(
            run_id=other.id, name="b", position=1, config={}, status=VariantStatus.done
        )
        panel = Panel(code="seededcode1", name=FORMULA_PANEL)
        session.add_all([other_prompt, other_a, other_b, panel])
        session.flush()
        rater = Rater(id="a" * 32, panel_id=panel.id, attention_passed=1, attention_failed=0)
        flagged = Rater(id="b" * 32, attention_passed=0, attention_failed=2, flagged=True)
        loner = Rater(id="c" * 32, attention_passed=0, attention_failed=0)
        session.add_all([rater, flagged, loner])
        session.flush()

        dev, turbo, schnell = variants["dev"], variants["dev-turbo"], variants["schnell"]
        main = {"run_id": run_id}
        formula_vote = _vote(
            session, **main, prompt_id=prompts[0].id, left=dev, right=turbo, rater=rater,
            outcome=VoteOutcome.left,
        )  # fmt: skip
        counted = {
            formula_vote,
            _vote(session, **main, prompt_id=prompts[1].id, left=turbo, right=dev,
                  rater=rater, outcome=VoteOutcome.tie),
            _vote(session, **main, prompt_id=prompts[2].id, left=schnell, right=dev,
                  rater=rater, outcome=VoteOutcome.both_bad),
            _vote(session, **main, prompt_id=prompts[1].id, left=dev, right=schnell,
                  rater=loner, outcome=VoteOutcome.right),
        }  # fmt: skip
        attention = {
            _vote(session, **main, prompt_id=prompts[3].id, left=dev, right=dev, rater=rater,
                  outcome=VoteOutcome.tie, attention=True),
        }  # fmt: skip
        flagged_votes = {
            _vote(session, **main, prompt_id=prompts[0].id, left=dev, right=turbo,
                  rater=flagged, outcome=VoteOutcome.right),
            _vote(session, **main, prompt_id=prompts[2].id, left=turbo, right=schnell,
                  rater=flagged, outcome=VoteOutcome.left),
        }  # fmt: skip
        other_votes = {
            _vote(session, run_id=other.id, prompt_id=other_prompt.id, left=other_a.id,
                  right=other_b.id, rater=loner, outcome=VoteOutcome.left),
        }  # fmt: skip
        return Seeded(
            run_id=run_id,
            other_run_id=other.id,
            panel_id=panel.id,
            panel_code=panel.code,
            rater=rater.id,
            flagged=flagged.id,
            loner=loner.id,
            counted=frozenset(counted),
            flagged_votes=frozenset(flagged_votes),
            attention_votes=frozenset(attention),
            other_run_votes=frozenset(other_votes),
            formula_vote=formula_vote,
        )


def soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


def is_login_page(response: Any) -> bool:
    page = soup(response.text)
    return page.select_one('form[action="/admin/login"] input[name="token"]') is not None


def count(db: Engine, model: type[Any]) -> int:
    with session_scope(db) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def rater_flag(db: Engine, rater_id: str) -> bool:
    with session_scope(db) as session:
        return session.get_one(Rater, rater_id).flagged


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def parse_jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def export(client: TestClient, fmt: str, **params: Any) -> Any:
    response = client.get(f"/admin/export/votes.{fmt}", params=params, headers=BEARER)
    assert response.status_code == 200, response.text
    return response


# Auth


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ],
    ids=["none", "wrong", "empty", "basic", "longer"],
)
@pytest.mark.parametrize("path", ["/admin", "/admin/export/votes.csv", "/admin/export/votes.jsonl"])
def test_admin_without_valid_token_is_401(
    writable_client: TestClient, headers: dict[str, str], path: str
) -> None:
    response = writable_client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert is_login_page(response)
    assert "vote_id" not in response.text


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token"}])
def test_admin_unauthorized_posts_change_nothing(
    writable_client: TestClient, seeded: Seeded, db: Engine, headers: dict[str, str]
) -> None:
    panels = count(db, Panel)
    response = writable_client.post("/admin/panels", data={"name": "new"}, headers=headers)
    assert response.status_code == 401
    assert is_login_page(response)
    response = writable_client.post(
        f"/admin/raters/{seeded.rater}/flag", data={"flagged": "true"}, headers=headers
    )
    assert response.status_code == 401
    assert count(db, Panel) == panels
    assert rater_flag(db, seeded.rater) is False


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin"),
        ("GET", "/admin/export/votes.csv"),
        ("GET", "/admin/export/votes.jsonl"),
        ("POST", "/admin/login"),
        ("POST", "/admin/panels"),
        ("POST", f"/admin/raters/{'a' * 32}/flag"),
    ],
)
def test_admin_disabled_without_token_setting_is_404(
    writable_demo: DemoData, method: str, path: str
) -> None:
    settings = Settings(
        database_url=writable_demo.database_url,
        media_dir=writable_demo.media_dir,
        admin_token="",
        secret_key="test-secret",
    )
    with TestClient(create_app(settings)) as client:
        response = client.request(
            method, path, headers={"Authorization": "Bearer "}, data={"token": ""}
        )
    assert response.status_code == 404
    assert "admin pages are disabled" in soup(response.text).select_one(".reasons").text


def test_admin_bearer_token_works(writable_client: TestClient, seeded: Seeded) -> None:
    response = writable_client.get("/admin", headers=BEARER)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = soup(response.text)
    assert not is_login_page(response)
    for section in ("#panels", "#raters", "#export"):
        assert page.select_one(section) is not None


def test_admin_login_sets_signed_cookie(writable_client: TestClient) -> None:
    response = writable_client.post("/admin/login", data={"token": TOKEN}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin"
    cookie = response.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert cookie.startswith(f"{admin.COOKIE}=")
    assert {"httponly", "path", "max-age", "samesite"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "path=/admin" in cookie.lower()
    assert TOKEN not in cookie
    # The client keeps the cookie: the page now opens without a bearer header.
    response = writable_client.get("/admin")
    assert response.status_code == 200
    assert not is_login_page(response)


def test_admin_login_with_wrong_token_is_401(writable_client: TestClient) -> None:
    response = writable_client.post("/admin/login", data={"token": "guess"}, follow_redirects=False)
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert soup(response.text).select_one(".login-reason").text == "wrong admin token"
    assert writable_client.get("/admin").status_code == 401


def test_admin_token_guessing_is_locked_out_then_let_back(writable_client: TestClient) -> None:
    now = [1000.0]
    writable_client.app.state.admin_wrong_tokens = admin.WrongTokens(  # type: ignore[attr-defined]
        clock=lambda: now[0]
    )
    for n in range(admin.MAX_WRONG_TOKENS):
        guess = {"token": f"guess-{n}"}
        assert writable_client.post("/admin/login", data=guess).status_code == 401
    # Locked out: even the right token, by form or by bearer, until the first miss ages out.
    locked = writable_client.post("/admin/login", data={"token": TOKEN}, follow_redirects=False)
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == str(int(admin.WRONG_TOKEN_WINDOW_S))
    assert "too many wrong admin tokens" in locked.text
    assert writable_client.get("/admin", headers=BEARER).status_code == 429
    now[0] += admin.WRONG_TOKEN_WINDOW_S + 1
    response = writable_client.post("/admin/login", data={"token": TOKEN}, follow_redirects=False)
    assert response.status_code == 303


def test_admin_wrong_bearer_tokens_count_too(writable_client: TestClient) -> None:
    writable_client.post("/admin/login", data={"token": TOKEN})  # a session cookie
    wrong = {"Authorization": "Bearer guess"}
    for _ in range(admin.MAX_WRONG_TOKENS):
        assert writable_client.get("/admin", headers=wrong).status_code == 401
    assert writable_client.get("/admin", headers=wrong).status_code == 429
    # The session cookie is not a token guess: it still opens the page.
    assert writable_client.get("/admin").status_code == 200


def test_admin_logout_clears_cookie(writable_client: TestClient) -> None:
    writable_client.post("/admin/login", data={"token": TOKEN})
    assert writable_client.get("/admin").status_code == 200
    response = writable_client.post("/admin/logout", follow_redirects=False)
    assert response.status_code == 303
    assert writable_client.get("/admin").status_code == 401


def _fingerprint(secret: str, token: str) -> str:
    return admin._token_fingerprint(
        Settings(admin_token=token, secret_key=secret, database_url="sqlite://")
    )


def _tamper(value: str) -> str:
    # Change the first character of the signature to another valid base64 character. (Not
    # the last one: its low bits are padding, so "B" -> "A" there can decode to the same
    # signature, which made this test fail about once in four runs.)
    payload, _, signature = value.rpartition(".")
    return f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


@pytest.mark.parametrize(
    "forge",
    [
        lambda good: _tamper(good),
        lambda good: good.split(".")[0] + ".x",
        lambda good: URLSafeTimedSerializer("another-secret", salt=admin.COOKIE_SALT).dumps(
            {"t": _fingerprint("another-secret", TOKEN)}
        ),
        lambda good: URLSafeTimedSerializer("test-secret", salt="another.salt").dumps(
            {"t": _fingerprint("test-secret", TOKEN)}
        ),
        # Signed with our secret, but for an earlier admin token: changing the token logs out.
        lambda good: URLSafeTimedSerializer("test-secret", salt=admin.COOKIE_SALT).dumps(
            {"t": _fingerprint("test-secret", "old-token")}
        ),
        lambda good: URLSafeTimedSerializer("test-secret", salt=admin.COOKIE_SALT).dumps(
            {"admin": True}
        ),
    ],
    ids=["signature", "truncated", "other-secret", "other-salt", "old-token", "no-fingerprint"],
)
def test_admin_tampered_cookie_is_rejected(writable_client: TestClient, forge: Any) -> None:
    writable_client.post("/admin/login", data={"token": TOKEN})
    good = writable_client.cookies[admin.COOKIE]
    writable_client.cookies.clear()
    writable_client.cookies.set(admin.COOKIE, good)
    assert writable_client.get("/admin").status_code == 200  # the cookie set this way is sent
    writable_client.cookies.set(admin.COOKIE, forge(good))
    response = writable_client.get("/admin")
    assert response.status_code == 401
    assert is_login_page(response)


def test_admin_expired_cookie_is_rejected(
    writable_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    writable_client.post("/admin/login", data={"token": TOKEN})
    assert writable_client.get("/admin").status_code == 200
    monkeypatch.setattr(admin, "SESSION_MAX_AGE_S", -1)
    assert writable_client.get("/admin").status_code == 401


# Panels and raters


def test_admin_create_panel_shows_invite_link(writable_client: TestClient, db: Engine) -> None:
    name = '<script>alert("x")</script> Design team'
    response = writable_client.post(
        "/admin/panels", data={"name": f"  {name} "}, headers=BEARER, follow_redirects=False
    )
    assert response.status_code == 303
    with session_scope(db) as session:
        panel = session.scalars(select(Panel).where(Panel.name == name)).one()
        code, panel_id = panel.code, panel.id
    assert re.fullmatch(r"[A-Za-z0-9_-]{11}", code)  # secrets.token_urlsafe(8)
    assert response.headers["location"] == f"/admin?created={panel_id}#panels"

    page = soup(writable_client.get(response.headers["location"], headers=BEARER).text)
    row = page.select_one(f'tr.panel-row[data-panel-code="{code}"]')
    assert row is not None and "created" in row["class"]
    assert row.select_one("td.name").text == name  # escaped, shown as text
    assert page.select("script:-soup-contains('alert')") == []
    link = row.select_one("a.invite")
    assert link["href"] == f"/arena?panel={code}"
    assert link.text == f"http://testserver/arena?panel={code}"


def test_admin_create_panel_codes_are_unique(writable_client: TestClient, db: Engine) -> None:
    for _ in range(5):
        writable_client.post("/admin/panels", data={"name": "same name"}, headers=BEARER)
    with session_scope(db) as session:
        codes = session.scalars(select(Panel.code).where(Panel.name == "same name")).all()
    assert len(set(codes)) == 5


@pytest.mark.parametrize("name", ["", "   ", "x" * 129])
def test_admin_create_panel_needs_a_name(
    writable_client: TestClient, db: Engine, name: str
) -> None:
    response = writable_client.post("/admin/panels", data={"name": name}, headers=BEARER)
    assert response.status_code == 422
    assert count(db, Panel) == 0


def test_admin_lists_panels_and_raters_with_counts(
    writable_client: TestClient, seeded: Seeded
) -> None:
    page = soup(writable_client.get("/admin", headers=BEARER).text)
    panel = page.select_one(f'tr.panel-row[data-panel-code="{seeded.panel_code}"]')
    assert panel.select_one("td.name").text == FORMULA_PANEL
    assert panel.select_one("td.raters").text == "1"
    assert panel.select_one("td.votes").text == "4"  # three counted + one attention check

    rows = {row["data-rater-id"]: row for row in page.select("tr.rater-row")}
    assert set(rows) == {seeded.rater, seeded.flagged, seeded.loner}
    first = page.select("tr.rater-row")[0]
    assert first["data-rater-id"] == seeded.flagged  # flagged raters first
    expected = {
        seeded.rater: (FORMULA_PANEL, "4", "1", "0", "counted", "Flag"),
        seeded.flagged: ("—", "2", "0", "2", "flagged", "Unflag"),
        seeded.loner: ("—", "2", "0", "0", "counted", "Flag"),
    }
    for rater_id, (panel_name, votes, passed, failed, status, button) in expected.items():
        row = rows[rater_id]
        assert row.select_one("code").text == rater_id[:8]
        assert row.select_one(".panel").text == panel_name
        assert row.select_one(".votes").text == votes
        assert row.select_one(".attention-passed").text == passed
        assert row.select_one(".attention-failed").text == failed
        assert row.select_one(".status").text.strip() == status
        assert row.select_one(".flag-form button").text == button

    flagged_only = soup(writable_client.get("/admin?flagged=true", headers=BEARER).text)
    assert [r["data-rater-id"] for r in flagged_only.select("tr.rater-row")] == [seeded.flagged]


def test_admin_flag_and_unflag_rater(
    writable_client: TestClient, seeded: Seeded, db: Engine
) -> None:
    url = f"/admin/raters/{seeded.rater}/flag"
    response = writable_client.post(
        url, data={"flagged": "true", "page": "0"}, headers=BEARER, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin?page=0#rater-{seeded.rater}"
    assert rater_flag(db, seeded.rater) is True
    page = soup(writable_client.get("/admin", headers=BEARER).text)
    row = page.select_one(f'tr.rater-row[data-rater-id="{seeded.rater}"]')
    assert "flagged" in row["class"]
    assert row.select_one('input[name="flagged"]')["value"] == "false"

    response = writable_client.post(url, data={"flagged": "false"}, headers=BEARER)
    assert response.status_code == 200
    assert rater_flag(db, seeded.rater) is False
    with session_scope(db) as session:  # the attention record stays as it was
        rater = session.get_one(Rater, seeded.rater)
        assert (rater.attention_passed, rater.attention_failed) == (1, 0)


def test_admin_flag_unknown_rater_is_404(writable_client: TestClient, seeded: Seeded) -> None:
    response = writable_client.post(
        f"/admin/raters/{'f' * 32}/flag", data={"flagged": "true"}, headers=BEARER
    )
    assert response.status_code == 404


def test_admin_flag_needs_a_boolean(
    writable_client: TestClient, seeded: Seeded, db: Engine
) -> None:
    response = writable_client.post(
        f"/admin/raters/{seeded.rater}/flag", data={"flagged": "maybe"}, headers=BEARER
    )
    assert response.status_code == 422
    assert rater_flag(db, seeded.rater) is False


@pytest.mark.parametrize("origin", ["https://evil.example", "http://testserver.evil", "null"])
@pytest.mark.parametrize("auth", ["bearer", "cookie"])
def test_admin_cross_origin_post_is_403(
    writable_client: TestClient, seeded: Seeded, db: Engine, origin: str, auth: str
) -> None:
    if auth == "cookie":
        writable_client.post("/admin/login", data={"token": TOKEN})
    headers = {"Origin": origin} | (BEARER if auth == "bearer" else {})
    panels = count(db, Panel)
    for url, data in [
        ("/admin/panels", {"name": "csrf"}),
        (f"/admin/raters/{seeded.rater}/flag", {"flagged": "true"}),
        ("/admin/login", {"token": TOKEN}),
        ("/admin/logout", {}),
    ]:
        response = writable_client.post(url, data=data, headers=headers, follow_redirects=False)
        assert response.status_code == 403, url
        assert "set-cookie" not in response.headers
    assert count(db, Panel) == panels
    assert rater_flag(db, seeded.rater) is False


def test_admin_same_origin_post_is_allowed(writable_client: TestClient, db: Engine) -> None:
    response = writable_client.post(
        "/admin/panels",
        data={"name": "same origin"},
        headers=BEARER | {"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert count(db, Panel) == 1


# Exports


def in_utc(value: datetime) -> datetime:
    """SQLite hands back a naive UTC time, PostgreSQL an aware one."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def test_admin_export_csv_matches_database(
    writable_client: TestClient, seeded: Seeded, db: Engine
) -> None:
    response = export(writable_client, "csv", run=seeded.run_id)
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="votes-webtest-run{seeded.run_id}.csv"'
    )
    assert response.text.splitlines()[0] == ",".join(COLUMNS)
    rows = parse_csv(response.text)
    assert {int(row["vote_id"]) for row in rows} == seeded.counted
    assert [int(row["vote_id"]) for row in rows] == sorted(seeded.counted)

    loner = next(row for row in rows if row["rater_id"] == seeded.loner)
    with session_scope(db) as session:
        vote = session.get_one(Vote, int(loner["vote_id"]))
        prompt = session.get_one(Prompt, vote.prompt_id)
        expected = {
            "vote_id": str(vote.id),
            "run_id": str(seeded.run_id),
            "run_name": "webtest",
            "prompt_id": str(prompt.id),
            "prompt_text": prompt.text,
            "seed": "0",
            "variant_left": "dev",
            "variant_right": "schnell",
            "outcome": "right",
            "rater_id": seeded.loner,
            "panel_id": "",
            "panel_name": "",
            "voted_at": in_utc(vote.created_at).isoformat(),
            "attention_check": "false",
            "rater_flagged": "false",
        }
    assert loner == expected
    panel_row = next(row for row in rows if row["rater_id"] == seeded.rater)
    assert panel_row["panel_id"] == str(seeded.panel_id)


def test_admin_export_jsonl_matches_database(
    writable_client: TestClient, seeded: Seeded, db: Engine
) -> None:
    response = export(writable_client, "jsonl", include_flagged="true", include_attention="true")
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["content-disposition"] == (
        'attachment; filename="votes-all-runs.jsonl"'
    )
    rows = parse_jsonl(response.text)
    assert all(list(row) == list(COLUMNS) for row in rows)
    assert len(rows) == count(db, Vote)

    by_id = {row["vote_id"]: row for row in rows}
    attention = by_id[next(iter(seeded.attention_votes))]
    assert attention["attention_check"] is True
    assert attention["variant_left"] == attention["variant_right"] == "dev"
    assert attention["panel_id"] == seeded.panel_id
    assert attention["panel_name"] == FORMULA_PANEL
    assert attention["outcome"] == "tie"
    for vote_id in seeded.flagged_votes:
        assert by_id[vote_id]["rater_flagged"] is True
        assert by_id[vote_id]["panel_id"] is None
    other = by_id[next(iter(seeded.other_run_votes))]
    assert (other["run_id"], other["run_name"]) == (seeded.other_run_id, "other")
    assert other["prompt_text"] == "a plain prompt"
    for row in rows:
        assert isinstance(row["seed"], int)
        assert row["outcome"] in {o.value for o in VoteOutcome}
        assert row["voted_at"].endswith("+00:00")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize(
    ("params", "parts"),
    [
        ({}, ("counted", "other_run_votes")),
        ({"include_flagged": "true"}, ("counted", "other_run_votes", "flagged_votes")),
        ({"include_attention": "1"}, ("counted", "other_run_votes", "attention_votes")),
        (
            {"include_flagged": "true", "include_attention": "true"},
            ("counted", "other_run_votes", "flagged_votes", "attention_votes"),
        ),
        (
            {"include_flagged": "false", "include_attention": "false"},
            ("counted", "other_run_votes"),
        ),
        ({"run": "run_id"}, ("counted",)),
        ({"run": "run_id", "include_flagged": "true"}, ("counted", "flagged_votes")),
        ({"run": "other_run_id", "include_flagged": "true"}, ("other_run_votes",)),
    ],
)
def test_admin_export_filters(
    writable_client: TestClient,
    seeded: Seeded,
    fmt: str,
    params: dict[str, str],
    parts: tuple[str, ...],
) -> None:
    if "run" in params:  # the name of the Seeded field with the run's id
        params = params | {"run": getattr(seeded, params["run"])}
    text = export(writable_client, fmt, **params).text
    rows = parse_csv(text) if fmt == "csv" else parse_jsonl(text)
    expected = frozenset().union(*(getattr(seeded, part) for part in parts))
    assert {int(row["vote_id"]) for row in rows} == expected


def test_admin_export_guards_formula_injection(writable_client: TestClient, seeded: Seeded) -> None:
    rows = parse_csv(export(writable_client, "csv").text)
    formula = next(row for row in rows if int(row["vote_id"]) == seeded.formula_vote)
    assert formula["prompt_text"] == "'" + FORMULA_PROMPT
    assert formula["panel_name"] == "'" + FORMULA_PANEL
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row
    # JSON Lines is not for spreadsheets: the text stays exact.
    rows_json = parse_jsonl(export(writable_client, "jsonl").text)
    formula_json = next(row for row in rows_json if row["vote_id"] == seeded.formula_vote)
    assert formula_json["prompt_text"] == FORMULA_PROMPT
    assert formula_json["panel_name"] == FORMULA_PANEL


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_admin_export_without_votes_is_empty(writable_client: TestClient, fmt: str) -> None:
    text = export(writable_client, fmt).text
    assert text == ("\r\n".join([",".join(COLUMNS), ""]) if fmt == "csv" else "")


@pytest.mark.parametrize("run", ["999999", "0", "x"])
def test_admin_export_bad_run_is_4xx(writable_client: TestClient, run: str) -> None:
    response = writable_client.get("/admin/export/votes.csv", params={"run": run}, headers=BEARER)
    assert response.status_code == (404 if run == "999999" else 422)


def test_admin_export_streams_in_chunks() -> None:
    row = dict.fromkeys(COLUMNS, "x" * 40)
    chunks = list(csv_chunks(row for _ in range(5000)))
    assert len(chunks) > 1
    assert len(parse_csv("".join(chunks))) == 5000


def test_admin_export_columns_are_documented() -> None:
    doc = (ROOT / "docs" / "votes-export.md").read_text()
    section = doc.split("## Columns", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)
    assert documented == list(COLUMNS)


def test_admin_anomaly_flags_are_listed_and_reversible(
    writable_client: TestClient, writable_demo: DemoData
) -> None:
    from tests.arena.test_leaderboard import add_crowd, add_votes

    url, run_id = writable_demo.database_url, writable_demo.run_id
    add_crowd(url, run_id)
    bot = add_votes(url, run_id, [("dev", "dev-turbo", "left")] * 30, alternate_sides=False)

    def flag_row() -> Any:
        page = soup(writable_client.get(f"/admin?flags_run={run_id}", headers=BEARER).text)
        rows = page.select("#flags tr.flag-row")
        assert [r["data-subject"] for r in rows] == [bot]
        return rows[0]

    row = flag_row()
    assert row["data-kind"] == "rater" and row["data-test"] == "one_side"
    assert "left image in 30 of 30 decisive votes" in row.select_one(".reason").get_text()
    assert row.select_one(".left-out").get_text() == "30"
    assert "overruled" not in row["class"]
    board = writable_client.get(f"/api/v1/runs/{run_id}/leaderboard").json()
    assert (board["votes_counted"], board["votes_left_out_by_anomaly_flags"]) == (200, 30)

    # Count their votes after all; then undo it.
    review = f"/admin/runs/{run_id}/flags"
    form = {"kind": "rater", "subject": bot, "count": "true"}
    response = writable_client.post(review, data=form, headers=BEARER, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin?flags_run={run_id}#flags"
    row = flag_row()
    assert "overruled" in row["class"] and row.select_one(".left-out").get_text() == "0"
    assert row.select_one('input[name="count"]')["value"] == "false"
    board = writable_client.get(f"/api/v1/runs/{run_id}/leaderboard").json()
    assert (board["votes_counted"], board["votes_left_out_by_anomaly_flags"]) == (230, 0)
    writable_client.post(review, data={**form, "count": "false"}, headers=BEARER)
    assert "overruled" not in flag_row()["class"]
    assert writable_client.get(f"/api/v1/runs/{run_id}/leaderboard").json()["votes_counted"] == 200
    # Bad input is a 4xx with a reason.
    assert (
        writable_client.post(review, data={**form, "kind": "ip"}, headers=BEARER).status_code == 422
    )
    assert (
        writable_client.post("/admin/runs/999/flags", data=form, headers=BEARER).status_code == 404
    )
