"""The arena's rules: which pair a rater sees next, and which votes count.

A matchup is two images of the same prompt and seed from two variants of a run, sides
randomized, issued to one rater as a signed, expiring token (itsdangerous) that names the
matchup and the rater. A vote must carry such a token, for the rater whose cookie sent it,
within its lifetime, once: the matchup's `answered_at` is set by a conditional UPDATE in the
same transaction that stores the vote, so a replay finds it set and nothing is stored.

Pair choice: every pair of finished variants can come up; pairs with fewer votes come up more
often (weight 1 / (1 + votes)), and a variant against its own reference counts double, since
that is the question users ask ("is the 3x faster variant as good as its base?").

Attention checks: now and then (ATTENTION_RATE) both sides show the same image; the expected
answer is a tie (or "both bad"). A rater who fails FLAG_AFTER_FAILURES of them is flagged, and
flagged raters' votes are left out of the ranking (the leaderboard shows how many).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from itertools import combinations
from typing import cast

from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from app.arena_catalog import Contender, RunCatalog, load_catalog
from app.models import Matchup, Panel, Rater, Run, Vote, utcnow

TOKEN_SALT = "flux-playground.arena.matchup"
ATTENTION_RATE = 0.08
FLAG_AFTER_FAILURES = 2


class ArenaError(Exception):
    """A request the arena refuses: an HTTP status and a reason for the user."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason


def serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=TOKEN_SALT)


def get_or_create_rater(session: Session, rater_id: str | None, panel_code: str | None) -> Rater:
    """The rater of a (verified) cookie id, or a new one. A valid panel code joins its panel."""
    rater = session.get(Rater, rater_id) if rater_id else None
    if rater is None:
        rater = Rater(id=uuid.uuid4().hex, attention_passed=0, attention_failed=0, flagged=False)
        session.add(rater)
    if panel_code:
        panel = session.scalars(select(Panel).where(Panel.code == panel_code)).first()
        if panel is None:
            raise ArenaError(404, f"unknown panel code {panel_code!r}")
        rater.panel_id = panel.id
    session.flush()
    return rater


def pair_vote_counts(session: Session, run_id: int) -> dict[frozenset[int], int]:
    """Counted votes per unordered variant pair (attention checks excluded)."""
    counts: dict[frozenset[int], int] = {}
    for left, right, n in session.execute(
        select(Vote.left_variant_id, Vote.right_variant_id, func.count())
        .where(Vote.run_id == run_id, Vote.attention_check.is_(False))
        .group_by(Vote.left_variant_id, Vote.right_variant_id)
    ):
        key = frozenset((left, right))
        counts[key] = counts.get(key, 0) + n
    return counts


@dataclass(frozen=True)
class Pick:
    """The pair and the image chosen for a rater's next matchup."""

    left: Contender
    right: Contender
    prompt_id: int
    seed: int
    attention_check: bool

    @property
    def left_variant_id(self) -> int:
        return self.left.id

    @property
    def right_variant_id(self) -> int:
        return self.right.id


@dataclass(frozen=True)
class Issued:
    matchup_id: int
    pick: Pick
    token: str


def choose_matchup(
    catalog: RunCatalog, pair_counts: dict[frozenset[int], int], rng: random.Random
) -> Pick:
    """The next pair (weighted as the module says) and an image of the same prompt and seed
    both have; now and then an attention check instead. No database: see app/arena_catalog."""
    variants = catalog.contenders
    if len(variants) < 2:
        raise ArenaError(
            409, f"run {catalog.run_id} has fewer than two finished variants to compare"
        )
    attention = rng.random() < ATTENTION_RATE
    if attention:
        left = right = rng.choice(variants)
    else:
        pairs = list(combinations(variants, 2))
        weights = [
            (2.0 if a.reference_id == b.id or b.reference_id == a.id else 1.0)
            / (1 + pair_counts.get(frozenset((a.id, b.id)), 0))
            for a, b in pairs
        ]
        left, right = rng.choices(pairs, weights=weights)[0]
        if rng.random() < 0.5:
            left, right = right, left
    candidates = catalog.common_images(left.id, right.id)
    if not candidates:
        raise ArenaError(409, f"{left.name} and {right.name} have no image of a common prompt")
    prompt_id, seed = rng.choice(candidates)
    return Pick(left=left, right=right, prompt_id=prompt_id, seed=seed, attention_check=attention)


_INSERT_MATCHUP = insert(cast(Table, Matchup.__table__)).returning(Matchup.__table__.c.id)


def issue_matchup(
    session: Session,
    run: Run,
    rater: Rater,
    secret_key: str,
    rng: random.Random | None = None,
    *,
    catalog: RunCatalog | None = None,
    pair_counts: dict[frozenset[int], int] | None = None,
) -> Issued:
    """Choose and record the next matchup for a rater, and sign its token. The web app
    passes the run's catalog and pair counts from its cache; without them they are read."""
    pick = choose_matchup(
        catalog or load_catalog(session, run.id),
        pair_vote_counts(session, run.id) if pair_counts is None else pair_counts,
        rng or random.SystemRandom(),
    )
    matchup_id = session.execute(
        _INSERT_MATCHUP,
        {
            "run_id": run.id,
            "prompt_id": pick.prompt_id,
            "seed": pick.seed,
            "left_variant_id": pick.left.id,
            "right_variant_id": pick.right.id,
            "rater_id": rater.id,
            "attention_check": pick.attention_check,
            "issued_at": utcnow(),
        },
    ).scalar_one()
    token = serializer(secret_key).dumps({"m": matchup_id, "r": rater.id})
    return Issued(matchup_id=matchup_id, pick=pick, token=token)
