"""app.numbers: significant figures, costs against their column, estimates clipped to a range.

The JavaScript mirror (static/js/numbers.js) is checked against these in a real browser:
tests/e2e/test_dashboard_price_e2e.py."""

from __future__ import annotations

import math

import pytest

from app.bench import costs
from app.numbers import (
    MAX_SIG,
    clip,
    decimals_among,
    exponent,
    fixed,
    fmt_estimate,
    fmt_sig,
    fmt_usd,
    sig_decimals,
)
from app.quality import METRIC_RANGES, MetricSummary


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1.094, "$1.09"),
        (0.0394, "$0.0394"),
        (0.001094, "$0.00109"),
        (39.44, "$39.4"),
        (123.4, "$123"),
        (1234.5, "$1,235"),  # whole dollars are never rounded away
        (0.09996, "$0.100"),  # rounds up into the next decade: still three figures
        (0.000001, "$0.00000100"),
        (0.0, "$0"),
        (None, "—"),
        (math.nan, "—"),
    ],
)
def test_numbers_usd_three_significant_figures(value: float | None, shown: str) -> None:
    assert fmt_usd(value) == shown


def test_numbers_schnell_and_schnell_fast_stay_distinguishable() -> None:
    # The audit's case: 39.4 ms and 32.3 ms at $0.09/h both printed as "$0.000001" per image.
    price = 0.09
    schnell = costs.usd_per_1k_images(0.0394, price)
    fast = costs.usd_per_1k_images(0.0323, price)
    column = [schnell, fast]
    shown = fmt_usd(schnell, column), fmt_usd(fast, column)
    assert shown == ("$0.000985", "$0.000808")
    # The figures shown keep the 18% difference to within a percent.
    ratio = float(shown[0].lstrip("$")) / float(shown[1].lstrip("$"))
    assert ratio == pytest.approx(0.0394 / 0.0323, rel=0.01)


def test_numbers_column_gets_the_decimals_its_nearest_neighbour_needs() -> None:
    # 3 figures would show both as $1.09: one more decimal tells them apart.
    column = [1.0941, 1.0952, 5.0]
    assert [fmt_usd(v, column) for v in column] == ["$1.094", "$1.095", "$5.00"]
    # A neighbour far away adds nothing.
    assert fmt_usd(5.0, column) == fmt_usd(5.0)
    # Equal figures read equal (no decimals chasing a gap of zero).
    assert fmt_usd(1.0941, [1.0941, 1.0941]) == "$1.09"


def test_numbers_column_stops_at_six_significant_figures() -> None:
    # A gap below six figures of the value is noise in a measured latency: not shown.
    a, b = 1.0, 1.0 + 1e-9
    assert fmt_usd(a, [a, b]) == fmt_usd(b, [a, b]) == "$1.00"
    # A gap at the sixth figure is shown, and no finer one.
    c = 1.00003
    assert (fmt_usd(1.0, [1.0, c]), fmt_usd(c, [1.0, c])) == ("$1.00000", "$1.00003")
    assert decimals_among(c, [1.0, c]) == sig_decimals(c, MAX_SIG) == 5
    assert fmt_usd(1.000003, [1.0, 1.000003]) == "$1.00"


def test_numbers_decimals_from_significant_figures() -> None:
    assert [sig_decimals(v) for v in (0.0394, 1.094, 39.4, 394.0, 3940.0)] == [4, 2, 1, 0, 0]
    assert sig_decimals(0.0) == 0
    assert sig_decimals(0.0394, 2) == 3
    assert [exponent(v) for v in (0.001, 0.00099999, 1000.0, 999.9, 1e-5)] == [-3, -4, 3, 2, -5]


def test_numbers_fixed_rounds_half_away_from_zero_like_javascript() -> None:
    # 0.125 and 2.5 are exact in binary: JavaScript's toFixed rounds them up, as does fixed.
    assert fixed(0.125, 2) == "0.13"
    assert fixed(2.5, 0) == "3"
    assert fixed(-2.5, 0) == "-3"
    # 1.005 is 1.00499999999999989... in binary: down, as in JavaScript.
    assert fixed(1.005, 2) == "1.00"
    assert fixed(-0.0001, 2) == "0.00"  # never "-0.00"
    assert fixed(1234567.891, 1) == "1,234,567.9"


def test_numbers_interval_clipped_to_the_range() -> None:
    # The audit's CLIP score: a lower end below 0 on a score that cannot be negative.
    bounds = METRIC_RANGES["clip_score"]
    assert bounds == (0.0, 100.0)
    assert fmt_estimate(0.7928, -0.008352, 1.594, bounds) == "0.79 [0.00, 1.59]"
    assert fmt_estimate(0.99, 0.97, 1.01, METRIC_RANGES["ssim"]) == "0.990 [0.970, 1.000]"
    assert fmt_estimate(3.0, -2.0, 8.0, METRIC_RANGES["psnr_db"]) == "3.0 [0.0, 8.0]"
    assert clip(-0.5, 1.5, (0.0, 1.0)) == (0.0, 1.0)
    assert clip(None, 0.5, (0.0, 1.0)) == (None, 0.5)


@pytest.mark.parametrize(
    ("mean", "low", "high", "shown"),
    [
        (0.8123, 0.8000, 0.8246, "0.812 [0.800, 0.825]"),  # half-width 0.0123: 3 decimals
        (0.8123, 0.7, 0.9246, "0.81 [0.70, 0.92]"),  # half-width 0.11: 2 decimals
        (31.2, 17.0, 45.4, "31 [17, 45]"),  # half-width 14: whole numbers
        (31.2, 31.15, 31.25, "31.200 [31.150, 31.250]"),  # half-width 0.05
        (0.5, 0.5, 0.5, "0.500 [0.500, 0.500]"),  # no width: three figures of the mean
        (0.5123, None, None, "0.512"),  # no interval: three figures
        (None, None, None, "—"),
    ],
)
def test_numbers_precision_from_the_spread(
    mean: float | None, low: float | None, high: float | None, shown: str
) -> None:
    assert fmt_estimate(mean, low, high) == shown


def test_numbers_metric_summary_display_uses_the_range() -> None:
    summary = MetricSummary(
        variant="dev",
        metric="clip_score",
        model="tiny:clip",
        n=12,
        mean=0.7928,
        ci_low=-0.008352,
        ci_high=1.594,
        n_infinite=0,
        n_unavailable=0,
        reason=None,
    )
    assert summary.display == "0.79 [0.00, 1.59]"
    assert summary.interval == (0.0, 1.594)
    # The stored figures stay as computed; only what is shown is clipped.
    assert summary.ci_low == -0.008352


def test_numbers_fmt_sig_plain_figures() -> None:
    assert fmt_sig(39.44) == "39.4"
    assert fmt_sig(39.44, [39.46]) == "39.44"
    assert fmt_sig(None) == "—"
