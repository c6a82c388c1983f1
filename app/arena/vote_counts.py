"""Votes as counts: the tallies that every ranking view of the arena is computed from.

Pure numpy, no database and no web. A vote is (left, right, outcome), outcome "left",
"right", "tie" or "both_bad". `PairCounts` holds the votes per pair of variants (what
Bradley–Terry, the win rates and the verdicts need); `Clusters` holds them per rater, as
counts over the cells of one flat vote vector (`flatten`), so that a bootstrap can resample
raters instead of single votes. The `*_coded` functions take votes already coded as arrays
(the leaderboard's vote table): one np.bincount instead of a Python loop per vote.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

Outcome = Literal["left", "right", "tie", "both_bad"]
OUTCOMES: tuple[str, ...] = ("left", "right", "tie", "both_bad")

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


class Vote(NamedTuple):
    """One vote as the arena records it. A plain (left, right, outcome) tuple works too."""

    left: str
    right: str
    outcome: str


@dataclass(frozen=True, eq=False)
class PairCounts:
    """Vote counts between every pair of variants.

    ``wins[i, j]``: votes where i beat j. ``ties[i, j]`` (symmetric): votes between i and j
    that were "tie" or "both_bad"; ``both_bad`` (symmetric) is the "both_bad" part of
    ``ties``, kept apart only for display since the fit treats it as a tie.
    """

    names: tuple[str, ...]
    wins: IntArray
    ties: IntArray
    both_bad: IntArray

    def __post_init__(self) -> None:
        n = len(self.names)
        if len(set(self.names)) != n:
            raise ValueError(f"variant names must be unique: {list(self.names)}")
        for label, matrix in (("wins", self.wins), ("ties", self.ties)):
            if matrix.shape != (n, n):
                raise ValueError(f"{label} must be {n}x{n}, got {matrix.shape}")
            if (matrix < 0).any() or np.diag(matrix).any():
                raise ValueError(f"{label} must be non-negative with a zero diagonal")
        if self.both_bad.shape != (n, n) or (self.both_bad > self.ties).any():
            raise ValueError("both_bad must be a part of ties")
        if not (
            np.array_equal(self.ties, self.ties.T)
            and np.array_equal(self.both_bad, self.both_bad.T)
        ):
            raise ValueError("ties and both_bad must be symmetric")

    @property
    def games(self) -> IntArray:
        """Votes between i and j, whatever the outcome."""
        return self.wins + self.wins.T + self.ties

    @property
    def n_votes(self) -> int:
        # Each tie sits in both triangles of the symmetric matrix.
        return int(self.wins.sum() + np.triu(self.ties).sum())

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"unknown variant {name!r}; known: {list(self.names)}") from None


def code_votes(
    names: Sequence[str], votes: Iterable[tuple[str, str, str]], *, allow_same: bool = False
) -> tuple[IntArray, IntArray, IntArray]:
    """(left, right, outcome) votes as arrays: variant indices into `names` and outcome
    codes into OUTCOMES. Raises ValueError for an unknown variant or outcome, and for a
    variant compared with itself unless `allow_same`."""
    index = {name: i for i, name in enumerate(names)}
    left, right, outcome = [], [], []
    for a, b, result in votes:
        if a not in index or b not in index:
            raise ValueError(f"vote ({a!r}, {b!r}) names a variant not in {list(names)}")
        if a == b and not allow_same:
            raise ValueError(f"vote compares {a!r} with itself")
        if result not in OUTCOMES:
            raise ValueError(f"unknown outcome {result!r}; expected one of {list(OUTCOMES)}")
        left.append(index[a])
        right.append(index[b])
        outcome.append(OUTCOMES.index(result))
    as_array = partial(np.array, dtype=np.int64)
    return as_array(left), as_array(right), as_array(outcome)


def count_votes(names: Sequence[str], votes: Iterable[tuple[str, str, str]]) -> PairCounts:
    """Tally (left, right, outcome) votes; outcome is "left", "right", "tie" or "both_bad"."""
    return count_coded(names, *code_votes(names, votes))


def count_coded(
    names: Sequence[str],
    left: NDArray[np.integer],
    right: NDArray[np.integer],
    outcome: NDArray[np.integer],
) -> PairCounts:
    """count_votes on votes as arrays: variant indices into `names`, and outcome codes
    indexing OUTCOMES ("left", "right", "tie", "both_bad"). One np.bincount per matrix."""
    n = len(names)
    rows_left: IntArray = left.astype(np.int64)
    rows_right: IntArray = right.astype(np.int64)

    def tally(mask: NDArray[np.bool_], rows: IntArray, cols: IntArray) -> IntArray:
        return np.bincount(rows[mask] * n + cols[mask], minlength=n * n).reshape(n, n)

    wins = tally(outcome == 0, rows_left, rows_right) + tally(outcome == 1, rows_right, rows_left)
    ties = tally(outcome >= 2, rows_left, rows_right)
    both_bad = tally(outcome == 3, rows_left, rows_right)
    return PairCounts(tuple(names), wins, ties + ties.T, both_bad + both_bad.T)


def clusters_coded(
    names: Sequence[str],
    cluster: NDArray[np.integer],
    left: NDArray[np.integer],
    right: NDArray[np.integer],
    outcome: NDArray[np.integer],
) -> Clusters:
    """count_clusters on votes as arrays (cluster codes, as in count_coded): only clusters
    with votes are kept."""
    n = len(names)
    win, tie = _cell_index(n)
    i: IntArray = left.astype(np.int64)
    j: IntArray = right.astype(np.int64)
    cell = np.where(outcome == 0, win[i, j], np.where(outcome == 1, win[j, i], tie[i, j]))
    n_cells = n * (n - 1) + n * (n - 1) // 2
    used, row = np.unique(cluster, return_inverse=True)
    cells = np.bincount(row * n_cells + cell, minlength=len(used) * n_cells)
    return Clusters(tuple(names), cells.reshape(len(used), n_cells).astype(np.int64))


def _cell_index(n: int) -> tuple[IntArray, IntArray]:
    """Where a vote lands in the flat cell vector (flatten): `win[i, j]` for "i beat j"
    (the off-diagonal cells, row-major), `tie[i, j]` for a tie between i and j (the upper
    triangle, after them)."""
    off = ~np.eye(n, dtype=bool)
    win = np.full((n, n), -1, dtype=np.int64)
    win[off] = np.arange(int(off.sum()))
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    tie = np.full((n, n), -1, dtype=np.int64)
    tie[upper] = int(off.sum()) + np.arange(int(upper.sum()))
    tie = np.maximum(tie, tie.T)
    return win, tie


def flatten(counts: PairCounts) -> FloatArray:
    """The counts as one flat cell vector (cells as in _cell_index)."""
    n = len(counts.names)
    off = ~np.eye(n, dtype=bool)
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    return np.concatenate([counts.wins[off], counts.ties[upper]]).astype(np.float64)


def unflatten(flat: FloatArray, n: int) -> tuple[FloatArray, FloatArray]:
    """(B, cells) -> wins, ties (B, n, n), ties symmetric."""
    off = ~np.eye(n, dtype=bool)
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    n_off = int(off.sum())
    rounds = len(flat)
    wins = np.zeros((rounds, n, n))
    wins[:, off] = flat[:, :n_off]
    ties = np.zeros((rounds, n, n))
    ties[:, upper] = flat[:, n_off:]
    ties += np.swapaxes(ties, 1, 2)
    return wins, ties


@dataclass(frozen=True, eq=False)
class Clusters:
    """The votes grouped by who cast them: ``cells[r]`` is cluster r's (a rater's) votes as
    counts over the cells of the flat vote vector. Given to fit_bradley_terry, the bootstrap
    resamples clusters instead of single votes: one rater's votes are not independent of
    each other (a taste, a habit, a misunderstanding), and resampling them one by one makes
    the intervals too narrow when raters cast many votes each."""

    names: tuple[str, ...]
    cells: IntArray  # (clusters, cells)

    @property
    def n_clusters(self) -> int:
        return len(self.cells)


def count_clusters(
    names: Sequence[str], votes: Iterable[tuple[Hashable, str, str, str]]
) -> Clusters:
    """Tally (cluster label, left, right, outcome) votes per cluster; see count_votes."""
    labelled = list(votes)
    codes: dict[Hashable, int] = {}
    cluster = np.array([codes.setdefault(v[0], len(codes)) for v in labelled], dtype=np.int64)
    coded = code_votes(names, [v[1:] for v in labelled])
    return clusters_coded(names, cluster, *coded)
