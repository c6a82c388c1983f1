"""Numbers as people read them: significant figures, costs and estimates with their intervals.

- A figure shows three significant figures (`SIG`): "$1.09", "$0.0394", "39.4". More only
  where it stands next to figures it would otherwise look equal to (`among`): a column's
  values get the decimals that tell each one from its nearest neighbour, up to `MAX_SIG`
  significant figures (finer digits of a measured latency are noise).
- An estimate and its interval share one number of decimals, set by the interval's
  half-width (two significant figures of it): "0.79 [0.00, 1.59]". The interval's ends are
  clipped to the quantity's range (a CLIP score is never negative, an SSIM never above 1).

Rounding is half away from zero on the float's exact binary value, and a value's decade is
read from its shortest round-trip decimal form: what JavaScript's `toFixed` and
`toExponential` do, so static/js/numbers.js formats every cost exactly as the server does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

SIG = 3
MAX_SIG = 6
# 10 ** (1 - MAX_SIG), written out: a gap smaller than this share of a value is beyond
# MAX_SIG figures (a literal, so JavaScript holds the very same double).
GAP_FLOOR = 1e-5
UNBOUNDED = (-math.inf, math.inf)
# Above this many decimals a figure says nothing more (and JavaScript's toFixed stops at 100).
MAX_DECIMALS = 20


def exponent(value: float) -> int:
    """The decade of a nonzero finite value: floor(log10(|value|)), read from its shortest
    round-trip decimal form (so 0.001 is -3, never -4 through a rounding error)."""
    return Decimal(repr(abs(value))).adjusted()


def _rounded(value: float, decimals: int) -> Decimal:
    rounded = Decimal(value).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return abs(rounded) if rounded == 0 else rounded  # no "-0"


def fixed(value: float, decimals: int) -> str:
    """`value` with `decimals` decimals (half away from zero, like JavaScript's toFixed),
    thousands separated by commas, and no "-0"."""
    decimals = max(0, min(decimals, MAX_DECIMALS))
    return f"{_rounded(value, decimals):,.{decimals}f}"


def sig_decimals(value: float, digits: int = SIG) -> int:
    """The decimals that show `digits` significant figures of `value` (none for a whole
    number that already has them, and none for 0)."""
    if value == 0 or not math.isfinite(value):
        return 0
    decimals = min(max(0, digits - 1 - exponent(value)), MAX_DECIMALS)
    # 0.09996 at three figures rounds up to 0.100: one decimal fewer keeps three figures.
    if decimals > 0 and _rounded(value, decimals).adjusted() > exponent(value):
        decimals -= 1
    return decimals


def decimals_among(value: float, among: Iterable[float | None] = ()) -> int:
    """Decimals for `value` in a column with `among`: three significant figures, or as many
    as tell it from its nearest different neighbour (its gap shown to at least one unit in
    the last place), at most `MAX_SIG` significant figures."""
    decimals = sig_decimals(value)
    if value == 0 or not math.isfinite(value):
        return decimals
    most = sig_decimals(value, MAX_SIG)
    gaps = [
        abs(value - other)
        for other in among
        if other is not None and math.isfinite(other) and other != value
    ]
    # A gap finer than MAX_SIG figures of the value cannot be shown: the two read as equal.
    gaps = [gap for gap in gaps if gap >= abs(value) * GAP_FLOOR]
    if gaps:
        decimals = max(decimals, min(-exponent(min(gaps)), most))
    return decimals


def fmt_sig(value: float | None, among: Iterable[float | None] = ()) -> str:
    """A plain figure (see `decimals_among`); "—" for none."""
    if value is None or not math.isfinite(value):
        return "—"
    return fixed(value, decimals_among(value, among))


def fmt_usd(value: float | None, among: Iterable[float | None] = ()) -> str:
    """Dollars, three significant figures or as many as tell `value` from `among`:
    "$0.0394", "$1.09", "$1,230"; "$0" for nothing; "—" for none."""
    if value is None or not math.isfinite(value):
        return "—"
    if value == 0:
        return "$0"
    text = fixed(value, decimals_among(value, among))
    return f"-${text[1:]}" if text.startswith("-") else f"${text}"


def clip(
    low: float | None, high: float | None, bounds: tuple[float, float]
) -> tuple[float | None, float | None]:
    """An interval's ends clipped to `bounds` (an end of None stays None)."""
    lo, hi = bounds
    return (
        None if low is None else min(max(low, lo), hi),
        None if high is None else min(max(high, lo), hi),
    )


def estimate_decimals(mean: float, low: float | None, high: float | None) -> int:
    """Two significant figures of the interval's half-width (before clipping); three
    significant figures of the mean when there is no interval or it has no width."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return sig_decimals(mean)
    half = (high - low) / 2
    if half <= 0:
        return sig_decimals(mean)
    return max(0, 1 - exponent(half))


def fmt_estimate(
    mean: float | None,
    low: float | None = None,
    high: float | None = None,
    bounds: tuple[float, float] = UNBOUNDED,
) -> str:
    """The estimate as "mean [low, high]", all at one number of decimals
    (`estimate_decimals`), the ends clipped to `bounds`; only the mean when there is no
    interval; "—" for none."""
    if mean is None or not math.isfinite(mean):
        return "—"
    decimals = estimate_decimals(mean, low, high)
    if low is None or high is None:
        return fixed(mean, decimals)
    low, high = min(max(low, bounds[0]), bounds[1]), min(max(high, bounds[0]), bounds[1])
    return f"{fixed(mean, decimals)} [{fixed(low, decimals)}, {fixed(high, decimals)}]"
