"""What goes wrong in the quality metrics: an unknown run, variant or model ref (raised), and
why a metric cannot run here (returned as one line, stored with its "unavailable" rows)."""

from __future__ import annotations

MAX_REASON_CHARS = 500


class QualityError(ValueError):
    """An unknown run, variant or tiny model: the CLI prints it as one line."""


def unavailable_reason(what: str, err: Exception) -> str:
    detail = " ".join(str(err).split()) or type(err).__name__
    return f"{what}: {type(err).__name__}: {detail}"[:MAX_REASON_CHARS]
