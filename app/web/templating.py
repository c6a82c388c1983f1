"""Templates and the one-URL-two-renderings rule.

`render()` returns the whole page, or, when htmx asks (`HX-Request` header), only the page's
`content` block (or the block the route names) — the same template either way
(jinja2-fragments). Autoescaping is on: every string from the database is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from jinja2_fragments.fastapi import Jinja2Blocks

from app import numbers

ROOT = Path(__file__).resolve().parent.parent.parent
ASSET_VERSION = "5"  # bump when static/css or static/js change: their URLs carry it

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


def fmt_usd(value: float | None, among: Iterable[float | None] = ()) -> str:
    """Dollars at three significant figures, or as many as tell `value` from the others in
    its column (`among`): app.numbers.fmt_usd, mirrored by static/js/numbers.js."""
    return numbers.fmt_usd(value, among)


def per_1k(value: float | None) -> float | None:
    """A per-image figure per 1,000 images (the unit every cost on the pages is shown in)."""
    return None if value is None else 1000.0 * value


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def fmt_gb(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} GB"


templates.env.filters["seconds"] = fmt_seconds
templates.env.filters["usd"] = fmt_usd
templates.env.filters["per_1k"] = per_1k
templates.env.filters["estimate"] = numbers.fmt_estimate
templates.env.filters["ratio"] = fmt_ratio
templates.env.filters["gb"] = fmt_gb
templates.env.globals["asset_version"] = ASSET_VERSION
