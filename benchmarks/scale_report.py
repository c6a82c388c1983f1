"""The scale benchmark's output: Markdown tables of a report (and of the growth between two),
progress notes on stderr, and the failures that make the exit status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from benchmarks.scale_results import Report


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:,.1f}"


def print_report(report: Report) -> None:
    print(f"\n## Scale: {report.url}\n")
    print("\n".join(f"- {line}" for line in report.header))
    print("\n### Routes\n")
    print("| route | target | first hit ms | p50 ms | p90 ms | n | status |")
    print("|---|---|---|---|---|---|---|")
    for t in report.routes:
        print(
            f"| {t.label} | `{t.target}` | {ms(t.first_s)} | {ms(t.percentile(50))} | "
            f"{ms(t.percentile(90))} | {len(t.warm_s)} | {t.status} |"
        )
    print("\n### Exports (one request each)\n")
    print(
        "| export | first byte ms | total ms | MiB | server RSS MiB before / peak / after "
        "| status |"
    )
    print("|---|---|---|---|---|---|")
    for e in report.exports:
        rss = " / ".join(f"{v:,.0f}" for v in e.rss_mib)
        status = f"✗ {e.answer.status}" if e.problem else "200"
        print(
            f"| {e.label} | {ms(e.answer.first_byte_s)} | {ms(e.answer.total_s)} "
            f"| {e.answer.size / 2**20:,.2f} | {rss} | {status} |"
        )
    print("\n### Arena: GET `/arena?run=` from concurrent keep-alive clients\n")
    print("| clients | requests | requests/s | p50 ms | p99 ms | server RSS at end MiB | status |")
    print("|---|---|---|---|---|---|---|")
    for load in report.arena:
        p50, p99 = np.percentile(load.latencies, [50, 99]) if load.latencies else (None, None)
        print(
            f"| {load.clients} | {load.requests} | {load.rps:,.0f} | {ms(p50)} | {ms(p99)} | "
            f"{load.rss_mib:,.0f} | {'✗ ' + load.problem if load.problem else 200} |"
        )
    print("\n### Vote cycle: one rater (writes these votes into the database)\n")
    print("| step | n | p50 ms | p90 ms | status |")
    print("|---|---|---|---|---|")
    for t in report.votes:
        samples = t.warm_s + ([t.first_s] if t.first_s is not None else [])
        p50, p90 = np.percentile(samples, [50, 90]) if samples else (None, None)
        print(f"| {t.label} | {len(samples)} | {ms(p50)} | {ms(p90)} | {t.status} |")
    print("\n### CLI\n")
    print("| command | wall s | peak RSS MiB | exit |")
    print("|---|---|---|---|")
    for c in report.cli:
        print(f"| `{c.command}` | {c.wall_s:.2f} | {c.peak_rss_mib:,.0f} | {c.exit_code} |")
    print(
        f"\nGET routes of the app not in this benchmark: {', '.join(report.unmeasured) or 'none'}"
    )


def print_growth(small: Report, full: Report) -> None:
    print("\n## Growth: full / small\n")
    # For the exports the "first" columns are the first byte, for the rest the first hit.
    print("| route | small p50 ms | full p50 ms | ratio | small first ms | full first ms |")
    print("|---|---|---|---|---|---|")

    def row(
        label: str, a: float | None, b: float | None, fa: float | None, fb: float | None
    ) -> None:
        ratio = f"{b / a:,.1f}×" if a and b else "–"
        print(f"| {label} | {ms(a)} | {ms(b)} | {ratio} | {ms(fa)} | {ms(fb)} |")

    for s, f in zip(small.routes, full.routes, strict=True):
        row(s.label, s.percentile(50), f.percentile(50), s.first_s, f.first_s)
    for se, fe in zip(small.exports, full.exports, strict=True):
        a, b = se.answer, fe.answer
        row(f"export {se.label} (total)", a.total_s, b.total_s, a.first_byte_s, b.first_byte_s)
    for sa, fa in zip(small.arena, full.arena, strict=True):
        label = f"arena, {sa.clients} clients ({sa.rps:,.0f} → {fa.rps:,.0f} requests/s)"
        row(label, median(sa.latencies), median(fa.latencies), None, None)
    for sv, fv in zip(small.votes, full.votes, strict=True):
        row(sv.label, sv.percentile(50), fv.percentile(50), sv.first_s, fv.first_s)
    row("CLI leaderboard (wall)", small.cli[0].wall_s, full.cli[0].wall_s, None, None)
    row("CLI leaderboard, cold (wall)", small.cli[1].wall_s, full.cli[1].wall_s, None, None)


def median(samples: list[float]) -> float | None:
    return float(np.median(samples)) if samples else None


def fail_on_problems(reports: Sequence[Report]) -> None:
    problems = [f"{r.url}: {p}" for r in reports for p in r.problems]
    if problems:
        print("\nFAILED (the server's traceback, if any, is in its stderr above):", file=sys.stderr)
        for problem in problems:
            print(f"- {problem}", file=sys.stderr)
        raise SystemExit(1)
