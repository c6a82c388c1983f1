"""Votes as rows for export (CSV, JSON Lines), streamed from one query.

The schema is documented in docs/votes-export.md; `COLUMNS` is its order, and a test fails
when the two disagree. Rows come from a single SELECT with joins, fetched in batches
(`yield_per`), and are encoded into chunks of about `CHUNK_BYTES`: an export of a million
votes never holds more than a batch in memory.

Defaults match what the ranking counts: votes of flagged raters and attention checks are left
out unless asked for; the `rater_flagged` and `attention_check` columns say which is which.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, aliased

from app.csv_cells import csv_cell
from app.models import Panel, Prompt, Rater, Run, Variant, Vote

COLUMNS = (
    "vote_id",
    "run_id",
    "run_name",
    "prompt_id",
    "prompt_text",
    "seed",
    "variant_left",
    "variant_right",
    "outcome",
    "rater_id",
    "panel_id",
    "panel_name",
    "voted_at",
    "attention_check",
    "rater_flagged",
)
BATCH_ROWS = 1000
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class VoteFilter:
    run_id: int | None = None
    include_flagged: bool = False
    include_attention: bool = False


def _iso_utc(moment: datetime) -> str:
    # SQLite drops the zone of the UTC times we store; PostgreSQL keeps it.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def votes_query(where: VoteFilter) -> Select[*tuple[Any, ...]]:
    left = aliased(Variant)
    right = aliased(Variant)
    query = (
        select(
            Vote.id,
            Vote.run_id,
            Run.name,
            Vote.prompt_id,
            Prompt.text,
            Vote.seed,
            left.name,
            right.name,
            Vote.outcome,
            Vote.rater_id,
            Vote.panel_id,
            Panel.name,
            Vote.created_at,
            Vote.attention_check,
            Rater.flagged,
        )
        .join(Run, Run.id == Vote.run_id)
        .join(Prompt, Prompt.id == Vote.prompt_id)
        .join(left, left.id == Vote.left_variant_id)
        .join(right, right.id == Vote.right_variant_id)
        .join(Rater, Rater.id == Vote.rater_id)
        .outerjoin(Panel, Panel.id == Vote.panel_id)
        .order_by(Vote.id)
    )
    if where.run_id is not None:
        query = query.where(Vote.run_id == where.run_id)
    if not where.include_flagged:
        # As NOT IN the (few) flagged raters, not a filter on the joined raters: given a
        # covering index on raters.flagged, SQLite would start from the raters and sort a
        # million votes before the first byte (1.2 s instead of 20 ms, issue 11).
        flagged = select(Rater.id).where(Rater.flagged.is_(True))
        query = query.where(Vote.rater_id.not_in(flagged))
    if not where.include_attention:
        query = query.where(Vote.attention_check.is_(False))
    return query


def vote_rows(session: Session, where: VoteFilter) -> Iterator[dict[str, Any]]:
    """One dict per vote, in COLUMNS order, with JSON types (None for no panel)."""
    result = session.execute(votes_query(where).execution_options(yield_per=BATCH_ROWS))
    for values in result:
        row = dict(zip(COLUMNS, values, strict=True))
        row["outcome"] = row["outcome"].value
        row["voted_at"] = _iso_utc(row["voted_at"])
        yield row


def _chunked(lines: Iterable[str]) -> Iterator[str]:
    # One chunk per row would cost the server a thread hop per row; batch them.
    buffer: list[str] = []
    size = 0
    for line in lines:
        buffer.append(line)
        size += len(line)
        if size >= CHUNK_BYTES:
            yield "".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer)


def jsonl_chunks(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    return _chunked(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def csv_chunks(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """CSV with a header row; booleans as true/false like JSON, None as an empty cell, and
    free text that a spreadsheet would run as a formula behind an apostrophe (csv_cell)."""

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow(
                ("true" if value else "false") if isinstance(value, bool) else csv_cell(value)
                for value in row.values()
            )
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()  # the header alone when there is no vote

    return _chunked(lines())
