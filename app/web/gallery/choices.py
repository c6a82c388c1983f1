"""Which seed and size the gallery's pages show, checked against the run's (`seed=`,
`size=WxH`, default the first seed and the main size), and the links that keep them."""

from __future__ import annotations

import re
from typing import Annotated, NamedTuple
from urllib.parse import urlencode

from fastapi import HTTPException, Query

from app.models import Run
from app.web.deps import INT64_MAX

SeedQuery = Annotated[
    int | None, Query(ge=0, le=INT64_MAX, description="One of the run's seeds; default the first.")
]
SizeQuery = Annotated[
    str | None,
    Query(max_length=16, description="One of the run's sizes, WIDTHxHEIGHT; default the main one."),
]
_SIZE_TEXT = re.compile(r"(\d{1,5})x(\d{1,5})")


class ImageSize(NamedTuple):
    width: int
    height: int

    @property
    def label(self) -> str:
        """As URLs and configs write it: "96x64"."""
        return f"{self.width}x{self.height}"


def query_url(path: str, **params: object) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None and v != ""})
    return f"{path}?{query}" if query else path


def run_seeds(run: Run) -> list[int]:
    return [int(s) for s in run.config["seeds"]]


def checked_seed(run: Run, seed: int | None, *, missing_status: int = 422) -> int:
    """The seed to show. A seed the run lacks is a bad filter on the gallery (422) and a
    resource that does not exist on a prompt's page (404: that prompt at that seed)."""
    seeds = run_seeds(run)
    if seed is None:
        return seeds[0]
    if seed not in seeds:
        listed = ", ".join(str(s) for s in seeds)
        raise HTTPException(
            missing_status, f"seed: {seed} is not a seed of run #{run.id} (one of {listed})"
        )
    return seed


def run_sizes(run: Run) -> list[ImageSize]:
    """The run's image sizes, the main one (runs.width x height) first. A run stored before
    sizes existed has no "sizes" in its config: one size."""
    labels = run.config.get("sizes") or [f"{run.width}x{run.height}"]
    return [ImageSize(*map(int, str(label).split("x"))) for label in labels]


def checked_size(run: Run, size: str | None, *, missing_status: int = 422) -> ImageSize:
    """The size to show, as checked_seed does for the seed; a size not written WxH is a
    bad parameter (422) on both pages."""
    sizes = run_sizes(run)
    if size is None:
        return sizes[0]
    found = _SIZE_TEXT.fullmatch(size)
    if found is None:
        raise HTTPException(
            422, f"size: {size!r} is not a size: write it WIDTHxHEIGHT, e.g. {sizes[0].label}"
        )
    chosen = ImageSize(int(found[1]), int(found[2]))
    if chosen not in sizes:
        listed = ", ".join(s.label for s in sizes)
        raise HTTPException(
            missing_status,
            f"size: {chosen.label} is not a size of run #{run.id} (one of {listed})",
        )
    return chosen


def size_param(run: Run, size: ImageSize) -> str | None:
    """The size as links carry it: not at all when it is the main size (short URLs)."""
    return None if size == run_sizes(run)[0] else size.label


def size_prompt_limit(run: Run, size: ImageSize) -> int | None:
    """How many of the run's prompts (the first, in position order) have images at `size`;
    None: all. The main size has every prompt; size_prompt_limit cuts the others."""
    limit = run.config.get("size_prompt_limit")
    return None if limit is None or size == run_sizes(run)[0] else int(limit)
