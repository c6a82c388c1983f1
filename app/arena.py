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

from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from app.models import (
    Generation,
    Matchup,
    Panel,
    Rater,
    Run,
    Variant,
    VariantStatus,
    Vote,
    utcnow,
)

TOKEN_SALT = "flux-playground.arena.matchup"
ATTENTION_RATE = 0.08
FLAG_AFTER_FAILURES = 2


class ArenaError(Exception):
    """A request the arena refuses: an HTTP status and a reason for the user."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason


@dataclass(frozen=True)
class Issued:
    matchup: Matchup
    token: str


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


def issue_matchup(
    session: Session,
    run: Run,
    rater: Rater,
    secret_key: str,
    rng: random.Random | None = None,
) -> Issued:
    """Choose and record the next matchup for a rater, and sign its token."""
    rng = rng or random.SystemRandom()
    variants = list(
        session.scalars(
            select(Variant).where(Variant.run_id == run.id, Variant.status == VariantStatus.done)
        )
    )
    if len(variants) < 2:
        raise ArenaError(409, f"run {run.id} has fewer than two finished variants to compare")

    attention = rng.random() < ATTENTION_RATE
    if attention:
        left = right = rng.choice(variants)
    else:
        counts = pair_vote_counts(session, run.id)
        pairs = list(combinations(variants, 2))
        weights = [
            (2.0 if a.reference_id == b.id or b.reference_id == a.id else 1.0)
            / (1 + counts.get(frozenset((a.id, b.id)), 0))
            for a, b in pairs
        ]
        left, right = rng.choices(pairs, weights=weights)[0]
        if rng.random() < 0.5:
            left, right = right, left

    # A prompt and seed for which both variants have an image.
    other = aliased(Generation)
    candidates = session.execute(
        select(Generation.prompt_id, Generation.seed)
        .join(
            other,
            and_(
                other.prompt_id == Generation.prompt_id,
                other.seed == Generation.seed,
                other.variant_id == right.id,
            ),
        )
        .where(Generation.variant_id == left.id)
    ).all()
    if not candidates:
        raise ArenaError(409, f"{left.name} and {right.name} have no image of a common prompt")
    prompt_id, seed = rng.choice(candidates)
    matchup = Matchup(
        run_id=run.id,
        prompt_id=prompt_id,
        seed=seed,
        left_variant_id=left.id,
        right_variant_id=right.id,
        rater_id=rater.id,
        attention_check=attention,
        issued_at=utcnow(),
    )
    session.add(matchup)
    session.flush()
    token = serializer(secret_key).dumps({"m": matchup.id, "r": rater.id})
    return Issued(matchup=matchup, token=token)
