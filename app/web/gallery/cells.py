"""The gallery's cells: one variant's image of one prompt at one seed and size (its URLs,
its thumbnail's width, its srcset), or the status that says why there is none; read for a
page of prompts in two queries."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, load_only

from app.media import THUMB_MAX_SIDE
from app.models import Generation, Job, JobStatus, Prompt, Run, Variant
from app.web.gallery.choices import ImageSize

# A cell's status when no image is made at the chosen size: its variant's config narrows the
# run's sizes, or the prompt is past the run's size_prompt_limit. There is no job, and the
# variant's own status ("done") would read as a bug.
NOT_MADE = "not_made"


@dataclass(frozen=True)
class Cell:
    """One variant's image of one prompt at one seed and size, or why there is none."""

    variant: Variant
    generation: Generation | None
    # The job's status; the variant's when it has no job for this image (not queued yet),
    # or NOT_MADE when the variant makes no images at this size.
    status: str
    error: str | None
    size: ImageSize

    @property
    def label(self) -> str:
        """The status as a cell without an image shows it. Out of memory is a result of the
        benchmark, not a failure: it says so, with the size."""
        if self.status == JobStatus.does_not_fit:
            return f"does not fit at {self.size.label}"
        if self.status == NOT_MADE:
            return f"not made at {self.size.label}"
        return self.status

    @property
    def image_url(self) -> str:
        return _media_url(self._generation.image_path, self._generation.image_sha256)

    @property
    def thumb_url(self) -> str:
        return _media_url(self._generation.thumb_path, self._generation.image_sha256)

    @property
    def thumb_width(self) -> int:
        """The thumbnail's width: the image scaled down (never up) to fit THUMB_MAX_SIDE."""
        g = self._generation
        return min(g.width, round(g.width * THUMB_MAX_SIDE / max(g.width, g.height)))

    @property
    def srcset(self) -> str | None:
        """The thumbnail and the PNG by width, for an image shown small (the browser takes the
        PNG only where the screen needs more pixels than the thumbnail has); None when the
        thumbnail is the image's own size."""
        if self.thumb_width >= self._generation.width:
            return None
        return f"{self.thumb_url} {self.thumb_width}w, {self.image_url} {self._generation.width}w"

    @property
    def _generation(self) -> Generation:
        if self.generation is None:
            raise ValueError(f"{self.variant.name} has no image here")
        return self.generation


@dataclass(frozen=True)
class Row:
    prompt: Prompt
    url: str
    cells: list[Cell]


def _media_url(path: str, sha256: str) -> str:
    # The content hash in the URL lets /media serve with a one-year immutable Cache-Control.
    return f"/media/{path}?v={sha256[:12]}"


# What a gallery cell reads of its image (Cell's URLs and width, the template's caption).
THUMBNAIL_COLUMNS = (
    Generation.id,
    Generation.prompt_id,
    Generation.variant_id,
    Generation.image_path,
    Generation.thumb_path,
    Generation.image_sha256,
    Generation.width,
    Generation.height,
    Generation.latency_s,
)


def run_variants(session: Session, run: Run) -> list[Variant]:
    return list(
        session.scalars(select(Variant).where(Variant.run_id == run.id).order_by(Variant.position))
    )


def _absent(variant: Variant, size: ImageSize) -> tuple[str, str | None]:
    """(status, error) of a cell that has no job: the variant's own, unless its config
    narrows the run's sizes and leaves this one out."""
    own = variant.config.get("sizes")
    if own is not None and size.label not in own:
        return NOT_MADE, f"{variant.name} makes images only at {', '.join(own)}"
    return variant.status.value, variant.error


def load_cells(
    session: Session,
    variants: list[Variant],
    prompt_ids: list[int],
    seed: int,
    size: ImageSize,
    *,
    not_made: str | None = None,
    thumbnails_only: bool = False,
) -> dict[int, list[Cell]]:
    """prompt id -> one cell per variant, in variant order, at this seed and size.
    `not_made`: why these prompts have no images at this size (a cell without a job says it).
    `thumbnails_only`: load what a thumbnail shows and no more (the gallery's hundreds of
    cells: no JSON settings or timestamps decoded per image); any other column raises."""
    if not prompt_ids:
        return {}
    query = select(Generation).where(
        Generation.prompt_id.in_(prompt_ids),
        Generation.seed == seed,
        Generation.width == size.width,
        Generation.height == size.height,
    )
    if thumbnails_only:
        query = query.options(load_only(*THUMBNAIL_COLUMNS, raiseload=True))
    generations = {(g.prompt_id, g.variant_id): g for g in session.scalars(query)}
    jobs = {
        (prompt_id, variant_id): (status.value, error)
        for prompt_id, variant_id, status, error in session.execute(
            select(Job.prompt_id, Job.variant_id, Job.status, Job.error).where(
                Job.prompt_id.in_(prompt_ids),
                Job.seed == seed,
                Job.width == size.width,
                Job.height == size.height,
            )
        )
    }
    absent = {
        variant.id: (NOT_MADE, not_made) if not_made else _absent(variant, size)
        for variant in variants
    }
    out: dict[int, list[Cell]] = {}
    for prompt_id in prompt_ids:
        cells = []
        for variant in variants:
            status, error = jobs.get((prompt_id, variant.id), absent[variant.id])
            generation = generations.get((prompt_id, variant.id))
            cells.append(Cell(variant, generation, status, error or None, size))
        out[prompt_id] = cells
    return out
