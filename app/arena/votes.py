"""A vote: checked, then stored. The arena's hot path under load.

Two halves, so that the web layer can run the first on its event loop and only the second
on the database writer (app/arena/write_queue.py):

- `check_ballot` needs no database: the outcome is one of the four answers, the token is an
  offer of ours (app/arena/matchups.py), unexpired, issued to the rater whose cookie sent it.
- `store_ballot` needs the database and nothing else: one read (the rater's panel and
  votes, for the rate limit; none at a rater's first vote) and one for the offer's nonce (a
  replay finds it taken); at a first vote, the network's new raters of the hour. Then the
  writes: the rater at their first vote, the matchup (answered now), for an attention check
  the rater's tally, and the vote. Every refusal comes before the first write.

The statements are built once, at import, with bind parameters, and run on the tables (Core),
not the ORM classes: building a statement and its cache key, and ORM-enabled DML, cost more
than SQLite's own work here (measured in docs/benchmarks.md, "Arena votes under load").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Insert, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.arena.matchups import (
    FLAG_AFTER_FAILURES,
    MATCHUPS,
    RATER_VOTES,
    RATERS,
    VOTES,
    ArenaError,
    Offer,
    open_offer,
)
from app.arena.network import NEW_RATER_WINDOW_S
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

_NONCE_TAKEN = select(func.count()).where(MATCHUPS.c.nonce == bindparam("nonce"))


def _insert_once(table: Table) -> dict[str, Insert]:
    """INSERT ... ON CONFLICT DO NOTHING, per dialect: two racing votes of one offer (or of
    one new rater) on PostgreSQL store one row, and the other finds nothing returned."""
    return {
        "sqlite": sqlite.insert(table).on_conflict_do_nothing(),
        "postgresql": postgresql.insert(table).on_conflict_do_nothing(),
    }


_INSERT_RATER = _insert_once(RATERS)
_INSERT_MATCHUP = {
    name: statement.returning(MATCHUPS.c.id) for name, statement in _insert_once(MATCHUPS).items()
}
_JOIN_PANEL = (
    update(RATERS)
    .where(RATERS.c.id == bindparam("rater"), RATERS.c.panel_id.is_(None))
    .values(panel_id=bindparam("panel"))
)
# Raters created from the network bound to :network since :since, counted up to :limit
# (bounded work however many it made).
_NETWORK_NEW_RATERS = select(func.count()).select_from(
    select(RATERS.c.id)
    .where(RATERS.c.network == bindparam("network"), RATERS.c.created_at > bindparam("since"))
    .limit(bindparam("limit"))
    .subquery()
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
    """A vote whose token checked out: the offer it answers, and the answer."""

    offer: Offer
    outcome: VoteOutcome

    @property
    def rater_id(self) -> str:
        return self.offer.rater_id


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
    # 2. The token is an offer of ours, untampered, and not expired.
    offer = open_offer(secret_key, token, max_age_s)
    # 3. It was issued to this rater (a token is not transferable between browsers).
    if rater_id is None or offer.rater_id != rater_id:
        raise ArenaError(403, "this matchup was issued to another rater")
    return Ballot(offer=offer, outcome=answer)


def store_ballot(
    conn: Connection,
    ballot: Ballot,
    *,
    votes_per_minute: int,
    network: str | None = None,
    new_raters_per_hour: int | None = None,
) -> RecordedVote:
    """Store the vote, its matchup and (at a first vote) its rater, in the caller's
    transaction. Raises ArenaError, having written nothing, when the vote is not acceptable.
    `network` (see app/arena/network.py) is stored with the vote and a new rater; the web
    tier limits its votes beforehand, and a network that made `new_raters_per_hour` raters
    in the last hour makes no more."""
    offer = ballot.offer
    now = utcnow()
    rater = conn.execute(
        _RATER_PANEL_AND_VOTES, {"rater": offer.rater_id, "since": now - RATE_WINDOW}
    ).first()
    # 4. Once: an offer's nonce is taken by its first vote.
    if conn.execute(_NONCE_TAKEN, {"nonce": offer.nonce}).scalar_one():
        raise ArenaError(409, "this matchup has already been answered")
    if rater is None:
        # 5a. A new rater: a cookie costs a bot nothing, so a network makes only so many.
        _check_new_rater(conn, network, new_raters_per_hour, now)
        panel_id, cast_before = offer.panel_id, 0
    else:
        # 5b. Not faster than a person votes. (Two votes of one rater racing on PostgreSQL
        # may both pass this count; on SQLite the writes are serialized.)
        panel_id, recent, cast_before = rater
        if recent >= votes_per_minute:
            raise ArenaError(429, f"too many votes: at most {votes_per_minute} a minute")
    dialect = conn.dialect.name
    if rater is None:
        conn.execute(
            _INSERT_RATER[dialect],
            {"id": offer.rater_id, "panel_id": panel_id, "network": network, "created_at": now},
        )
    elif panel_id is None and offer.panel_id is not None:
        # A panel link joins a rater outside every panel (see matchups.rater_standing).
        conn.execute(_JOIN_PANEL, {"rater": offer.rater_id, "panel": offer.panel_id})
        panel_id = offer.panel_id
    pairing = {
        "run_id": offer.run_id,
        "prompt_id": offer.prompt_id,
        "seed": offer.seed,
        "left_variant_id": offer.left_variant_id,
        "right_variant_id": offer.right_variant_id,
        "attention_check": offer.attention_check,
        "rater_id": offer.rater_id,
    }
    matchup_id = conn.execute(
        _INSERT_MATCHUP[dialect],
        {**pairing, "nonce": offer.nonce, "issued_at": offer.issued_at, "answered_at": now},
    ).scalar_one_or_none()
    if matchup_id is None:
        # Lost a race with a second vote of the same offer (PostgreSQL): that one stands.
        raise ArenaError(409, "this matchup has already been answered")
    if offer.attention_check:
        passed = ballot.outcome in ATTENTION_ANSWERS
        conn.execute(_ATTENTION_PASSED if passed else _ATTENTION_FAILED, {"rater": offer.rater_id})
    columns: dict[str, Any] = {
        **pairing,
        "matchup_id": matchup_id,
        "outcome": ballot.outcome,
        "created_at": now,
    }
    vote_id = conn.execute(
        _INSERT_VOTE, {**columns, "panel_id": panel_id, "network": network}
    ).scalar_one()
    return RecordedVote(id=vote_id, rater_votes=cast_before + 1, **columns)


def _check_new_rater(
    conn: Connection, network: str | None, new_raters_per_hour: int | None, now: datetime
) -> None:
    if network is None or new_raters_per_hour is None:
        return
    made = conn.execute(
        _NETWORK_NEW_RATERS,
        {
            "network": network,
            "since": now - timedelta(seconds=NEW_RATER_WINDOW_S),
            "limit": new_raters_per_hour,
        },
    ).scalar_one()
    if made >= new_raters_per_hour:
        raise ArenaError(
            429,
            f"too many new raters from your network: at most {new_raters_per_hour} an hour; "
            "keep your cookie to go on voting",
        )


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
