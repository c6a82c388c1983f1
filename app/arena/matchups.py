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
from datetime import timedelta
from itertools import combinations
from typing import cast

from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import Connection, Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from app.arena.catalog import Contender, RunCatalog, load_catalog
from app.arena.network import NEW_RATER_WINDOW_S
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
    rater_id: str
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


# The arena's hot statements run on the tables (Core), built once with bind parameters:
# see app/arena/votes.py for why. Shared with it: the tables and a rater's vote count.
MATCHUPS = cast(Table, Matchup.__table__)
RATERS = cast(Table, Rater.__table__)
VOTES = cast(Table, Vote.__table__)
_panels = cast(Table, Panel.__table__)
# The votes of the rater bound to :rater so far (index range count on votes(rater_id, ...)).
RATER_VOTES = select(func.count()).where(VOTES.c.rater_id == bindparam("rater")).scalar_subquery()

_PANEL_BY_CODE = select(_panels.c.id, _panels.c.name).where(_panels.c.code == bindparam("code"))
# The rater, their panel's name and their votes so far; no row for an unknown rater.
_RATER = (
    select(
        RATERS.c.panel_id,
        _panels.c.name,
        RATER_VOTES,
    )
    .outerjoin(_panels, _panels.c.id == RATERS.c.panel_id)
    .where(RATERS.c.id == bindparam("rater"))
)
_INSERT_RATER = insert(RATERS)
# Raters created from the network bound to :network since :since, counted up to :limit
# (bounded work however many it made).
_NETWORK_NEW_RATERS = select(func.count()).select_from(
    select(RATERS.c.id)
    .where(RATERS.c.network == bindparam("network"), RATERS.c.created_at > bindparam("since"))
    .limit(bindparam("limit"))
    .subquery()
)
_JOIN_PANEL = (
    update(RATERS).where(RATERS.c.id == bindparam("rater")).values(panel_id=bindparam("panel"))
)
_INSERT_MATCHUP = insert(MATCHUPS).returning(MATCHUPS.c.id)


@dataclass(frozen=True)
class Opened:
    """A matchup recorded for a rater (a new one when the cookie named none we know)."""

    matchup_id: int
    rater_id: str
    panel_name: str | None
    rater_votes: int


def open_matchup(
    conn: Connection,
    *,
    run_id: int,
    rater_id: str | None,
    panel_code: str | None,
    pick: Pick,
    network: str | None = None,
    new_raters_per_hour: int | None = None,
    panels_only: bool = False,
) -> Opened:
    """Record `pick` as a matchup issued to the rater of a (verified) cookie id, creating the
    rater when there is none; a valid panel code joins its panel. In the caller's
    transaction; raises ArenaError, nothing written, for an unknown panel code (404), a
    rater outside every panel when `panels_only` (403), or a network that made more than
    `new_raters_per_hour` raters in the last hour (429)."""
    panel: tuple[int, str] | None = None
    if panel_code:
        found = conn.execute(_PANEL_BY_CODE, {"code": panel_code}).first()
        if found is None:
            raise ArenaError(404, f"unknown panel code {panel_code!r}")
        panel = (found.id, found.name)
    known = conn.execute(_RATER, {"rater": rater_id}).first() if rater_id else None
    if panels_only and panel is None and (known is None or known.panel_id is None):
        raise ArenaError(
            403,
            "this run's arena is a panel study: open it through your panel's invitation link",
        )
    if rater_id is None or known is None:
        if network is not None and new_raters_per_hour is not None:
            since = utcnow() - timedelta(seconds=NEW_RATER_WINDOW_S)
            made = conn.execute(
                _NETWORK_NEW_RATERS,
                {"network": network, "since": since, "limit": new_raters_per_hour},
            )
            if made.scalar_one() >= new_raters_per_hour:
                raise ArenaError(
                    429,
                    f"too many new raters from your network: at most {new_raters_per_hour} "
                    "an hour; keep your cookie to go on voting",
                )
        rater_id = uuid.uuid4().hex
        conn.execute(
            _INSERT_RATER,
            {
                "id": rater_id,
                "panel_id": panel[0] if panel else None,
                "network": network,
                "created_at": utcnow(),
            },
        )
        panel_name, rater_votes = (panel[1] if panel else None), 0
    else:
        panel_id, panel_name, rater_votes = known
        # A link joins a rater to a panel once; it never moves a panel's rater to another
        # (a cross-site link could otherwise pull raters out of a study).
        if panel is not None and panel_id is None:
            conn.execute(_JOIN_PANEL, {"rater": rater_id, "panel": panel[0]})
            panel_name = panel[1]
    matchup_id = conn.execute(
        _INSERT_MATCHUP,
        {
            "run_id": run_id,
            "prompt_id": pick.prompt_id,
            "seed": pick.seed,
            "left_variant_id": pick.left.id,
            "right_variant_id": pick.right.id,
            "rater_id": rater_id,
            "attention_check": pick.attention_check,
            "issued_at": utcnow(),
        },
    ).scalar_one()
    return Opened(
        matchup_id=matchup_id, rater_id=rater_id, panel_name=panel_name, rater_votes=rater_votes
    )


def sign_matchup(secret_key: str, matchup_id: int, rater_id: str) -> str:
    """The token a vote on this matchup must carry (checked by app.arena.votes)."""
    return serializer(secret_key).dumps({"m": matchup_id, "r": rater_id})


def issue_matchup(
    session: Session,
    run: Run,
    rater_id: str | None,
    secret_key: str,
    rng: random.Random | None = None,
) -> Issued:
    """Choose, record and sign the next matchup, reading the catalog and pair counts afresh
    (the web app takes them from its cache and calls choose_matchup and open_matchup)."""
    pick = choose_matchup(
        load_catalog(session, run.id),
        pair_vote_counts(session, run.id),
        rng or random.SystemRandom(),
    )
    opened = open_matchup(
        session.connection(), run_id=run.id, rater_id=rater_id, panel_code=None, pick=pick
    )
    return Issued(
        matchup_id=opened.matchup_id,
        rater_id=opened.rater_id,
        pick=pick,
        token=sign_matchup(secret_key, opened.matchup_id, opened.rater_id),
    )
