"""Which tables and rows make a run bundle: every table that reaches `runs` through foreign
keys except the arena's, read generically from the ORM metadata, so that a new table or column
travels without a change here; the columns that name media files or hold row ids inside JSON.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, ColumnElement, Engine, MetaData, Table, func, select

from app.models import Base

ROOT = "runs"
# Tables that reach `runs` but are not part of a run's results: the arena (votes, raters,
# panels and what is derived from them) belongs to the server where people voted.
# tests/bench/test_bundles.py fails when a table is neither bundled nor listed here.
EXCLUDED = frozenset(
    {
        "matchups",
        "votes",
        "raters",
        "panels",
        "integrity_reviews",
        "leaderboard_snapshots",
        "versions",
    }
)
# Columns that hold a path relative to the media folder: the file travels with the row. Also
# checked by the test: every `*_path` column of a bundled table is here or in NOT_MEDIA.
MEDIA_COLUMNS: dict[str, tuple[str, ...]] = {"generations": ("image_path", "thumb_path")}
NOT_MEDIA = frozenset({("runs", "config_path")})  # where the config was, on the worker's disk
# Row ids kept inside JSON values, which the metadata cannot see: remapped like foreign keys.
JSON_REFERENCES: dict[tuple[str, str], dict[str, str]] = {
    ("generation_metrics", "params"): {"reference_generation_id": "generations"},
}


def bundled_tables(metadata: MetaData = Base.metadata) -> list[Table]:
    """Every table that reaches `runs` through foreign keys, except EXCLUDED, parents first."""
    reach = {ROOT}
    grew = True
    while grew:
        grew = False
        for table in metadata.tables.values():
            if table.name in reach or table.name in EXCLUDED:
                continue
            if any(fk.column.table.name in reach for fk in table.foreign_keys):
                reach.add(table.name)
                grew = True
    # sorted_tables is topological (a self-reference does not count): parents first.
    return [table for table in metadata.sorted_tables if table.name in reach]


def primary_key(table: Table) -> Column[Any]:
    (column,) = table.primary_key.columns  # ids are single integer columns (tested)
    return column


def owner_key(table: Table, bundled: set[str]) -> Column[Any]:
    """The foreign key column a row of `table` is found through: to `runs` when it has one,
    else to another bundled table; never nullable (a NULL would lose the row)."""
    candidates = sorted(
        (
            fk
            for fk in table.foreign_keys
            if not fk.parent.nullable
            and fk.column.table is not table
            and fk.column.table.name in bundled
        ),
        key=lambda fk: (fk.column.table.name != ROOT, fk.parent.name),
    )
    if not candidates:
        raise ValueError(f"table {table.name}: no non-null foreign key to a bundled table")
    return candidates[0].parent


def of_run(table: Table, run_id: int, bundled: set[str]) -> ColumnElement[bool]:
    """The condition selecting the rows of `table` that belong to run `run_id`."""
    if table.name == ROOT:
        return primary_key(table) == run_id
    column = owner_key(table, bundled)
    (fk,) = column.foreign_keys
    parent = fk.column.table
    if parent.name == ROOT:
        return column == run_id
    return column.in_(select(fk.column).where(of_run(parent, run_id, bundled)))


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows per bundled table: what an import adds to (tests, reports)."""
    with engine.connect() as conn:
        return {
            table.name: conn.scalar(select(func.count()).select_from(table)) or 0
            for table in bundled_tables()
        }
