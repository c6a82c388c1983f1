"""The leaderboard read model on a real copy of the web test run, with votes stored as the
arena stores them (a rater, an answered matchup per vote).

The run: dev, dev-turbo (reference dev), schnell, schnell-fp8 (reference schnell, failed);
prompts in the categories Vehicles, Food & Beverage, Animals (2), Outdoor Scenes, Artifacts.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.arena.bradley_terry import VariantRating, fit_bradley_terry
from app.arena.counted_votes import run_reference
from app.arena.leaderboard_cache import leaderboard
from app.arena.leaderboard_compute import CATEGORY_ROUNDS, ROUNDS
from app.arena.leaderboard_view import LeaderboardView
from app.arena.leaderboard_words import fmt_interval, fmt_rating
from app.arena.online_elo import online_elo
from app.arena.reviews import set_rater_flag, set_review
from app.arena.verdicts import verdict
from app.arena.vote_counts import count_votes
from app.arena.win_rates import position_bias
from app.db import make_engine, session_scope
from app.models import (
    LeaderboardSnapshot,
    Matchup,
    Panel,
    Prompt,
    Rater,
    Run,
    Variant,
    Vote,
    VoteOutcome,
    utcnow,
)
from tests.conftest import DemoData

# Each test that writes runs on a copy of the web test run on SQLite and on PostgreSQL.
pytestmark = pytest.mark.both_databases


Ballot = tuple[str, str, str]
NAMES = ["dev", "dev-turbo", "schnell", "schnell-fp8"]


def add_votes(
    database_url: str,
    run_id: int,
    votes: Sequence[Ballot],
    *,
    rater: str | None = None,
    panel: str | None = None,
    flagged: bool = False,
    attention: bool = False,
    category: str | None = None,
    network: str | None = None,
    alternate_sides: bool = True,
) -> str:
    """Store (left, right, outcome) votes of one rater (new unless `rater` names one; in the
    panel with code `panel`, made if needed), on the run's prompts in turn (or only those of
    `category`). Returns the rater's id.

    Every other vote is stored with its sides swapped (and its outcome with them), as the
    arena shuffles sides: the same result per pair, but not a rater who "always picks the
    left image", whom the anomaly flags would leave out (`alternate_sides=False` keeps the
    sides as given)."""
    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            ids = {
                v.name: v.id
                for v in session.scalars(select(Variant).where(Variant.run_id == run_id))
            }
            prompts = [
                p
                for p in session.scalars(
                    select(Prompt).where(Prompt.run_id == run_id).order_by(Prompt.position)
                )
                if category is None or p.category == category
            ]
            panel_row = None
            if panel is not None:
                panel_row = session.scalars(select(Panel).where(Panel.code == panel)).first()
                if panel_row is None:
                    panel_row = Panel(code=panel, name=f"Panel {panel}")
                    session.add(panel_row)
                    session.flush()
            rater_row = session.get(Rater, rater) if rater else None
            if rater_row is None:
                rater_row = Rater(
                    id=rater or uuid.uuid4().hex,
                    panel_id=panel_row.id if panel_row else None,
                    attention_passed=0,
                    attention_failed=0,
                    flagged=flagged,
                )
                session.add(rater_row)
                session.flush()
            for k, (left, right, outcome) in enumerate(votes):
                if alternate_sides and k % 2:
                    left, right = right, left
                    outcome = {"left": "right", "right": "left"}.get(outcome, outcome)
                prompt = prompts[k % len(prompts)]
                matchup = Matchup(
                    run_id=run_id,
                    prompt_id=prompt.id,
                    seed=0,
                    left_variant_id=ids[left],
                    right_variant_id=ids[right],
                    rater_id=rater_row.id,
                    attention_check=attention,
                    answered_at=utcnow(),
                )
                session.add(matchup)
                session.flush()
                session.add(
                    Vote(
                        matchup_id=matchup.id,
                        run_id=run_id,
                        prompt_id=prompt.id,
                        seed=0,
                        left_variant_id=ids[left],
                        right_variant_id=ids[right],
                        outcome=VoteOutcome(outcome),
                        rater_id=rater_row.id,
                        panel_id=rater_row.panel_id,
                        attention_check=attention,
                        network=network,
                    )
                )
            return rater_row.id
    finally:
        engine.dispose()


# Every variant of the three finished ones beats and loses to each other: all finite.
MIXED: list[Ballot] = [
    *[("dev", "dev-turbo", "left")] * 6,
    *[("dev-turbo", "dev", "left")] * 4,
    *[("dev", "schnell", "left")] * 7,
    *[("schnell", "dev", "left")] * 2,
    *[("dev-turbo", "schnell", "right")] * 3,
    *[("schnell", "dev-turbo", "right")] * 4,
    ("dev", "dev-turbo", "tie"),
    ("schnell", "dev-turbo", "both_bad"),
    ("dev", "schnell", "both_bad"),
]


@pytest.fixture
def engine(writable_demo: DemoData) -> Iterator[Engine]:
    engine = make_engine(writable_demo.database_url)
    yield engine
    engine.dispose()


def board(
    engine: Engine, run_id: int, *, panel_id: int | None = None, rounds: int = ROUNDS
) -> LeaderboardView:
    with Session(engine) as session:
        run = session.get_one(Run, run_id)
        return leaderboard(session, run, panel_id=panel_id, rounds=rounds)


def test_leaderboard_counts_only_real_votes_of_unflagged_raters(
    writable_demo: DemoData, engine: Engine
) -> None:
    url, run_id = writable_demo.database_url, writable_demo.run_id
    add_votes(url, run_id, MIXED)
    # Attention checks show one variant on both sides; counted, they would break the fit.
    add_votes(url, run_id, [("dev", "dev", "left"), ("schnell", "schnell", "tie")], attention=True)
    add_votes(url, run_id, [("schnell", "dev", "left")] * 5, flagged=True)
    view = board(engine, run_id)
    assert view.n_votes == len(MIXED)
    assert view.ranking.n_votes == len(MIXED)
    assert view.flagged_votes == 5
    assert sum(row.votes for row in view.rows) == 2 * len(MIXED)
    assert view.ranking["schnell"].wins == 2 + 3


def test_leaderboard_flagging_a_rater_moves_their_votes_out(
    writable_demo: DemoData, engine: Engine
) -> None:
    url, run_id = writable_demo.database_url, writable_demo.run_id
    add_votes(url, run_id, MIXED)
    rater = add_votes(url, run_id, [("schnell", "dev", "left")] * 3)
    assert (board(engine, run_id).n_votes, board(engine, run_id).flagged_votes) == (
        len(MIXED) + 3,
        0,
    )
    with session_scope(engine) as session:
        assert set_rater_flag(session, rater, True)
    view = board(engine, run_id)
    assert (view.n_votes, view.flagged_votes) == (len(MIXED), 3)


def test_leaderboard_panel_filter(writable_demo: DemoData, engine: Engine) -> None:
    url, run_id = writable_demo.database_url, writable_demo.run_id
    add_votes(url, run_id, MIXED[:12], panel="team-a")
    add_votes(url, run_id, MIXED[12:], panel="team-b")
    add_votes(url, run_id, [("dev", "schnell", "left")] * 2, panel="team-a", flagged=True)
    with Session(engine) as session:
        panels = {p.code: p.id for p in session.scalars(select(Panel))}
    team_a = board(engine, run_id, panel_id=panels["team-a"])
    assert (team_a.n_votes, team_a.flagged_votes, team_a.panel_id) == (12, 2, panels["team-a"])
    assert team_a.ranking.n_votes == 12
    assert board(engine, run_id, panel_id=panels["team-b"]).n_votes == len(MIXED) - 12
    everyone = board(engine, run_id)
    assert (everyone.n_votes, everyone.flagged_votes) == (len(MIXED), 2)


def add_crowd(database_url: str, run_id: int) -> None:
    """200 votes from ten raters on ten networks who agree: dev beats dev-turbo 3 times in 5."""
    mix = [("dev", "dev-turbo", "left")] * 12 + [("dev-turbo", "dev", "left")] * 8
    for n in range(10):
        add_votes(database_url, run_id, mix, network=f"10.0.0.{n}")


def test_leaderboard_reference_pinned_at_1000(writable_demo: DemoData, engine: Engine) -> None:
    add_votes(writable_demo.database_url, writable_demo.run_id, MIXED, alternate_sides=False)
    view = board(engine, writable_demo.run_id)
    # dev and schnell are each named by one variant: the tie goes to dev, first in config.
    assert view.reference == "dev"
    dev = view.ranking["dev"]
    assert dev.rating == 1000.0
    assert dev.status == "ok"
    ratings = [row.rating.rating for row in view.rows]
    assert [row.name for row in view.rows][:3] == ["dev", "dev-turbo", "schnell"]
    assert ratings[:3] == sorted(ratings[:3], reverse=True)
    for row in view.rows[:3]:
        assert row.rating.status == "ok"
        assert row.rating.ci_low <= row.rating.rating <= row.rating.ci_high  # type: ignore[operator]
    failed = view.rows[-1]
    assert (failed.name, failed.rating.status, failed.rating.rating) == (
        "schnell-fp8",
        "not_connected",
        None,
    )
    assert fmt_rating(failed.rating) == "no votes yet"
    # The secondary views, on the same counted votes.
    assert dict(view.elo) == online_elo(NAMES, MIXED, k=4.0)
    assert view.position_bias == position_bias(MIXED)
    assert view.ranking["schnell"].both_bad == 2
    assert view.ranking["schnell"].ties == 2
    matrix_names, cells = view.matrix()
    assert matrix_names == ["dev", "dev-turbo", "schnell"]
    dev_vs_turbo = cells[0][1]
    assert dev_vs_turbo is not None
    assert (dev_vs_turbo.games, dev_vs_turbo.wins, dev_vs_turbo.losses) == (11, 6, 4)
    assert dev_vs_turbo.rate == pytest.approx(6.5 / 11)
    assert cells[0][0] is None


def test_run_reference_most_named_then_config_order_then_first() -> None:
    def variants(*references: int | None) -> list[Variant]:
        return [
            Variant(id=i + 1, name=f"v{i + 1}", position=i, reference_id=ref)
            for i, ref in enumerate(references)
        ]

    assert run_reference(variants(None, None, 2, 2, 1)).name == "v2"
    assert run_reference(variants(None, None, 2, 1)).name == "v1"
    assert run_reference(variants(None, None, None)).name == "v1"


def test_leaderboard_cache_same_object_until_a_new_vote(
    writable_demo: DemoData, engine: Engine
) -> None:
    url, run_id = writable_demo.database_url, writable_demo.run_id
    add_votes(url, run_id, MIXED)
    first = board(engine, run_id)
    assert board(engine, run_id) is first
    assert board(engine, run_id, rounds=50) is not first
    # An attention check is not counted but is a new vote: the key moves, the numbers don't.
    add_votes(url, run_id, [("dev", "dev", "tie")], attention=True)
    after_check = board(engine, run_id)
    assert after_check is not first
    assert after_check.key.max_vote_id > first.key.max_vote_id
    assert after_check.ranking == first.ranking  # the same seed, the same votes
    add_votes(url, run_id, [("schnell", "dev", "left")])
    after_vote = board(engine, run_id)
    assert after_vote is not after_check
    assert after_vote.n_votes == len(MIXED) + 1
    assert after_vote.version != first.version


def test_leaderboard_by_category(writable_demo: DemoData, engine: Engine) -> None:
    url, run_id = writable_demo.database_url, writable_demo.run_id
    add_votes(url, run_id, MIXED, category="Animals")
    vehicles_votes = [("dev", "schnell", "left"), ("schnell", "dev", "right")]
    add_votes(url, run_id, vehicles_votes, category="Vehicles")
    view = board(engine, run_id)
    # In prompt order (Vehicles is the first prompt), only categories with votes.
    assert [(c.category, c.n_votes) for c in view.categories] == [
        ("Vehicles", 2),
        ("Animals", len(MIXED)),
    ]
    assert view.category_rounds == CATEGORY_ROUNDS
    assert view.categories[0].ranking.rounds == CATEGORY_ROUNDS
    vehicles = view.categories[0]
    assert [v.name for v in vehicles.rows] == ["dev", "schnell"]
    assert vehicles.ranking["dev"].rating == 1000.0
    assert vehicles.ranking["schnell"].status == "below"  # lost every vote
    assert fmt_rating(vehicles.ranking["schnell"]) == "below all"
    alone = fit_bradley_terry(count_votes(NAMES, MIXED), "dev", rounds=0)
    for name in ("dev-turbo", "schnell"):
        assert view.categories[1].ranking[name].rating == pytest.approx(alone[name].rating)
    assert board(engine, run_id, rounds=20).categories[1].ranking.rounds == 20


def test_leaderboard_verdict_dev_turbo_vs_dev(writable_demo: DemoData, engine: Engine) -> None:
    url, run_id = writable_demo.database_url, writable_demo.run_id
    add_votes(
        url, run_id, [("dev-turbo", "dev", "tie")] * 500 + [("dev", "dev-turbo", "tie")] * 500
    )
    view = board(engine, run_id)
    turbo, fp8 = view.verdicts
    assert (turbo.variant, turbo.reference, turbo.verdict) == (
        "dev-turbo",
        "dev",
        "indistinguishable",
    )
    assert turbo.margin == 0.05
    assert (turbo.games, turbo.votes_needed) == (1000, 0)
    # schnell-fp8 failed: no votes against schnell, so undecided with a vote estimate.
    assert (fp8.variant, fp8.reference, fp8.verdict, fp8.games) == (
        "schnell-fp8",
        "schnell",
        "undecided",
        0,
    )
    assert fp8.votes_needed is not None and fp8.votes_needed > 0

    # 250 wins for dev-turbo from 25 raters (one rater casting them all would be flagged:
    # always dev-turbo where everyone else saw no difference; see test_integrity.py).
    for _ in range(25):
        add_votes(url, run_id, [("dev-turbo", "dev", "left")] * 10)
    turbo = board(engine, run_id).verdicts[0]
    assert turbo.verdict == "better"
    counts = count_votes(
        NAMES,
        [("dev-turbo", "dev", "tie")] * 1000 + [("dev-turbo", "dev", "left")] * 250,
    )
    assert turbo == verdict(counts, "dev-turbo", "dev", margin=0.05)


def test_leaderboard_no_votes(demo_data: DemoData) -> None:
    engine = make_engine(demo_data.database_url)
    try:
        view = board(engine, demo_data.run_id)
    finally:
        engine.dispose()
    assert (view.n_votes, view.flagged_votes, view.categories) == (0, 0, ())
    assert view.ranking.messages == ("no votes yet",)
    assert all(fmt_rating(row.rating) == "no votes yet" for row in view.rows)


@pytest.mark.parametrize(
    ("status", "rating", "low", "high", "words", "interval"),
    [
        ("ok", 1012.4, 990.2, 1040.6, "1012", "[990, 1041]"),
        ("ok", 1012.4, -math.inf, 1040.6, "1012", "≤ 1041"),
        ("ok", 1012.4, 990.2, math.inf, "1012", "≥ 990"),
        ("ok", 1012.4, -math.inf, math.inf, "1012", "unbounded"),
        ("above", math.inf, 1100.0, math.inf, "above all", "≥ 1100"),
        ("below", -math.inf, -math.inf, 900.0, "below all", "≤ 900"),
        ("not_identified", None, None, None, "not identified", ""),
        ("not_connected", None, None, None, "not connected", ""),
    ],
)
def test_leaderboard_words_never_inf(
    status: str,
    rating: float | None,
    low: float | None,
    high: float | None,
    words: str,
    interval: str,
) -> None:
    value = VariantRating(
        name="x",
        status=status,  # type: ignore[arg-type]
        rating=rating,
        ci_low=low,
        ci_high=high,
        rank=None,
        games=3,
        wins=1,
        losses=1,
        ties=1,
        both_bad=0,
        message="",
    )
    assert fmt_rating(value) == words
    assert fmt_interval(low, high) == interval
    assert "inf" not in fmt_rating(value) + fmt_interval(low, high)


def test_leaderboard_one_computation_per_change_set(
    writable_demo: DemoData, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    from app.arena import leaderboard_cache as module

    url, run_id = writable_demo.database_url, writable_demo.run_id
    add_votes(url, run_id, MIXED)
    computed: list[int] = []
    real = module.compute_view
    # The refresh after the new vote below waits for this: the viewers meanwhile must get
    # the last board however slowly this machine runs them.
    refresh_may_finish = threading.Event()

    def slow_compute(session: Session, run: Run, key: module.LeaderboardKey) -> Any:
        computed.append(key.max_vote_id)
        if len(computed) == 1:
            time.sleep(0.3)  # the viewers below arrive meanwhile (a late one finds it cached)
        else:
            assert refresh_may_finish.wait(30)
        return real(session, run, key)

    monkeypatch.setattr(module, "compute_view", slow_compute)

    def view(stale_ok: bool) -> module.LeaderboardView:
        with session_scope(engine) as session:
            return module.leaderboard(
                session, session.get_one(Run, run_id), rounds=50, stale_ok=stale_ok
            )

    # Eight viewers of a board nobody computed yet: one computation, one view for all.
    views: list[module.LeaderboardView] = []
    threads = [threading.Thread(target=lambda: views.append(view(True))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(computed) == 1 and len({id(v) for v in views}) == 1

    # A new vote: viewers get the last board at once while one thread computes the next.
    add_votes(url, run_id, [("schnell", "dev", "left")])
    stale = [view(True) for _ in range(5)]
    assert {v.version for v in stale} == {views[0].version}
    refresh_may_finish.set()
    deadline = time.monotonic() + 30
    while len(computed) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    fresh = view(True)
    while fresh.n_votes != len(MIXED) + 1 and time.monotonic() < deadline:
        time.sleep(0.05)  # the refresh computes, then stores and hands memory back
        fresh = view(True)
    assert fresh.n_votes == len(MIXED) + 1
    assert len(computed) == 2  # one computation for the change, not one per viewer
    # A caller that must not see a stale board (the API, the CLI) gets the current one.
    add_votes(url, run_id, [("schnell", "dev", "left")])
    assert view(False).n_votes == len(MIXED) + 2


def test_leaderboard_caps_anonymous_votes_per_network(
    writable_demo: DemoData, engine: Engine
) -> None:
    from app.arena.counted_votes import ANONYMOUS_VOTES_PER_NETWORK as CAP

    url, run_id = writable_demo.database_url, writable_demo.run_id
    # One network, fresh raters (cookies) every 25 votes, voting as everyone does (votes
    # unlike everyone's are the anomaly flags' business: test_leaderboard_flags_...).
    mix = [("dev", "dev-turbo", "left")] * 15 + [("dev-turbo", "dev", "left")] * 10
    for _ in range(6):
        add_votes(url, run_id, mix, network="198.51.100.9")
    # A panel behind the same address (an office NAT) is never capped.
    add_votes(url, run_id, mix + mix[:5], panel="lab", network="198.51.100.9")
    view = board(engine, run_id)
    assert view.flags == ()
    assert view.capped_votes == 150 - CAP
    assert view.n_votes == CAP + 30
    assert view.ranking["dev-turbo"].games == CAP + 30


def test_leaderboard_flags_a_network_pushing_one_variant_until_an_admin_overrules(
    writable_demo: DemoData, engine: Engine
) -> None:
    url, run_id = writable_demo.database_url, writable_demo.run_id
    add_crowd(url, run_id)
    # One network, a fresh rater every 10 votes (too few to test a rater), all for dev-turbo.
    for _ in range(6):
        add_votes(url, run_id, [("dev-turbo", "dev", "left")] * 10, network="198.51.100.9")
    view = board(engine, run_id)
    (state,) = view.flags
    assert (state.flag.kind, state.flag.subject) == ("network", "198.51.100.9")
    assert state.flag.test in ("one_variant", "off_consensus")
    assert "dev-turbo" in state.flag.reason or "consensus" in state.flag.reason
    assert (state.overruled, state.votes_left_out, view.anomaly_votes) == (False, 60, 60)
    assert view.n_votes == 200
    assert view.verdicts[0].verdict != "better"
    # An admin decides the network's votes count after all; then undoes it.
    with session_scope(engine) as session:
        set_review(session, run_id, "network", "198.51.100.9", count=True)
    counted = board(engine, run_id)
    assert (counted.n_votes, counted.anomaly_votes, counted.flags[0].overruled) == (260, 0, True)
    with session_scope(engine) as session:
        set_review(session, run_id, "network", "198.51.100.9", count=False)
    assert board(engine, run_id).n_votes == 200


def test_leaderboard_is_computed_once_per_change_across_processes(
    writable_demo: DemoData, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A view computed by one process is stored for its key; another process (here: this
    one with its in-process caches dropped) reads it instead of computing, until a vote."""
    import app.arena.leaderboard_cache as module
    from app.arena.leaderboard_cache import cache_clear
    from app.arena.vote_table import forget_tables

    url, run_id = writable_demo.database_url, writable_demo.run_id
    add_crowd(url, run_id)
    first = board(engine, run_id, rounds=50)
    cache_clear()
    forget_tables()

    def no_compute(*args: Any) -> LeaderboardView:
        raise AssertionError("computed again")

    with monkeypatch.context() as patch:
        patch.setattr(module, "compute_view", no_compute)
        again = board(engine, run_id, rounds=50)
    assert again.version == first.version
    assert [r.rating.rating for r in again.rows] == [r.rating.rating for r in first.rows]
    assert again.key.database == first.key.database  # the caller's key, not the stored one
    # A new vote is a new key: computed, and stored in place of the old one.
    add_votes(url, run_id, [("dev", "dev-turbo", "tie")])
    cache_clear()
    newer = board(engine, run_id, rounds=50)
    assert newer.n_votes == first.n_votes + 1
    with session_scope(engine) as session:
        stored = select(func.count()).select_from(LeaderboardSnapshot)
        assert session.scalar(stored.where(LeaderboardSnapshot.rounds == 50)) == 1
