"""What `scale.py measure` found: per route, export, arena load and CLI command, and the
report of one database that the tables print and the exit status checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from benchmarks.scale_client import Answer


@dataclass
class Timed:
    label: str
    target: str
    expected: int
    first_s: float | None = None
    warm_s: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    problem: str | None = None

    def add(self, answer: Answer) -> None:
        self.statuses.append(answer.status)
        if answer.status == 0:  # no answer: nothing to time
            pass
        elif self.first_s is None:
            self.first_s = answer.total_s
        else:
            self.warm_s.append(answer.total_s)
        if answer.status != self.expected and self.problem is None:
            snippet = answer.body[:300].decode("utf-8", "replace")
            self.problem = f"HTTP {answer.status} (expected {self.expected}): {snippet}"

    def percentile(self, q: float) -> float | None:
        samples = self.warm_s or ([self.first_s] if self.first_s is not None else [])
        return float(np.percentile(samples, q)) if samples else None

    @property
    def status(self) -> str:
        if self.problem is not None:
            return f"✗ {', '.join(sorted({str(s) for s in self.statuses}) or {'none'})}"
        return str(self.expected)


@dataclass
class ExportResult:
    label: str
    target: str
    answer: Answer
    rss_mib: tuple[float, float, float]  # before, peak during, after
    problem: str | None


@dataclass
class LoadResult:
    clients: int
    requests: int
    seconds: float
    latencies: list[float]
    rss_mib: float
    problem: str | None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class CliResult:
    command: str
    wall_s: float
    peak_rss_mib: float
    exit_code: int
    tail: str


@dataclass
class Report:
    url: str
    header: list[str]
    routes: list[Timed]
    exports: list[ExportResult]
    arena: list[LoadResult]
    votes: list[Timed]
    cli: list[CliResult]  # the stored leaderboard current, then nothing stored
    unmeasured: list[str]

    @property
    def problems(self) -> list[str]:
        out = [
            f"{t.label} `{t.target}`: {t.problem}" for t in self.routes + self.votes if t.problem
        ]
        out += [f"export {e.label}: {e.problem}" for e in self.exports if e.problem]
        out += [f"arena, {a.clients} clients: {a.problem}" for a in self.arena if a.problem]
        for cli in self.cli:
            if cli.exit_code != 0:
                out.append(f"{cli.command}: exit {cli.exit_code}: {cli.tail}")
        return out
