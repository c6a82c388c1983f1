"""Templates and the one-URL-two-renderings rule.

`render()` returns the whole page, or, when htmx asks (`HX-Request` header), only the page's
`content` block (or the block the route names) — the same template either way
(jinja2-fragments). Autoescaping is on: every string from the database is escaped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from jinja2_fragments.fastapi import Jinja2Blocks

ROOT = Path(__file__).resolve().parent.parent.parent
ASSET_VERSION = "4"  # bump when static/css or static/js change: their URLs carry it

templates = Jinja2Blocks(directory=ROOT / "templates")


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    block: str = "content",
    status_code: int = 200,
) -> Response:
    """The page, or only `block` of it for an htmx request."""
    # A history restore (htmx's cache missed) replaces the whole body: it needs the page.
    fragment = (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )
    response = templates.TemplateResponse(
        request,
        name,
        context,
        status_code=status_code,
        block_name=block if fragment else None,
    )
    # Caches must not serve a fragment to a full-page request or the other way round.
    response.headers["Vary"] = "HX-Request"
    return response


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s" if value < 120 else f"{value / 60:.1f} min"


def fmt_usd(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "$0"
    if value < 0.01:
        return f"${value:.6f}".rstrip("0")
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def fmt_gb(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} GB"


templates.env.filters["seconds"] = fmt_seconds
templates.env.filters["usd"] = fmt_usd
templates.env.filters["ratio"] = fmt_ratio
templates.env.filters["gb"] = fmt_gb
templates.env.globals["asset_version"] = ASSET_VERSION
