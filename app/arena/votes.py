"""A vote: checked, then stored. The arena's hot path under load.

Two halves, so that the web layer can run the first on its event loop and only the second
on the database writer (app/arena/write_queue.py):

- `check_ballot` needs no database: the outcome is one of the four answers, the token is
  ours, untampered, unexpired and was issued to the rater whose cookie sent it.
- `store_ballot` needs the database and nothing else: one read (the rater's panel and their
  votes of the last minute, for the rate limit), the conditional UPDATE ... RETURNING that
  both checks and claims the matchup (only an unanswered matchup issued to this rater
  matches, so a replay or a second vote finds nothing), for an attention check an UPDATE of
  the rater's tally, and the INSERT. Every refusal comes before the first write.

The statements are built once, at import, with bind parameters, and run on the tables (Core),
not the ORM classes: building a statement and its cache key, and ORM-enabled DML, cost more
than SQLite's own work here (measured in docs/benchmarks.md, "Arena votes under load").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, SignatureExpired
from sqlalchemy import Connection, bindparam, func, insert, select, update

from app.arena.matchups import (
    FLAG_AFTER_FAILURES,
    MATCHUPS,
    RATER_VOTES,
    RATERS,
    VOTES,
    ArenaError,
    serializer,
)
from app.models import VoteOutcome, utcnow

# The expected answers to an attention check (both sides are the same image).
ATTENTION_ANSWERS = (VoteOutcome.tie, VoteOutcome.both_bad)
RATE_WINDOW = timedelta(minutes=1)

# The rater's panel, how many votes they cast since :since and in all (index range scans on
# votes(rater_id, created_at)); no row when there is no such rater.
_RATER_PANEL_AND_VOTES = select(
    RATERS.c.panel_id,
    select(func.count())
    .where(VOTES.c.rater_id == bindparam("rater"), VOTES.c.created_at > bindparam("since"))
    .scalar_subquery(),
    RATER_VOTES,
).where(RATERS.c.id == bindparam("rater"))

_CLAIM_MATCHUP = (
    update(MATCHUPS)
    .where(
        MATCHUPS.c.id == bindparam("matchup"),
        MATCHUPS.c.rater_id == bindparam("rater"),
        MATCHUPS.c.answered_at.is_(None),
    )
    .values(answered_at=bindparam("now"))
    .returning(
        MATCHUPS.c.run_id,
        MATCHUPS.c.prompt_id,
        MATCHUPS.c.seed,
        MATCHUPS.c.left_variant_id,
        MATCHUPS.c.right_variant_id,
        MATCHUPS.c.attention_check,
    )
)

_ISSUED_TO = select(func.count()).where(
    MATCHUPS.c.id == bindparam("matchup"), MATCHUPS.c.rater_id == bindparam("rater")
)

_INSERT_VOTE = insert(VOTES).returning(VOTES.c.id)

_ATTENTION_PASSED = (
    update(RATERS)
    .where(RATERS.c.id == bindparam("rater"))
    .values(attention_passed=RATERS.c.attention_passed + 1)
)
_ATTENTION_FAILED = (
    update(RATERS)
    .where(RATERS.c.id == bindparam("rater"))
    .values(
        attention_failed=RATERS.c.attention_failed + 1,
        flagged=RATERS.c.attention_failed + 1 >= FLAG_AFTER_FAILURES,
    )
)


@dataclass(frozen=True)
class Ballot:
    """A vote whose token checked out: which matchup, by whom, which answer."""

    matchup_id: int
    rater_id: str
    outcome: VoteOutcome


@dataclass(frozen=True)
class RecordedVote:
    """A stored vote, with the columns a reveal needs."""

    id: int
    matchup_id: int
    run_id: int
    prompt_id: int
    seed: int
    left_variant_id: int
    right_variant_id: int
    outcome: VoteOutcome
    attention_check: bool
    rater_id: str
    created_at: datetime
    rater_votes: int  # the rater's votes so far, this one included


def check_ballot(
    *, token: str, rater_id: str | None, outcome: str, secret_key: str, max_age_s: int
) -> Ballot:
    """Everything about a vote that needs no database. Raises ArenaError."""
    # 1. The outcome is one of the four answers.
    try:
        answer = VoteOutcome(outcome)
    except ValueError:
        raise ArenaError(422, f"unknown outcome {outcome!r}") from None
    # 2. The token is ours, untampered, and not expired.
    try:
        payload = serializer(secret_key).loads(token, max_age=max_age_s)
    except SignatureExpired:
        raise ArenaError(410, "this matchup has expired; load a new one") from None
    except BadSignature:
        raise ArenaError(400, "invalid matchup token") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("m"), int):
        raise ArenaError(400, "invalid matchup token")
    # 3. It was issued to this rater (a token is not transferable between browsers).
    if rater_id is None or payload.get("r") != rater_id:
        raise ArenaError(403, "this matchup was issued to another rater")
    return Ballot(matchup_id=payload["m"], rater_id=rater_id, outcome=answer)


def store_ballot(
    conn: Connection,
    ballot: Ballot,
    *,
    votes_per_minute: int,
    network: str | None = None,
) -> RecordedVote:
    """Store the vote and mark its matchup answered, in the caller's transaction. Raises
    ArenaError, having written nothing, when the vote is not acceptable. `network` (see
    app/arena/network.py) is stored with the vote; the web tier limits it beforehand."""
    now = utcnow()
    since = now - RATE_WINDOW
    rater = conn.execute(_RATER_PANEL_AND_VOTES, {"rater": ballot.rater_id, "since": since}).first()
    if rater is None:
        raise ArenaError(400, "this matchup was never issued")
    panel_id, recent, cast_before = rater
    # 4. Not faster than a person votes. (Two votes of one rater racing on PostgreSQL may
    # both pass this count; on SQLite the writes are serialized.)
    if recent >= votes_per_minute:
        raise ArenaError(429, f"too many votes: at most {votes_per_minute} a minute")
    # 5. Once, by this rater: only an unanswered matchup issued to them matches.
    keys = {"matchup": ballot.matchup_id, "rater": ballot.rater_id}
    claimed = conn.execute(_CLAIM_MATCHUP, {**keys, "now": now}).first()
    if claimed is None:
        if conn.execute(_ISSUED_TO, keys).scalar_one():
            raise ArenaError(409, "this matchup has already been answered")
        raise ArenaError(400, "this matchup was never issued")
    run_id, prompt_id, seed, left_id, right_id, attention = claimed

    if attention:
        passed = ballot.outcome in ATTENTION_ANSWERS
        conn.execute(_ATTENTION_PASSED if passed else _ATTENTION_FAILED, {"rater": ballot.rater_id})
    columns: dict[str, Any] = {
        "matchup_id": ballot.matchup_id,
        "run_id": run_id,
        "prompt_id": prompt_id,
        "seed": seed,
        "left_variant_id": left_id,
        "right_variant_id": right_id,
        "outcome": ballot.outcome,
        "attention_check": attention,
        "rater_id": ballot.rater_id,
        "created_at": now,
    }
    vote_id = conn.execute(
        _INSERT_VOTE, {**columns, "panel_id": panel_id, "network": network}
    ).scalar_one()
    return RecordedVote(id=vote_id, rater_votes=cast_before + 1, **columns)


def record_vote(
    conn: Connection,
    *,
    token: str,
    rater_id: str | None,
    outcome: str,
    secret_key: str,
    max_age_s: int,
    votes_per_minute: int,
) -> RecordedVote:
    """check_ballot, then store_ballot, in the caller's transaction."""
    ballot = check_ballot(
        token=token, rater_id=rater_id, outcome=outcome, secret_key=secret_key, max_age_s=max_age_s
    )
    return store_ballot(conn, ballot, votes_per_minute=votes_per_minute)
