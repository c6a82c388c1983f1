"""What caches key on and what they keep: named change counters, and the stored leaderboards
that every server process and the CLI share.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class Version(Base):
    """A named change counter that caches key on (app/arena/reviews.py)."""

    __tablename__ = "versions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class LeaderboardSnapshot(Base):
    """The latest computed leaderboard of a board (run, panel, bootstrap rounds), so that
    every server process and the CLI share one computation per change set
    (app/arena/leaderboard_snapshots.py): `version` is the key it was computed for, `view` the
    pickled LeaderboardView (written and read only by this app)."""

    __tablename__ = "leaderboard_snapshots"
    __table_args__ = (UniqueConstraint("run_id", "panel", "rounds"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    panel: Mapped[int] = mapped_column(BigInteger)  # the panel id; 0: every rater's votes
    rounds: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(64))
    view: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
