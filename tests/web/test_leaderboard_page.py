"""The leaderboard page `/leaderboard` (table, live polling, filters), the `leaderboard` CLI
command, and the dashboard's cost-vs-quality data once votes exist.

Votes are stored into a private copy of the web test run (`writable_demo`); the read-only
demo run has none.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from bs4 import BeautifulSoup, Tag
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app import cli
from app.arena.leaderboard_cache import leaderboard
from app.arena.leaderboard_view import LeaderboardView
from app.arena.leaderboard_words import fmt_interval, fmt_rank, fmt_rating, fmt_verdict
from app.config import Settings, get_settings
from app.db import get_engine, make_engine, session_scope
from app.models import LeaderboardSnapshot, Panel, Run
from app.web.main import create_app
from tests.arena.test_leaderboard import MIXED, add_votes
from tests.conftest import DemoData

# Each test that writes runs on a copy of the web test run on SQLite and on PostgreSQL.
pytestmark = pytest.mark.both_databases


HTMX = {"HX-Request": "true"}
WIDE = {"COLUMNS": "200"}  # Rich's table width; a CliRunner is no terminal


@pytest.fixture
def engine(writable_demo: DemoData) -> Iterator[Engine]:
    engine = make_engine(writable_demo.database_url)
    yield engine
    engine.dispose()


def _page(response: Any) -> BeautifulSoup:
    assert response.status_code == 200, response.text
    return BeautifulSoup(response.text, "html.parser")


def _board(page: BeautifulSoup) -> Tag:
    board = page.select_one("section#leaderboard")
    assert board is not None
    return board


def _view(engine: Engine, run_id: int, panel_id: int | None = None) -> LeaderboardView:
    with Session(engine) as session:
        return leaderboard(session, session.get_one(Run, run_id), panel_id=panel_id)


def _text(row: Tag, selector: str) -> str:
    cell = row.select_one(selector)
    assert cell is not None, selector
    return cell.get_text(" ", strip=True)


def test_leaderboard_page_table_matches_leaderboard(
    writable_client: TestClient, writable_demo: DemoData, engine: Engine
) -> None:
    add_votes(writable_demo.database_url, writable_demo.run_id, MIXED)
    add_votes(
        writable_demo.database_url,
        writable_demo.run_id,
        [("dev", "schnell", "left")] * 3,
        flagged=True,
    )
    page = _page(writable_client.get(f"/leaderboard?run={writable_demo.run_id}"))
    view = _view(engine, writable_demo.run_id)
    board = _board(page)
    assert board["data-votes-total"] == str(view.n_votes) == str(len(MIXED))
    assert _text(board, ".flagged-votes") == "3"
    assert _text(board, ".reference") == "dev"
    rows = board.select("table.leaderboard-table tbody tr.variant-row")
    assert [row["data-variant"] for row in rows] == [r.name for r in view.rows]
    for row, expected in zip(rows, view.rows, strict=True):
        b = expected.rating
        assert row["data-status"] == b.status
        assert _text(row, "td.rank") == fmt_rank(b.rank)
        assert _text(row, ".rating-value") == fmt_rating(b)
        ci = _text(row, ".ci")
        assert ci == ("pinned" if b.name == "dev" else fmt_interval(b.ci_low, b.ci_high))
        if b.status == "ok":
            assert float(row.select_one("td.rating")["data-value"]) == b.rating
        if b.games:
            assert float(row.select_one("td.elo")["data-value"]) == expected.elo
        else:
            assert _text(row, "td.elo") == "—"
        assert _text(row, "td.votes") == str(b.games)
        assert _text(row, "td.wtl") == f"{b.wins} / {b.ties} / {b.losses}"
        assert _text(row, "td.both-bad") == str(b.both_bad)
        assert "inf" not in row.get_text()
    verdicts = {r["data-variant"]: r["data-verdict"] for r in board.select("tr.verdict-row")}
    assert verdicts == {d.variant: d.verdict for d in view.verdicts}
    matrix = board.select("table.win-matrix tbody tr")
    assert [r["data-variant"] for r in matrix] == ["dev", "dev-turbo", "schnell"]
    cell = board.select_one('table.win-matrix tr[data-variant="dev"] td[data-opponent="dev-turbo"]')
    assert cell["data-games"] == "11"
    categories = board.select("details.category")
    assert [
        (d["data-category"], d.select_one("summary").get_text(" ", strip=True)) for d in categories
    ] == [(c.category, f"{c.category} {c.n_votes} votes") for c in view.categories]
    assert "position-bias" in board.select_one("p.position-bias")["class"]
    assert page.select_one('nav.mainnav a[aria-current="page"]')["href"].startswith("/leaderboard")
    css = page.select_one('head link[href^="/static/css/leaderboard.css"]')
    assert writable_client.get(css["href"]).status_code == 200


def test_leaderboard_page_names_every_reference(
    writable_client: TestClient, writable_demo: DemoData, engine: Engine
) -> None:
    add_votes(writable_demo.database_url, writable_demo.run_id, MIXED)
    page = _page(writable_client.get(f"/leaderboard?run={writable_demo.run_id}"))
    view = _view(engine, writable_demo.run_id)
    board = _board(page)
    # dev and schnell are each named once: the tie goes to dev, first in config order.
    assert view.reference == "dev"
    references = board.select_one("p.board-references")
    assert _text(references, ".reference") == "dev"
    assert "dev pinned at 1000" in _text(board, "p.board-references")
    families = {
        f["data-reference"]: f.get_text(" ", strip=True) for f in references.select(".family")
    }
    assert families == {
        "dev": "dev is the reference of dev-turbo",
        "schnell": "schnell is the reference of schnell-fp8 (rated on dev's scale, not pinned)",
    }
    assert {d.reference for d in view.verdicts} == set(families)
    badges = {
        row["data-variant"]: [b.get_text(strip=True) for b in row.select(".ref-badge")]
        for row in board.select("table.leaderboard-table tr.variant-row")
    }
    assert badges == {
        "dev": ["reference · 1000"],
        "schnell": ["reference"],
        "dev-turbo": [],
        "schnell-fp8": [],
    }
    # The method note names the pinned reference too.
    assert "dev pinned at 1000" in page.select_one("p.method-note").get_text()


def test_leaderboard_page_explains_panels(demo_client: TestClient, demo_data: DemoData) -> None:
    page = _page(demo_client.get(f"/leaderboard?run={demo_data.run_id}"))
    field = page.select_one("form.panel-form input[name=panel]")
    hint = page.select_one(f"#{field['aria-describedby']}")
    assert hint is not None
    text = hint.get_text(" ", strip=True)
    assert "invited with a code" in text and "/arena?panel=CODE" in text
    label = page.select_one(f"label[for={field['id']}]")
    assert label.get_text(strip=True) == "Only one panel's votes"


def test_leaderboard_page_live_region_is_one_sentence_outside_the_board(
    demo_client: TestClient, demo_data: DemoData
) -> None:
    page = _page(demo_client.get(f"/leaderboard?run={demo_data.run_id}"))
    live = page.select("section.leaderboard-page :is([aria-live], [role=status], [role=alert])")
    assert [el.get("id") for el in live] == ["board-status"]
    # The polled board is swapped whole: the live region stays, empty until a poll speaks.
    assert page.select_one("#leaderboard #board-status") is None
    assert live[0].get_text(strip=True) == ""
    script = " ".join(s.get_text() for s in page.select("script:not([src])"))
    assert "new " in script and "ranking updated" in script


def test_leaderboard_page_no_votes_says_so_and_links_the_arena(
    demo_client: TestClient, demo_data: DemoData
) -> None:
    page = _page(demo_client.get(f"/leaderboard?run={demo_data.run_id}"))
    board = _board(page)
    assert board["data-votes-total"] == "0"
    message = board.select_one(".no-votes")
    assert message is not None
    assert "No votes yet" in message.get_text()
    assert message.select_one("a")["href"] == f"/arena?run={demo_data.run_id}"
    assert board.select("table.leaderboard-table") == []
    # It still polls, so the first vote shows up.
    assert board["hx-trigger"] == "every 2s"


def test_leaderboard_page_polls_itself(
    writable_client: TestClient, writable_demo: DemoData
) -> None:
    add_votes(writable_demo.database_url, writable_demo.run_id, MIXED[:4], panel="team-a")
    url = f"/leaderboard?run={writable_demo.run_id}&panel=team-a"
    board = _board(_page(writable_client.get(url)))
    assert board["hx-get"] == url
    assert board["hx-trigger"] == "every 2s"
    assert board["hx-swap"] == "outerHTML"
    assert json.loads(board["hx-headers"]) == {"X-Leaderboard-Version": board["data-version"]}


def test_leaderboard_page_htmx_fragment_204_until_a_new_vote(
    writable_client: TestClient, writable_demo: DemoData
) -> None:
    url, run_id = writable_demo.database_url, writable_demo.run_id
    add_votes(url, run_id, MIXED)
    response = writable_client.get(f"/leaderboard?run={run_id}", headers=HTMX)
    fragment = _page(response)
    assert "HX-Request" in response.headers["vary"]
    assert fragment.select("html, header.topbar, form.panel-form, p.method-note") == []
    board = _board(fragment)
    assert board["data-votes-total"] == str(len(MIXED))
    version = {"X-Leaderboard-Version": str(board["data-version"])}
    unchanged = writable_client.get(f"/leaderboard?run={run_id}", headers=HTMX | version)
    assert (unchanged.status_code, unchanged.text) == (204, "")
    # A new vote: polls get 204 while the new board is computed in the background (the
    # page shows the board it has), then the new board with the vote counted.
    add_votes(url, run_id, [("schnell", "dev", "left")])
    deadline = time.monotonic() + 30
    while True:
        polled = writable_client.get(f"/leaderboard?run={run_id}", headers=HTMX | version)
        if polled.status_code == 200 or time.monotonic() > deadline:
            break
        assert (polled.status_code, polled.text) == (204, "")
        time.sleep(0.05)
    fresh = _board(_page(polled))
    assert fresh["data-votes-total"] == str(len(MIXED) + 1)
    assert fresh["data-version"] != board["data-version"]
    # Without htmx the version header changes nothing: the whole page.
    full = _page(writable_client.get(f"/leaderboard?run={run_id}", headers=version))
    assert full.select_one("header.topbar") is not None


def test_leaderboard_page_panel_filter(
    writable_client: TestClient, writable_demo: DemoData, engine: Engine
) -> None:
    url, run_id = writable_demo.database_url, writable_demo.run_id
    add_votes(url, run_id, MIXED[:12], panel="team-a")
    add_votes(url, run_id, MIXED[12:])
    with session_scope(engine) as session:
        panel = session.scalars(select(Panel).where(Panel.code == "team-a")).one()
        panel.name = "<b>Team A</b>"
    page = _page(writable_client.get(f"/leaderboard?run={run_id}&panel=team-a"))
    assert _board(page)["data-votes-total"] == "12"
    assert page.select("main b") == []
    assert "<b>Team A</b>" in page.select_one("h1").get_text()
    assert page.select_one("form.panel-form input[name=panel]")["value"] == "team-a"
    everyone = _page(writable_client.get(f"/leaderboard?run={run_id}&panel="))
    assert _board(everyone)["data-votes-total"] == str(len(MIXED))
    # Panel codes are invitations: the page never lists them.
    assert "team-a" not in everyone.get_text()


@pytest.mark.parametrize(
    ("query", "reason"),
    [("run=999", "run 999 not found"), ("panel=nope", "unknown panel code 'nope'")],
)
def test_leaderboard_page_unknown_run_or_panel_is_404(
    demo_client: TestClient, query: str, reason: str
) -> None:
    response = demo_client.get(f"/leaderboard?{query}")
    assert response.status_code == 404
    page = BeautifulSoup(response.text, "html.parser")
    assert reason in page.select_one(".reasons").get_text()


@pytest.fixture
def cli_env(writable_demo: DemoData, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI on the writable copy: its settings and engine are cached, so reset both."""
    monkeypatch.setenv("FLUX_PLAYGROUND_DATABASE_URL", writable_demo.database_url)
    monkeypatch.setenv("FLUX_PLAYGROUND_MEDIA_DIR", str(writable_demo.media_dir))
    get_settings.cache_clear()
    get_engine.cache_clear()
    yield
    get_engine().dispose()
    get_engine.cache_clear()
    get_settings.cache_clear()


def test_leaderboard_cli_prints_the_table(
    cli_env: None, writable_demo: DemoData, engine: Engine
) -> None:
    add_votes(writable_demo.database_url, writable_demo.run_id, MIXED, panel="team-a")
    result = CliRunner().invoke(cli.app, ["leaderboard", str(writable_demo.run_id)], env=WIDE)
    assert result.exit_code == 0, result.output
    view = _view(engine, writable_demo.run_id)
    lines = result.output.splitlines()
    for row in view.rows:
        line = next(line for line in lines if f" {row.name} " in line)
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        assert cells[:6] == [
            fmt_rank(row.rating.rank),
            row.name,
            fmt_rating(row.rating),
            "pinned" if row.name == "dev" else fmt_interval(row.rating.ci_low, row.rating.ci_high),
            f"{row.elo:.0f}" if row.votes else "—",
            str(row.votes),
        ]
    turbo = next(line for line in lines if " dev-turbo " in line)
    assert f"{fmt_verdict(view.verdicts[0])} vs dev" in turbo
    assert f"{len(MIXED)} votes counted, 0 left out" in result.output
    args = ["leaderboard", str(writable_demo.run_id), "--panel", "team-a", "--rounds", "50"]
    panel = CliRunner().invoke(cli.app, args, env=WIDE)
    assert panel.exit_code == 0, panel.output
    assert "50 bootstrap rounds" in panel.output


@pytest.mark.parametrize(
    ("args", "message"),
    [(["999"], "error: run 999 not found"), (["1", "--panel", "x"], "unknown panel code 'x'")],
)
def test_leaderboard_cli_unknown_run_one_line_error(
    cli_env: None, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(cli.app, ["leaderboard", *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert message in lines[0]


def test_leaderboard_page_marks_ratings_from_few_votes_preliminary(
    writable_demo: DemoData,
) -> None:
    add_votes(writable_demo.database_url, writable_demo.run_id, MIXED)
    games = {name: 0 for name in ("dev", "dev-turbo", "schnell", "schnell-fp8")}
    for left, right, _ in MIXED:
        games[left] += 1
        games[right] += 1
    threshold = sorted(games.values())[2]  # some variants below it, some at or above
    settings = Settings(
        database_url=writable_demo.database_url,
        media_dir=writable_demo.media_dir,
        page_cache_s=0,
        arena_preliminary_votes=threshold,
    )
    with TestClient(create_app(settings)) as client:
        page = _page(client.get(f"/leaderboard?run={writable_demo.run_id}"))
    rows = _board(page).select("table.leaderboard-table tbody tr.variant-row")
    marked = {row["data-variant"]: row.select_one(".preliminary") is not None for row in rows}
    assert marked == {name: n < threshold for name, n in games.items()}
    assert any(marked.values()) and not all(marked.values())


def test_leaderboard_api_json_and_csv_match_the_view(
    writable_client: TestClient, writable_demo: DemoData, engine: Engine
) -> None:
    add_votes(writable_demo.database_url, writable_demo.run_id, MIXED)
    response = writable_client.get(f"/api/v1/runs/{writable_demo.run_id}/leaderboard")
    assert response.status_code == 200
    data = response.json()
    view = _view(engine, writable_demo.run_id)
    assert (data["reference"], data["votes_counted"], data["version"]) == (
        "dev",
        len(MIXED),
        view.version,
    )
    assert [row["name"] for row in data["rows"]] == [row.name for row in view.rows]
    for got, row in zip(data["rows"], view.rows, strict=True):
        assert got["rank"] == row.rating.rank and got["votes"] == row.votes
        if row.rating.status == "ok":
            assert got["rating"] == pytest.approx(row.rating.rating)
        else:  # infinities travel as null plus the status
            assert got["rating"] is None and got["rating_status"] == row.rating.status
    turbo = data["verdicts"][0]
    assert (turbo["variant"], turbo["verdict"]) == ("dev-turbo", view.verdicts[0].verdict)
    assert turbo["test"].startswith("anytime-valid")

    csv_response = writable_client.get(
        f"/api/v1/runs/{writable_demo.run_id}/export/leaderboard.csv"
    )
    assert csv_response.status_code == 200
    lines = csv_response.text.strip().splitlines()
    assert lines[0].startswith("name,reference,rank,rating,")
    assert [line.split(",")[0] for line in lines[1:]] == [row.name for row in view.rows]
    assert (
        writable_client.get(
            f"/api/v1/runs/{writable_demo.run_id}/leaderboard?panel=nope"
        ).status_code
        == 404
    )


def test_leaderboard_cli_json_and_fail_on_worse(cli_env: None, writable_demo: DemoData) -> None:
    run = str(writable_demo.run_id)
    add_votes(writable_demo.database_url, writable_demo.run_id, [("dev", "dev-turbo", "left")] * 60)
    result = CliRunner().invoke(cli.app, ["leaderboard", run, "--json", "--rounds", "20"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verdicts"][0]["verdict"] == "worse"  # dev-turbo lost all 60 to dev

    gate = CliRunner().invoke(cli.app, ["leaderboard", run, "--rounds", "0", "--fail-on", "worse"])
    assert gate.exit_code == 1
    assert "dev-turbo: worse vs dev" in gate.output
    passed = CliRunner().invoke(
        cli.app, ["leaderboard", run, "--rounds", "0", "--fail-on", "better"]
    )
    assert passed.exit_code == 0, passed.output
    bad = CliRunner().invoke(cli.app, ["leaderboard", run, "--fail-on", "awful"])
    assert bad.exit_code == 2 and "unknown verdict 'awful'" in bad.output


def test_leaderboard_recomputed_after_a_vote_without_a_viewer(
    writable_client: TestClient, writable_demo: DemoData, engine: Engine
) -> None:
    """A vote starts a background computation of the run's board, stored for every process:
    the CLI then reads it instead of computing (issue 11: a vote shows within seconds, and
    `flux-playground leaderboard` answers in under a second on a big database)."""
    from app.arena.leaderboard_cache import leaderboard_key

    writable_client.get("/arena", params={"run": writable_demo.run_id})
    page = _page(writable_client.get("/arena", params={"run": writable_demo.run_id}))
    token = page.select_one("form.arena-form input[name=token]")
    assert token is not None
    voted = writable_client.post(
        "/arena/vote",
        data={"token": str(token["value"]), "outcome": "tie"},
        follow_redirects=False,
    )
    assert voted.status_code == 303
    with Session(engine) as session:
        key = leaderboard_key(session, session.get_one(Run, writable_demo.run_id))
    deadline = time.monotonic() + 30
    while True:
        with Session(engine) as session:
            stored = session.scalar(
                select(LeaderboardSnapshot.version).where(
                    LeaderboardSnapshot.run_id == writable_demo.run_id,
                    LeaderboardSnapshot.panel == 0,
                    LeaderboardSnapshot.rounds == key.rounds,
                )
            )
        if stored is not None and stored.endswith(key.version):
            break
        assert time.monotonic() < deadline, "no leaderboard computed after the vote"
        time.sleep(0.1)
