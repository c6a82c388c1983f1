"""A run's votes as numpy columns, loaded once and then only what is new.

The leaderboard reads every vote of a run (a bootstrap that resamples raters and anomaly
tests need who cast what). Through the ORM, row by row, that took 8 s for a million votes
(issue 11); here the columns come from one Core query without per-row conversion, raters and
networks become integer codes, and the table is kept per process: the next computation reads
only the votes stored since (ids above the last one read), so a vote costs the leaderboard
the reading of one row, not of the million before it.

Votes are in id order: the order they were stored, which is the order they were cast (ids
and `created_at` both come from the one writer per process; across processes on PostgreSQL
two votes of the same instant may swap, which only the online Elo view would notice).
Attention checks are left out here; flags are applied by the caller (they change).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Row, String, select, type_coerce
from sqlalchemy.orm import Session

from app.arena.catalog import VOTES
from app.models import Prompt, Variant

OUTCOMES = ("left", "right", "tie", "both_bad")
_OUTCOME_CODE = {name: code for code, name in enumerate(OUTCOMES)}
NO_NETWORK = -1  # a panel vote (networks are for anonymous ones), or no network kept

IntArray = NDArray[np.int64]
SmallArray = NDArray[np.int32]


@dataclass(eq=False)
class VoteTable:
    """The columns, one entry per vote in id order; codes index the lists beside them."""

    variant_ids: tuple[int, ...]  # config order; `left`/`right` index it
    categories: list[str]  # the run's prompt categories; `category` indexes it
    ids: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    left: SmallArray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    right: SmallArray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    outcome: NDArray[np.int8] = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    category: NDArray[np.int16] = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    prompt: SmallArray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))  # prompt id
    seed: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    rater: SmallArray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    network: SmallArray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    panel: SmallArray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))  # 0: none
    raters: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    rater_codes: dict[str, int] = field(default_factory=dict)
    network_codes: dict[str, int] = field(default_factory=dict)
    category_of_prompt: dict[int, int] = field(default_factory=dict)
    last_id: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    def upto(self, max_vote_id: int) -> NDArray[np.bool_]:
        """The mask of votes with ids up to `max_vote_id` (a key's votes, exactly)."""
        return self.ids <= max_vote_id


def _code(codes: dict[str, int], names: list[str], value: str) -> int:
    found = codes.get(value)
    if found is None:
        found = codes[value] = len(names)
        names.append(value)
    return found


def _empty(session: Session, run_id: int) -> VoteTable:
    variant_ids = tuple(
        session.scalars(
            select(Variant.id).where(Variant.run_id == run_id).order_by(Variant.position)
        )
    )
    categories: list[str] = []
    category_of_prompt: dict[int, int] = {}
    codes: dict[str, int] = {}
    for prompt_id, category in session.execute(
        select(Prompt.id, Prompt.category).where(Prompt.run_id == run_id).order_by(Prompt.position)
    ):
        category_of_prompt[prompt_id] = _code(codes, categories, category)
    return VoteTable(variant_ids, categories, category_of_prompt=category_of_prompt)


# Rows converted to columns at a time: a million rows as Python tuples at once took ~500 MB,
# which the allocator kept after they were freed (the server's RSS stayed at 870 MB).
CHUNK_ROWS = 20_000


def _extend(session: Session, run_id: int, table: VoteTable, max_vote_id: int) -> None:
    """Read the run's votes with ids in (table.last_id, max_vote_id] and append them."""
    result = session.execute(
        select(
            VOTES.c.id,
            VOTES.c.left_variant_id,
            VOTES.c.right_variant_id,
            # The raw string: converting a million values to the enum took a second and a half.
            type_coerce(VOTES.c.outcome, String),
            VOTES.c.prompt_id,
            VOTES.c.seed,
            VOTES.c.rater_id,
            VOTES.c.network,
            VOTES.c.panel_id,
        )
        .where(
            VOTES.c.run_id == run_id,
            VOTES.c.id > table.last_id,
            VOTES.c.id <= max_vote_id,
            VOTES.c.attention_check.is_(False),
        )
        .order_by(VOTES.c.id)
        .execution_options(yield_per=CHUNK_ROWS)
    )
    parts: dict[str, list[np.ndarray]] = {name: [getattr(table, name)] for name in _COLUMNS}
    for rows in result.partitions():
        for name, column in _columns(table, rows).items():
            parts[name].append(column)
    for name, columns in parts.items():
        setattr(table, name, np.concatenate(columns))
    table.last_id = max_vote_id


_COLUMNS = (
    *("ids", "left", "right", "outcome", "category"),
    *("prompt", "seed", "rater", "network", "panel"),
)


def _columns(table: VoteTable, rows: Sequence[Row[Any]]) -> dict[str, np.ndarray]:
    ids, lefts, rights, outcomes, prompts, seeds, raters, networks, panels = zip(*rows, strict=True)
    index = {variant_id: i for i, variant_id in enumerate(table.variant_ids)}
    network_code = [
        NO_NETWORK if n is None or p is not None else _code(table.network_codes, table.networks, n)
        for n, p in zip(networks, panels, strict=True)
    ]
    return {
        "ids": np.asarray(ids, dtype=np.int64),
        "left": np.asarray([index[v] for v in lefts], dtype=np.int32),
        "right": np.asarray([index[v] for v in rights], dtype=np.int32),
        "outcome": np.asarray([_OUTCOME_CODE[o] for o in outcomes], dtype=np.int8),
        "category": np.asarray([table.category_of_prompt[p] for p in prompts], dtype=np.int16),
        "prompt": np.asarray(prompts, dtype=np.int32),
        "seed": np.asarray(seeds, dtype=np.int64),
        "rater": np.asarray(
            [_code(table.rater_codes, table.raters, r) for r in raters], dtype=np.int32
        ),
        "network": np.asarray(network_code, dtype=np.int32),
        "panel": np.asarray([p or 0 for p in panels], dtype=np.int32),
    }


# Tables by (database, run): one per process, extended under a lock (one reader at a time;
# the leaderboard's single flight makes that the common case anyway).
_tables: dict[tuple[str, int], VoteTable] = {}
_lock = threading.Lock()
# A run whose variants or prompts changed since the table was made (a run being redone)
# is read afresh: the variant order and the categories are part of the table.


def vote_table(session: Session, run_id: int, max_vote_id: int) -> VoteTable:
    """The run's votes up to `max_vote_id` at least (the table may hold later ones: mask with
    `upto`), reading only what this process has not read yet."""
    url = session.get_bind().engine.url.render_as_string(hide_password=False)
    with _lock:
        table = _tables.get((url, run_id))
        fresh = _empty(session, run_id)
        if (
            table is None
            or table.variant_ids != fresh.variant_ids
            or table.category_of_prompt != fresh.category_of_prompt
        ):
            table = _tables[(url, run_id)] = fresh
        if max_vote_id > table.last_id:
            _extend(session, run_id, table, max_vote_id)
        return table


def forget_tables() -> None:
    """Drop every table (tests that rewrite a database under the same URL)."""
    with _lock:
        _tables.clear()
