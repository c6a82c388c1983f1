"""Jinja2 templates with autoescaping on (every user string is escaped)."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

ROOT = Path(__file__).resolve().parent.parent.parent

templates = Jinja2Templates(directory=ROOT / "templates")


def _fmt_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _fmt_usd(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


templates.env.filters["seconds"] = _fmt_seconds
templates.env.filters["usd"] = _fmt_usd
