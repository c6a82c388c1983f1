"""Leaderboard views stored in the database, so every server process and the CLI share one.

A computed view is pickled into the board's one `LeaderboardSnapshot` row (a run, a panel, a
rounds count), replacing the one before, under the version of the key it was computed for:
another process asking for the same key reads it instead of running the bootstrap again.
"""

from __future__ import annotations

import dataclasses
import pickle

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.arena.leaderboard_view import LeaderboardKey, LeaderboardView
from app.models import LeaderboardSnapshot

# Bumped when LeaderboardView changes shape, or a class in it moves to another module (the
# pickle names each class by its module): older stored snapshots are then ignored.
SNAPSHOT_FORMAT = 2


def snapshot_version(key: LeaderboardKey) -> str:
    return f"{SNAPSHOT_FORMAT}:{key.version}"


def stored_view(session: Session, key: LeaderboardKey) -> LeaderboardView | None:
    """The view another process (or this one, earlier) computed for this very key."""
    found = session.scalar(
        select(LeaderboardSnapshot.view).where(
            LeaderboardSnapshot.run_id == key.run_id,
            LeaderboardSnapshot.panel == (key.panel_id or 0),
            LeaderboardSnapshot.rounds == key.rounds,
            LeaderboardSnapshot.version == snapshot_version(key),
        )
    )
    if found is None:
        return None
    # Written by store_view below, in this app's own database: as trusted as the votes are.
    view: LeaderboardView = pickle.loads(found)
    return dataclasses.replace(view, key=key)


def store_view(session: Session, view: LeaderboardView) -> None:
    """Keep the view for every process and the CLI: the board's one row, replaced. On its
    own session and transaction, so the caller's is left as it was."""
    key = view.key
    # No database URL (it may hold a password) in the database.
    data = pickle.dumps(dataclasses.replace(view, key=key._replace(database="")))
    board = (
        LeaderboardSnapshot.run_id == key.run_id,
        LeaderboardSnapshot.panel == (key.panel_id or 0),
        LeaderboardSnapshot.rounds == key.rounds,
    )
    with Session(session.get_bind()) as own:
        try:
            own.execute(delete(LeaderboardSnapshot).where(*board))
            own.add(
                LeaderboardSnapshot(
                    run_id=key.run_id,
                    panel=key.panel_id or 0,
                    rounds=key.rounds,
                    version=snapshot_version(key),
                    view=data,
                )
            )
            own.commit()
        except IntegrityError:  # another process stored this board meanwhile: theirs stands
            own.rollback()
