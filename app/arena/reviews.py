"""What admins decide about raters and anomaly flags, and the counter the leaderboard keys on.

A leaderboard is cached by what changes it (app/arena/leaderboard_cache.py): the run's largest vote
id, and `flags_version`, which every decision here raises. (Counting flagged raters or
reviews on every page and poll cost a scan per request on a big database, and a count does
not change when one rater is flagged and another unflagged.) Attention checks flag raters in
the transaction that stores a vote, which raises the vote id anyway.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import IntegrityReview, Rater, Version

FLAGS = "arena_flags"


def version(session: Session, name: str = FLAGS) -> int:
    """The counter's value (0 before the first decision): one primary-key read."""
    return session.scalar(select(Version.value).where(Version.name == name)) or 0


def bump(session: Session, name: str = FLAGS) -> None:
    """Raise the counter by one, in the caller's transaction (an upsert: two admins at once
    on PostgreSQL both count)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Version).values(name=name, value=1)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[Version.name], set_={"value": Version.value + 1}
        )
    )


def set_rater_flag(session: Session, rater_id: str, flagged: bool) -> bool:
    """Flag or unflag a rater (their votes leave or rejoin every ranking); False when there
    is no such rater. Only the flag: the attention counters stay the record of what the
    rater did. Commits."""
    changed = session.execute(update(Rater).where(Rater.id == rater_id).values(flagged=flagged))
    if not changed.rowcount:  # type: ignore[attr-defined]
        return False
    bump(session)
    session.commit()
    return True


def set_review(
    session: Session, run_id: int, kind: Literal["rater", "network"], subject: str, count: bool
) -> None:
    """Count a flagged rater's or network's votes on this run after all (`count`), or undo
    that. Commits."""
    found = session.scalars(
        select(IntegrityReview).where(
            IntegrityReview.run_id == run_id,
            IntegrityReview.kind == kind,
            IntegrityReview.subject == subject,
        )
    ).first()
    if count and found is None:
        session.add(IntegrityReview(run_id=run_id, kind=kind, subject=subject))
    elif not count and found is not None:
        session.execute(delete(IntegrityReview).where(IntegrityReview.id == found.id))
    else:
        return
    bump(session)
    session.commit()
