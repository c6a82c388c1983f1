"""The arena's rules on a real database copy of the web test run (no HTTP)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from sqlalchemy import func, select, update

from app.arena.matchups import ArenaError, Issued, issue_matchup, rater_standing
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


def test_arena_core_unknown_panel_code_is_not_found(writable_demo: DemoData) -> None:
    engine = make_engine(writable_demo.database_url)
    with engine.connect() as conn, pytest.raises(ArenaError) as info:
        rater_standing(conn, rater_id=None, panel_code="nope", panels_only=False)
    assert info.value.status_code == 404


def test_arena_core_raters_are_made_at_their_first_vote_and_keep_their_panel(
    writable_demo: DemoData,
) -> None:
    engine = make_engine(writable_demo.database_url)
    with session_scope(engine) as session:
        session.add_all([Panel(code="lab", name="Lab"), Panel(code="other", name="Other")])
        session.flush()
        conn = session.connection()
        run = session.get_one(Run, writable_demo.run_id)
        rng = random.Random(1)

        def vote(issued: Issued) -> None:
            record_vote(
                conn,
                token=issued.token,
                rater_id=issued.rater_id,
                outcome="tie",
                secret_key="k",
                max_age_s=60,
                votes_per_minute=100,
            )

        # A cookie naming no rater we know (a first visit, or a wiped database): nothing is
        # read or written until the vote, which makes the rater.
        first = issue_matchup(session, run, "f" * 32, "k", rng)
        assert first.rater_id == "f" * 32 and first.offer.panel_id is None
        assert session.get(Rater, "f" * 32) is None
        vote(first)
        assert session.get_one(Rater, "f" * 32).panel_id is None
        # Through a panel link the offer names the panel, and the vote joins it ...
        joined = issue_matchup(session, run, "f" * 32, "k", rng, panel_code="lab")
        vote(joined)
        rater = session.get_one(Rater, "f" * 32)
        session.refresh(rater)
        assert rater.panel is not None and rater.panel.code == "lab"
        standing = rater_standing(conn, rater_id="f" * 32, panel_code=None, panels_only=True)
        assert (standing.panel_name, standing.rater_votes) == ("Lab", 2)
        # ... and another panel's link does not move a panel's rater.
        stayed = issue_matchup(session, run, "f" * 32, "k", rng, panel_code="other")
        assert stayed.offer.panel_id == rater.panel_id
        vote(stayed)
        session.refresh(rater)
        assert rater.panel.code == "lab"
        assert session.scalar(select(func.count()).select_from(Rater)) == 1
