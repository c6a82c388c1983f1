"""The scale build's arena on the latest run: panels, raters behind shared networks, and one
answered matchup per vote, with outcomes drawn from a Bradley–Terry model.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import numpy as np

from app.arena.matchups import FLAG_AFTER_FAILURES
from app.models import Matchup, Panel, Rater, Vote
from benchmarks.scale_builder import Builder
from benchmarks.scale_runs import BuiltRun
from benchmarks.scale_shape import (
    ATTENTION_SHARE,
    BOTH_BAD_SHARE,
    NEW_SESSION,
    PANEL_SHARE,
    SESSION_GAP_S,
    TIE_SHARE,
    VOTE_GAP_S,
    VOTING_DAYS,
)


def build_arena(b: Builder, run: BuiltRun) -> None:
    """Panels, raters, and one answered matchup per vote, all on `run`."""
    s, rng = b.scale, b.rng
    n_r, n_v = s.raters, s.votes
    end = b.now - timedelta(minutes=1)
    window_s = VOTING_DAYS * 86_400.0
    window_start = end - timedelta(seconds=window_s)

    # Panels: invitation codes as /admin makes them; 5% of the raters joined one.
    first_panel = b.ids.take("panels", s.panels)
    panel_ids = list(range(first_panel, first_panel + s.panels))
    b.insert(
        Panel.__table__,
        (
            {
                "id": pid,
                "code": base64.urlsafe_b64encode(rng.bytes(8)).decode().rstrip("="),
                "name": f"Panel {k + 1}",
                "created_at": window_start - timedelta(days=1),
            }
            for k, pid in enumerate(panel_ids)
        ),
        s.panels,
        "panels",
    )
    panel_of = np.full(n_r, -1)
    members = rng.choice(n_r, max(1, round(n_r * PANEL_SHARE)), replace=False)
    sizes = rng.dirichlet(np.ones(s.panels) * 2)
    panel_of[members] = rng.choice(s.panels, len(members), p=sizes)

    # Networks: the first raters one each, the rest Zipf-like (an office or a mobile carrier's
    # NAT holds hundreds: ~650 raters behind the biggest at full scale).
    addresses = np.unique(rng.integers(11 << 24, 223 << 24, s.networks * 2))
    # Not 127/8: the benchmark's own clients vote from 127.0.0.1.
    addresses = rng.permutation(addresses[addresses >> 24 != 127])[: s.networks]
    networks = [
        f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}" for a in addresses.tolist()
    ]
    order, first = rng.permutation(n_r), min(n_r, len(networks))
    weights = 1.0 / np.arange(1, len(networks) + 1) ** 0.8
    net_of = np.empty(n_r, dtype=np.int64)
    net_of[order[:first]] = np.arange(first)
    net_of[order[first:]] = rng.choice(len(networks), n_r - first, p=weights / weights.sum())

    # Votes per rater: lognormal, so most cast a few and some hundreds or thousands.
    w = rng.lognormal(0, 1.3, n_r)
    counts = 1 + rng.multinomial(n_v - n_r, w / w.sum())
    rater = np.repeat(np.arange(n_r), counts)
    firsts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lasts = np.cumsum(counts) - 1
    gaps = np.where(
        rng.random(n_v) < NEW_SESSION,
        rng.exponential(SESSION_GAP_S, n_v),
        rng.exponential(VOTE_GAP_S, n_v),
    )
    gaps[firsts] = 0.0
    cumulative = np.cumsum(gaps)
    offset = cumulative - cumulative[firsts][rater]
    span = offset[lasts]
    squeeze = np.minimum(1.0, (window_s * 0.98) / np.maximum(span, 1.0))
    offset *= squeeze[rater]
    start = rng.random(n_r) * (window_s - span * squeeze)
    t = start[rater] + offset
    order = np.argsort(t, kind="stable")
    rater, t = rater[order], t[order]

    careless = np.zeros(n_r, dtype=bool)
    careless[rng.choice(n_r, s.careless, replace=False)] = True
    n_variants = len(run.variant_ids)
    attention = rng.random(n_v) < ATTENTION_SHARE
    left = rng.integers(0, n_variants, n_v)
    right = np.where(attention, left, (left + rng.integers(1, n_variants, n_v)) % n_variants)
    prompt = rng.integers(0, len(run.prompt_ids), n_v)
    seed = rng.integers(0, len(run.seeds), n_v)
    ratings = np.array([shape.rating for shape in run.shapes])
    # Bradley–Terry with a small position bias (people click left a little more often).
    p_left = 1.0 / (1.0 + 10 ** ((ratings[right] - ratings[left] - 12) / 400))
    u = rng.random(n_v)
    outcome = np.where(rng.random(n_v) < p_left, 0, 1)
    outcome = np.where(u < TIE_SHARE + BOTH_BAD_SHARE, 3, outcome)
    outcome = np.where(u < TIE_SHARE, 2, outcome)
    # Attention checks: an honest rater answers tie or both bad, nearly always.
    honest = np.where(u < 0.85, 2, np.where(u < 0.98, 3, rng.integers(0, 2, n_v)))
    sloppy = rng.integers(0, 4, n_v)
    attention_answer = np.where(careless[rater], sloppy, honest)
    outcome = np.where(attention, attention_answer, outcome)
    passed = attention & (outcome >= 2)
    failed = attention & (outcome < 2)
    n_passed = np.bincount(rater[passed], minlength=n_r)
    n_failed = np.bincount(rater[failed], minlength=n_r)
    flagged = careless | (n_failed >= FLAG_AFTER_FAILURES)

    rater_ids = [uuid.UUID(bytes=rng.bytes(16), version=4).hex for _ in range(n_r)]
    first_vote_t = np.full(n_r, np.inf)
    np.minimum.at(first_vote_t, rater, t)
    b.insert(
        Rater.__table__,
        (
            {
                "id": rater_ids[r],
                "panel_id": panel_ids[panel_of[r]] if panel_of[r] >= 0 else None,
                "created_at": window_start + timedelta(seconds=float(first_vote_t[r])),
                "attention_passed": int(n_passed[r]),
                "attention_failed": int(n_failed[r]),
                "flagged": bool(flagged[r]),
                "network": networks[net_of[r]],
            }
            for r in range(n_r)
        ),
        n_r,
        f"raters ({int(flagged.sum())} flagged, {len(set(net_of.tolist()))} networks)",
    )

    first_id = b.ids.take("matchups", n_v)
    b.ids.take("votes", n_v)
    nonce_bytes = rng.bytes(12 * n_v)
    issued_before = rng.uniform(2, 40, n_v)
    names = ("left", "right", "tie", "both_bad")
    # Python lists: the drivers bind ints, not numpy scalars.
    cols = {
        "rater": rater.tolist(),
        "t": t.tolist(),
        "left": left.tolist(),
        "right": right.tolist(),
        "prompt": prompt.tolist(),
        "seed": seed.tolist(),
        "attention": attention.tolist(),
        "outcome": outcome.tolist(),
        "issued": issued_before.tolist(),
    }
    panel_list, net_list = panel_of.tolist(), net_of.tolist()

    def common(i: int) -> dict[str, Any]:
        r = cols["rater"][i]
        return {
            "id": first_id + i,
            "run_id": run.id,
            "prompt_id": run.prompt_ids[cols["prompt"][i]],
            "seed": run.seeds[cols["seed"][i]],
            "left_variant_id": run.variant_ids[cols["left"][i]],
            "right_variant_id": run.variant_ids[cols["right"][i]],
            "rater_id": rater_ids[r],
            "attention_check": cols["attention"][i],
        }

    def matchups() -> Iterator[dict[str, Any]]:
        for i in range(n_v):
            at = window_start + timedelta(seconds=cols["t"][i])
            yield common(i) | {
                "issued_at": at - timedelta(seconds=cols["issued"][i]),
                "answered_at": at,
                "nonce": base64.urlsafe_b64encode(nonce_bytes[12 * i : 12 * i + 12]).decode(),
            }

    def votes() -> Iterator[dict[str, Any]]:
        for i in range(n_v):
            r = cols["rater"][i]
            yield common(i) | {
                "matchup_id": first_id + i,
                "outcome": names[cols["outcome"][i]],
                "panel_id": panel_ids[panel_list[r]] if panel_list[r] >= 0 else None,
                "network": networks[net_list[r]],
                "created_at": window_start + timedelta(seconds=cols["t"][i]),
            }

    b.insert(Matchup.__table__, matchups(), n_v, "matchups")
    b.insert(Vote.__table__, votes(), n_v, "votes")
