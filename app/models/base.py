"""The declarative base every table derives from, and what their columns share: UTC
timestamps and enums stored as plain strings."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import Enum
from sqlalchemy.orm import DeclarativeBase


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


def stored_enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings (no native enum type) so adding a value is a trivial migration.
    return Enum(cls, name=name, native_enum=False, length=16, validate_strings=True)
