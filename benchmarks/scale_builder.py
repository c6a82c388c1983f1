"""The scale build's writer: explicit primary keys (Ids) and batched Core inserts that print
their rate (Builder), which every table of the synthetic database goes through.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, insert

from benchmarks.scale_shape import BATCH, Scale


class Ids:
    """Explicit primary keys, counted here: every row is inserted with its id, so related rows
    need no RETURNING round trip (PostgreSQL's sequences are moved past them at the end)."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def take(self, table: str, n: int) -> int:
        first = self.next.get(table, 1)
        self.next[table] = first + n
        return first


@dataclass
class Builder:
    conn: Connection
    media: Path
    scale: Scale
    rng: np.random.Generator
    now: datetime
    ids: Ids = field(default_factory=Ids)
    rows_total: int = 0

    def insert(self, table: Any, rows: Iterable[dict[str, Any]], total: int, label: str) -> None:
        """Insert in batches of BATCH rows, one executemany and one commit each; print rows/s."""
        start, done, batch = time.perf_counter(), 0, []
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH:
                self.conn.execute(insert(table), batch)
                self.conn.commit()
                done += len(batch)
                batch = []
                if done % (BATCH * 10) == 0 and done < total:
                    progress(f"  {label}: {done:,}/{total:,}", start, done)
        if batch:
            self.conn.execute(insert(table), batch)
            self.conn.commit()
            done += len(batch)
        self.rows_total += done
        progress(f"{label}: {done:,} rows", start, done)


def progress(what: str, start: float, rows: int) -> None:
    seconds = time.perf_counter() - start
    rate = f", {rows / seconds:,.0f} rows/s" if seconds > 0 and rows else ""
    print(f"{what} in {seconds:.1f} s{rate}", file=sys.stderr, flush=True)
