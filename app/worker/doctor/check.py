"""One row of the doctor's report: a check's name, whether it passed, and what it found."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(enum.Enum):
    OK = "✓"
    FAIL = "✗"
    SKIP = "–"  # not needed by this config, or could not be checked here (not a failure)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
