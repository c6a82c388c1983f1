"""The arena's tables: panels of invited raters, raters, the matchups they answered, their
votes, and admins' reviews of anomaly flags.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, stored_enum, utcnow


class VoteOutcome(enum.StrEnum):
    left = "left"
    right = "right"
    tie = "tie"
    both_bad = "both_bad"


class Panel(Base):
    """A group of raters a team invites with a code (`/arena?panel=CODE`)."""

    __tablename__ = "panels"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Rater(Base):
    """An anonymous rater: the id lives in a signed cookie."""

    __tablename__ = "raters"
    __table_args__ = (
        Index("ix_raters_network_created", "network", "created_at"),
        # The admin's rater list (flagged first, newest first, read backwards in index
        # order: no sort per page) and its panel counts.
        Index("ix_raters_flagged_created", "flagged", "created_at", "id"),
        Index("ix_raters_panel", "panel_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid4 hex
    panel_id: Mapped[int | None] = mapped_column(ForeignKey("panels.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attention_passed: Mapped[int] = mapped_column(Integer, default=0)
    attention_failed: Mapped[int] = mapped_column(Integer, default=0)
    # Set when the rater fails attention checks; their votes are left out of the ranking.
    flagged: Mapped[bool] = mapped_column(default=False)
    # Where the rater was created from (app/arena/network.py): new raters per network are
    # limited, since a cookie costs a bot nothing.
    network: Mapped[str | None] = mapped_column(String(64))

    panel: Mapped[Panel | None] = relationship()


class Matchup(Base):
    """A pair of images shown to one rater and answered by them: written with the vote, from
    the offer the page carried (app/arena/matchups.py), whose nonce makes one vote per offer.

    For an attention check both sides show the same image (left == right variant) and the
    expected answer is a tie.
    """

    __tablename__ = "matchups"
    __table_args__ = (
        Index("ix_matchups_rater_issued", "rater_id", "issued_at"),
        Index("ix_matchups_nonce", "nonce", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    seed: Mapped[int] = mapped_column(BigInteger)
    left_variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    right_variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    rater_id: Mapped[str] = mapped_column(ForeignKey("raters.id", ondelete="CASCADE"))
    attention_check: Mapped[bool] = mapped_column(default=False)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The offer's nonce (NULL for matchups from before migration 0008).
    nonce: Mapped[str | None] = mapped_column(String(32))


class Vote(Base):
    __tablename__ = "votes"
    __table_args__ = (
        Index("ix_votes_run_created", "run_id", "created_at"),
        # The per-rater rate limit counts a rater's votes of the last minute on every vote.
        Index("ix_votes_rater_created", "rater_id", "created_at"),
        # ...and the per-network one the network's.
        Index("ix_votes_network_created", "network", "created_at"),
        # A run's largest vote id (the leaderboard's key) in one index probe, and a run's
        # or a panel's votes without a table scan.
        Index("ix_votes_run_id", "run_id", "id"),
        Index("ix_votes_panel_id", "panel_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    matchup_id: Mapped[int] = mapped_column(
        ForeignKey("matchups.id", ondelete="CASCADE"), unique=True
    )
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    seed: Mapped[int] = mapped_column(BigInteger)
    left_variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    right_variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    outcome: Mapped[VoteOutcome] = mapped_column(stored_enum(VoteOutcome, "vote_outcome"))
    rater_id: Mapped[str] = mapped_column(ForeignKey("raters.id", ondelete="CASCADE"))
    panel_id: Mapped[int | None] = mapped_column(ForeignKey("panels.id", ondelete="SET NULL"))
    attention_check: Mapped[bool] = mapped_column(default=False)
    # The voter's network (app/arena/network.py), for per-network limits.
    network: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IntegrityReview(Base):
    """An admin's decision on an anomaly flag (app/arena/integrity.py) for one run: the
    flagged rater's or network's votes count after all. Deleting the row undoes it."""

    __tablename__ = "integrity_reviews"
    __table_args__ = (UniqueConstraint("run_id", "kind", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # "rater" | "network"
    subject: Mapped[str] = mapped_column(String(64))  # the rater id, or the network
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
