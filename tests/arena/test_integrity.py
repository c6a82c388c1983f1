"""Anomaly flags (app/arena/integrity.py) on simulated votes: honest raters with random
sides, a position bias and many votes each are not flagged; bots that always pick one side,
push one variant or vote against everyone are, as raters or, pooled, as networks."""

from __future__ import annotations

import math

import numpy as np

from app.arena.integrity import MIN_VOTES, SUBJECT_ALPHA, CastVote, find_anomalies

NAMES = ("dev", "dev-turbo", "schnell", "schnell-fast")
# Log-strengths of the consensus (dev-turbo a little worse than dev, and so on).
THETA = np.array([0.0, -0.35, -0.6, -0.7])


def _honest(
    rng: np.random.Generator,
    rater: str,
    n: int,
    network: str | None = None,
    left_bias: float = 0.0,
) -> list[CastVote]:
    """n votes by a rater who looks: the model decides, sides random; `left_bias` (in
    log-odds) makes them prefer the left image when in doubt, as people do a little."""
    votes = []
    for _ in range(n):
        i, j = rng.choice(len(NAMES), size=2, replace=False)
        u = rng.random()
        if u < 0.15:
            outcome = "tie"
        else:
            p_left = 1 / (1 + math.exp(-(THETA[i] - THETA[j] + left_bias)))
            outcome = "left" if rng.random() < p_left else "right"
        votes.append(CastVote(int(i), int(j), outcome, rater, network))
    return votes


def _bot(
    rng: np.random.Generator, rater: str, n: int, network: str | None, choose: str
) -> list[CastVote]:
    votes = []
    for _ in range(n):
        i, j = rng.choice(len(NAMES), size=2, replace=False)
        if choose == "left":
            outcome = "left"
        elif choose == "dev-turbo":  # sees the names, always picks dev-turbo, else random
            outcome = (
                "left" if i == 1 else "right" if j == 1 else str(rng.choice(["left", "right"]))
            )
        else:  # "underdog": always the side the consensus likes less
            outcome = "left" if THETA[i] < THETA[j] else "right"
        votes.append(CastVote(int(i), int(j), outcome, rater, network))
    return votes


def _crowd(rng: np.random.Generator, raters: int = 120, each: int = 40) -> list[CastVote]:
    votes: list[CastVote] = []
    for r in range(raters):
        bias = rng.normal(0.1, 0.15)  # a position bias of a few points, varying by person
        votes += _honest(rng, f"h{r}", each, network=f"10.0.{r}.1", left_bias=bias)
    return votes


def test_integrity_honest_raters_are_not_flagged() -> None:
    rng = np.random.default_rng(1)
    flags = find_anomalies(NAMES, _crowd(rng, raters=300, each=60), THETA.tolist())
    # 600 subjects tested at SUBJECT_ALPHA each: 0.6 false flags expected at most.
    assert len(flags) <= 2, [f.reason for f in flags]


def test_integrity_rater_always_on_one_side_is_flagged_with_the_reason() -> None:
    rng = np.random.default_rng(2)
    votes = _crowd(rng) + _bot(rng, "bot", 25, "198.51.100.7", "left")
    flags = {(f.kind, f.subject): f for f in find_anomalies(NAMES, votes, THETA.tolist())}
    bot = flags[("rater", "bot")]
    assert bot.test == "one_side" and bot.votes == 25
    assert "left image in 25 of 25 decisive votes" in bot.reason
    assert bot.p_value < SUBJECT_ALPHA
    assert ("network", "198.51.100.7") in flags
    assert not any(subject.startswith("h") for _, subject in flags)


def test_integrity_rater_pushing_one_variant_is_flagged() -> None:
    rng = np.random.default_rng(3)
    votes = _crowd(rng) + _bot(rng, "fan", 80, None, "dev-turbo")
    flags = {f.subject: f for f in find_anomalies(NAMES, votes, THETA.tolist())}
    assert flags["fan"].test in ("one_variant", "off_consensus")
    assert "fan" in flags and len(flags) == 1


def test_integrity_rater_against_everyone_is_flagged() -> None:
    rng = np.random.default_rng(4)
    votes = _crowd(rng) + _bot(rng, "contrarian", 40, None, "underdog")
    (flag,) = find_anomalies(NAMES, votes, THETA.tolist())
    assert flag.subject == "contrarian"
    assert flag.test in ("off_consensus", "one_variant")


def test_integrity_fresh_cookies_from_one_network_are_flagged_as_the_network() -> None:
    """Ten raters of ten votes each: none reaches MIN_VOTES, the network does."""
    rng = np.random.default_rng(5)
    bots = [v for k in range(10) for v in _bot(rng, f"b{k}", 10, "203.0.113.9", "left")]
    assert MIN_VOTES > 10
    flags = find_anomalies(NAMES, _crowd(rng) + bots, THETA.tolist())
    assert [(f.kind, f.subject) for f in flags] == [("network", "203.0.113.9")]


def test_integrity_ties_and_unrated_variants_are_not_evidence() -> None:
    rng = np.random.default_rng(6)
    ties = [CastVote(0, 1, "tie", "calm", None) for _ in range(40)]
    # A variant without a finite rating: the model tests skip its votes, the side test not.
    theta = THETA.copy()
    theta[3] = math.inf
    votes = _crowd(rng) + ties
    assert find_anomalies(NAMES, votes, theta.tolist()) == []


def test_integrity_too_few_votes_are_not_tested() -> None:
    rng = np.random.default_rng(7)
    short = _bot(rng, "short", MIN_VOTES - 1, None, "left")
    assert find_anomalies(NAMES, short, THETA.tolist()) == []
