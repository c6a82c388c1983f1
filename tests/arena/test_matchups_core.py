"""The arena's rules on a real database copy of the web test run (no HTTP)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from sqlalchemy import func, select, update

from app.arena.catalog import load_catalog
from app.arena.matchups import ArenaError, choose_matchup, issue_matchup, open_matchup
from app.arena.votes import record_vote
from app.db import make_engine, session_scope
from app.models import Generation, Panel, Rater, Run, Variant, VariantStatus
from tests.conftest import DemoData

# Each test that writes runs on a copy of the web test run on SQLite and on PostgreSQL.
pytestmark = pytest.mark.both_databases


def names(session, matchup) -> frozenset[str]:  # type: ignore[no-untyped-def]
    return frozenset(
        session.get_one(Variant, vid).name
        for vid in (matchup.left_variant_id, matchup.right_variant_id)
    )


def test_arena_core_matchups_pair_finished_variants_on_a_common_image(
    writable_demo: DemoData,
) -> None:
    engine = make_engine(writable_demo.database_url)
    rng = random.Random(3)
    with session_scope(engine) as session:
        run = session.get_one(Run, writable_demo.run_id)
        rater_id = None
        for _ in range(60):
            issued = issue_matchup(session, run, rater_id, "k", rng)
            rater_id, matchup = issued.rater_id, issued.pick
            assert "schnell-fp8" not in names(session, matchup)  # failed: no images
            for vid in (matchup.left_variant_id, matchup.right_variant_id):
                assert session.scalars(
                    select(Generation.id).where(
                        Generation.variant_id == vid,
                        Generation.prompt_id == matchup.prompt_id,
                        Generation.seed == matchup.seed,
                    )
                ).one()


def test_arena_core_pairs_with_fewer_votes_come_up_more_often(writable_demo: DemoData) -> None:
    engine = make_engine(writable_demo.database_url)
    rng = random.Random(7)
    with session_scope(engine) as session:
        run = session.get_one(Run, writable_demo.run_id)
        rater_id = issue_matchup(session, run, None, "k", rng).rater_id
        # Forty answered votes on (dev, schnell) only.
        voted = 0
        while voted < 40:
            issued = issue_matchup(session, run, rater_id, "k", rng)
            if names(session, issued.pick) == {"dev", "schnell"}:
                record_vote(
                    session.connection(),
                    token=issued.token,
                    rater_id=rater_id,
                    outcome="tie",
                    secret_key="k",
                    max_age_s=60,
                    votes_per_minute=10_000,
                )
                voted += 1
        seen = Counter(
            names(session, issue_matchup(session, run, rater_id, "k", rng).pick) for _ in range(300)
        )
    assert seen[frozenset({"dev", "schnell"})] < seen[frozenset({"dev-turbo", "schnell"})] / 5
    # dev-turbo against its own reference counts double.
    assert seen[frozenset({"dev", "dev-turbo"})] > seen[frozenset({"dev-turbo", "schnell"})]


def test_arena_core_needs_two_finished_variants(writable_demo: DemoData) -> None:
    engine = make_engine(writable_demo.database_url)
    with session_scope(engine) as session:
        session.execute(
            update(Variant).where(Variant.name != "dev").values(status=VariantStatus.failed)
        )
        run = session.get_one(Run, writable_demo.run_id)
        with pytest.raises(ArenaError) as info:
            issue_matchup(session, run, None, "k", random.Random(0))
    assert info.value.status_code == 409


def test_arena_core_unknown_panel_code_writes_nothing(writable_demo: DemoData) -> None:
    engine = make_engine(writable_demo.database_url)
    with session_scope(engine) as session:
        pick = choose_matchup(load_catalog(session, writable_demo.run_id), {}, random.Random(0))
        raters_before = session.scalar(select(func.count()).select_from(Rater))
        with pytest.raises(ArenaError) as info:
            open_matchup(
                session.connection(),
                run_id=writable_demo.run_id,
                rater_id=None,
                panel_code="nope",
                pick=pick,
            )
        assert session.scalar(select(func.count()).select_from(Rater)) == raters_before
    assert info.value.status_code == 404


def test_arena_core_open_matchup_creates_keeps_and_moves_raters(writable_demo: DemoData) -> None:
    engine = make_engine(writable_demo.database_url)
    with session_scope(engine) as session:
        session.add(Panel(code="lab", name="Lab"))
        session.flush()
        conn = session.connection()
        pick = choose_matchup(load_catalog(session, writable_demo.run_id), {}, random.Random(1))
        args = {"run_id": writable_demo.run_id, "pick": pick}
        # A cookie naming no rater we know (a wiped database, say) gets a new rater.
        first = open_matchup(conn, rater_id="f" * 32, panel_code=None, **args)
        assert first.rater_id != "f" * 32
        assert (first.panel_name, first.rater_votes) == (None, 0)
        # The same rater again; then through a panel link, which joins them to the panel.
        again = open_matchup(conn, rater_id=first.rater_id, panel_code=None, **args)
        joined = open_matchup(conn, rater_id=first.rater_id, panel_code="lab", **args)
        assert again.rater_id == joined.rater_id == first.rater_id
        assert joined.panel_name == "Lab"
        rater = session.get_one(Rater, first.rater_id)
        session.refresh(rater)
        assert rater.panel is not None and rater.panel.code == "lab"
        assert len({first.matchup_id, again.matchup_id, joined.matchup_id}) == 3
        # Another panel's link does not move a panel's rater.
        session.add(Panel(code="other", name="Other"))
        session.flush()
        stayed = open_matchup(conn, rater_id=first.rater_id, panel_code="other", **args)
        assert stayed.panel_name == "Lab"
        session.refresh(rater)
        assert rater.panel.code == "lab"
