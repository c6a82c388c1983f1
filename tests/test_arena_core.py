"""The arena's rules on a real database copy of the web test run (no HTTP)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from sqlalchemy import select, update

from app.arena import ArenaError, get_or_create_rater, issue_matchup
from app.arena_votes import record_vote
from app.db import make_engine, session_scope
from app.models import Generation, Run, Variant, VariantStatus
from tests.conftest import DemoData


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
        rater = get_or_create_rater(session, None, None)
        for _ in range(60):
            matchup = issue_matchup(session, run, rater, "k", rng).pick
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
        rater = get_or_create_rater(session, None, None)
        rater_id = rater.id
        # Forty answered votes on (dev, schnell) only.
        voted = 0
        while voted < 40:
            issued = issue_matchup(session, run, rater, "k", rng)
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
            names(session, issue_matchup(session, run, rater, "k", rng).pick) for _ in range(300)
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
        rater = get_or_create_rater(session, None, None)
        with pytest.raises(ArenaError) as info:
            issue_matchup(session, run, rater, "k", random.Random(0))
    assert info.value.status_code == 409


def test_arena_core_unknown_panel_code(writable_demo: DemoData) -> None:
    engine = make_engine(writable_demo.database_url)
    with session_scope(engine) as session, pytest.raises(ArenaError) as info:
        get_or_create_rater(session, None, "nope")
    assert info.value.status_code == 404
