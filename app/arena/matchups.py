"""The arena's rules: which pair a rater sees next, and which votes count.

A matchup is two images of the same prompt and seed from two variants of a run, sides
randomized. Showing one writes nothing: the page carries it as an *offer*, a token that
holds the pair, the image, the rater it is for and a nonce, encrypted and authenticated
(Fernet, from the `cryptography` package) so the browser cannot read which variants the
sides are, and expiring. The vote brings the offer back; only then are the matchup row
and, at a rater's first vote, the rater written (app/arena/votes.py). The nonce is unique
among matchups, so a replayed offer finds it taken and nothing is stored. (A page view
that wrote a rater and a matchup let anyone fill the tables with rows nobody answered.)

Pair choice: every pair of finished variants can come up; pairs with fewer votes come up more
often (weight 1 / (1 + votes)), and a variant against its own reference counts double, since
that is the question users ask ("is the 3x faster variant as good as its base?").

Attention checks: now and then (ATTENTION_RATE) both sides show the same image; the expected
answer is a tie (or "both bad"). A rater who fails FLAG_AFTER_FAILURES of them is flagged, and
flagged raters' votes are left out of the ranking (the leaderboard shows how many).
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from itertools import combinations
from typing import cast

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, Table, bindparam, func, select
from sqlalchemy.orm import Session

from app.arena.catalog import VOTES, Contender, RunCatalog, load_catalog, pair_vote_counts
from app.models import Matchup, Panel, Rater, Run

TOKEN_SALT = "flux-playground.arena.matchup"
ATTENTION_RATE = 0.08
FLAG_AFTER_FAILURES = 2


class ArenaError(Exception):
    """A request the arena refuses: an HTTP status and a reason for the user."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason


# 1. The pair.


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
    offer: Offer
    pick: Pick
    token: str

    @property
    def rater_id(self) -> str:
        return self.offer.rater_id


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
    prompt_id, seed = _common_image(catalog, left, right, rng)
    return Pick(left=left, right=right, prompt_id=prompt_id, seed=seed, attention_check=attention)


# Draws of one side's image before listing what both sides have (see _common_image).
IMAGE_DRAWS = 16


def _common_image(
    catalog: RunCatalog, left: Contender, right: Contender, rng: random.Random
) -> tuple[int, int]:
    """A (prompt, seed) image both variants have, uniformly. Drawn from the left variant's
    images until the right one has it too (rejection sampling: uniform over the common
    ones): variants of a run usually share every image, so one draw does, where listing a
    pair's common images cost ~20 ms per pair at 6,500 images each (issue 11). After
    IMAGE_DRAWS misses, the list."""
    mine, theirs = catalog.images_of(left.id), catalog.images_of(right.id)
    for _ in range(IMAGE_DRAWS if len(mine) else 0):
        key = mine.key_at(rng.randrange(len(mine)))
        if key in theirs:
            return key
    candidates = catalog.common_images(left.id, right.id)
    if not candidates:
        raise ArenaError(409, f"{left.name} and {right.name} have no image of a common prompt")
    return rng.choice(candidates)


# 2. The offer: a matchup shown to a rater, held by the rater's browser until the vote.


@dataclass(frozen=True)
class Offer:
    """A matchup as issued: the pair, the image (prompt, seed), the rater it is for, the
    panel their invitation link named, and a nonce that makes one vote per offer."""

    run_id: int
    prompt_id: int
    seed: int
    left_variant_id: int
    right_variant_id: int
    attention_check: bool
    rater_id: str
    panel_id: int | None
    nonce: str
    issued_at: datetime | None = None  # known once the token is opened

    @classmethod
    def of(cls, pick: Pick, run_id: int, rater_id: str, panel_id: int | None) -> Offer:
        return cls(
            run_id=run_id,
            prompt_id=pick.prompt_id,
            seed=pick.seed,
            left_variant_id=pick.left.id,
            right_variant_id=pick.right.id,
            attention_check=pick.attention_check,
            rater_id=rater_id,
            panel_id=panel_id,
            nonce=secrets.token_urlsafe(NONCE_BYTES),
        )


NONCE_BYTES = 12  # 16 characters; unique among matchups (a UNIQUE index says so)


@lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    # A key of its own for the offers, derived from the app's secret (HKDF): the cookie
    # signatures and the offers' encryption never share key material.
    key = HKDF(algorithm=SHA256(), length=32, salt=None, info=TOKEN_SALT.encode()).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def seal_offer(secret_key: str, offer: Offer) -> str:
    """The token the page carries: the offer encrypted and authenticated (Fernet), so that
    the browser holds its matchup without learning which variants the sides are."""
    fields = [
        offer.run_id,
        offer.prompt_id,
        offer.seed,
        offer.left_variant_id,
        offer.right_variant_id,
        offer.attention_check,
        offer.rater_id,
        offer.panel_id,
        offer.nonce,
    ]
    return _fernet(secret_key).encrypt(json.dumps(fields, separators=(",", ":")).encode()).decode()


def open_offer(secret_key: str, token: str, max_age_s: int) -> Offer:
    """The offer a token holds. Raises ArenaError: 410 when it expired, 400 when it is not a
    token of ours (forged, tampered, truncated)."""
    fernet = _fernet(secret_key)
    try:
        data = fernet.decrypt(token, ttl=max_age_s)
    except InvalidToken:
        try:
            fernet.decrypt(token)  # authentic, so it only expired
        except (InvalidToken, ValueError):
            raise ArenaError(400, "invalid matchup token") from None
        raise ArenaError(410, "this matchup has expired; load a new one") from None
    except ValueError:  # not even base64
        raise ArenaError(400, "invalid matchup token") from None
    run, prompt, seed, left, right, attention, rater, panel, nonce = json.loads(data)
    return Offer(
        run_id=run,
        prompt_id=prompt,
        seed=seed,
        left_variant_id=left,
        right_variant_id=right,
        attention_check=attention,
        rater_id=rater,
        panel_id=panel,
        nonce=nonce,
        issued_at=datetime.fromtimestamp(fernet.extract_timestamp(token), UTC),
    )


# 3. Who the rater is, read when a matchup is shown (nothing is written then).

_panels = cast(Table, Panel.__table__)
RATERS = cast(Table, Rater.__table__)
MATCHUPS = cast(Table, Matchup.__table__)
# The votes of the rater bound to :rater so far (index range count on votes(rater_id, ...)).
RATER_VOTES = select(func.count()).where(VOTES.c.rater_id == bindparam("rater")).scalar_subquery()
_PANEL_BY_CODE = select(_panels.c.id, _panels.c.name).where(_panels.c.code == bindparam("code"))
_RATER = (
    select(RATERS.c.panel_id, _panels.c.name, RATER_VOTES)
    .outerjoin(_panels, _panels.c.id == RATERS.c.panel_id)
    .where(RATERS.c.id == bindparam("rater"))
)


@dataclass(frozen=True)
class Standing:
    """What the arena page shows about its rater, and the panel an offer names."""

    panel_id: int | None
    panel_name: str | None
    rater_votes: int


def rater_standing(
    conn: Connection, *, rater_id: str | None, panel_code: str | None, panels_only: bool
) -> Standing:
    """The rater's panel and votes so far (none for a rater who has not voted yet); a panel
    code joins a rater outside every panel to that panel at their next vote, never moves a
    panel's rater (a cross-site link could otherwise pull raters out of a study). Raises
    ArenaError for an unknown code (404) or an uninvited rater of a panel study (403)."""
    panel = None
    if panel_code:
        panel = conn.execute(_PANEL_BY_CODE, {"code": panel_code}).first()
        if panel is None:
            raise ArenaError(404, f"unknown panel code {panel_code!r}")
    known = conn.execute(_RATER, {"rater": rater_id}).first() if rater_id else None
    if known is not None and known.panel_id is not None:
        standing = Standing(known.panel_id, known.name, known[2])
    else:
        votes = known[2] if known is not None else 0
        standing = Standing(panel.id, panel.name, votes) if panel else Standing(None, None, votes)
    if panels_only and standing.panel_id is None:
        raise ArenaError(
            403,
            "this run's arena is a panel study: open it through your panel's invitation link",
        )
    return standing


def new_rater_id() -> str:
    return uuid.uuid4().hex


def issue_matchup(
    session: Session,
    run: Run,
    rater_id: str | None,
    secret_key: str,
    rng: random.Random | None = None,
    panel_code: str | None = None,
) -> Issued:
    """Choose and seal the next matchup, reading the catalog and pair counts afresh (the web
    app takes them from its cache and calls choose_matchup and rater_standing)."""
    pick = choose_matchup(
        load_catalog(session, run.id),
        pair_vote_counts(session, run.id),
        rng or random.SystemRandom(),
    )
    standing = rater_standing(
        session.connection(),
        rater_id=rater_id,
        panel_code=panel_code,
        panels_only=run.arena == "panels",
    )
    offer = Offer.of(pick, run.id, rater_id or new_rater_id(), standing.panel_id)
    return Issued(offer=offer, pick=pick, token=seal_offer(secret_key, offer))
