"""`leaderboard`: a run's ranking from the arena's votes, as a table or JSON, with an exit code
for a release gate on the verdicts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from app.cli.common import console, err_console, fail
from app.config import get_settings

if TYPE_CHECKING:
    from app.arena.leaderboard_view import LeaderboardView


def leaderboard(
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="Run id (see `runs`).")],
    panel: Annotated[
        str | None, typer.Option(help="Only the votes of this panel (its code).")
    ] = None,
    rounds: Annotated[
        int, typer.Option(min=0, help="Bootstrap rounds for the 95% intervals.")
    ] = 1000,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the leaderboard as JSON (the API's shape).")
    ] = False,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            help="Exit 1 when a variant's verdict against its reference is this one "
            "(worse, undecided, indistinguishable or better; repeatable): a release gate.",
        ),
    ] = None,
) -> None:
    """A run's leaderboard from the arena's votes: Bradley–Terry rating with its 95%
    interval, Elo, votes, and each variant's verdict against its reference."""
    labels = {"worse", "undecided", "indistinguishable", "better"}
    unknown = sorted(set(fail_on or []) - labels)
    if unknown:
        raise fail(
            f"--fail-on: unknown verdict {unknown[0]!r} (one of {', '.join(sorted(labels))})"
        )
    from rich.markup import escape
    from sqlalchemy import select

    from app.arena.leaderboard_cache import leaderboard as compute
    from app.arena.leaderboard_data import leaderboard_data
    from app.db import get_engine, session_scope
    from app.models import Panel, Run

    with session_scope(get_engine()) as session:
        run_row = session.get(Run, run_id)
        if run_row is None:
            raise fail(f"run {run_id} not found")
        panel_row = None
        if panel is not None:
            panel_row = session.scalars(select(Panel).where(Panel.code == panel)).first()
            if panel_row is None:
                raise fail(f"unknown panel code {panel!r}")
        panel_id = panel_row.id if panel_row else None
        view = compute(session, run_row, panel_id=panel_id, rounds=rounds)
        title = f"run {run_row.id} {run_row.name}"
        panel_name = panel_row.name if panel_row is not None else None
        if panel_name is not None:
            title += f", panel {panel_name}"

    if as_json:
        data = leaderboard_data(
            view,
            panel=panel_name,
            preliminary_votes=get_settings().arena_preliminary_votes,
        )
        print(json.dumps(data, indent=2))
    else:
        _print_leaderboard(view, title)
    failing = [v for v in view.verdicts if v.verdict in set(fail_on or [])]
    for found in failing:
        err_console.print(
            f"[red]{escape(found.variant)}: {found.verdict} vs {escape(found.reference)}[/] "
            f"({escape(found.message)})",
            highlight=False,
        )
    if failing:
        raise typer.Exit(1)


def _print_leaderboard(view: LeaderboardView, title: str) -> None:
    from rich.markup import escape

    from app.arena.leaderboard_words import fmt_interval, fmt_rank, fmt_rating, fmt_verdict

    verdicts = {v.variant: v for v in view.verdicts}
    # Names are data, not Rich markup: a "[b]" in one must print as typed.
    table = Table(title=escape(title))
    table.add_column("rank", justify="right")
    # Words like "no votes yet" stay whole; the verdict column wraps in a narrow terminal.
    for name in ("variant", "rating", "95% CI"):
        table.add_column(name, no_wrap=True, justify="left" if name == "variant" else "right")
    table.add_column("Elo", justify="right")
    table.add_column("votes", justify="right")
    table.add_column("verdict vs reference")
    for row in view.rows:
        found = verdicts.get(row.name)
        table.add_row(
            fmt_rank(row.rating.rank),
            escape(row.name),
            fmt_rating(row.rating),
            "pinned"
            if row.name == view.reference and row.votes
            else fmt_interval(row.rating.ci_low, row.rating.ci_high),
            f"{row.elo:.0f}" if row.votes else "—",
            str(row.votes),
            escape(f"{fmt_verdict(found)} vs {found.reference}") if found else "",
        )
    console.print(table)
    console.print(
        f"{view.n_votes} votes counted, {view.flagged_votes} left out (flagged raters), "
        f"{view.anomaly_votes} left out (anomaly flags), "
        f"{view.capped_votes} over the per-network cap; "
        f"{view.reference} pinned at 1000; {view.ranking.rounds} bootstrap rounds",
        highlight=False,
        markup=False,
    )
    for message in view.ranking.messages:
        console.print(message, highlight=False, markup=False)
