"""What issuing a matchup and revealing a vote read, loaded once and kept a few seconds.

Every GET /arena chooses a pair of a run's finished variants (weighted by their vote counts)
and an image both have. Reading the variants, their images and the pair counts from the
database on every request cost more than the rest of the request together (issue 4's load
benchmark); so did reading both sides' names and images for the reveal after a vote. None
of it needs to be fresher than a few seconds: a variant that finished a moment ago joins
the arena CATALOG_TTL_S later, and pair weights lag the votes by at most PAIR_COUNTS_TTL_S
(they only steer which pair comes up more often).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.memo import TTLMemo
from app.models import Generation, Prompt, Variant, VariantStatus

CATALOG_TTL_S = 5.0
PAIR_COUNTS_TTL_S = 1.0


ImageKey = tuple[int, int]  # (prompt_id, seed)


@dataclass(frozen=True)
class Contender:
    """A finished variant of a run: it can appear in the arena."""

    id: int
    name: str
    reference_id: int | None


@dataclass(frozen=True)
class CatalogImage:
    """One variant's image of one prompt and seed: what a matchup and its reveal show."""

    path: str
    sha256: str
    width: int
    height: int
    latency_s: float
    steps: int

    @property
    def media_url(self) -> str:
        return f"/media/{self.path}?v={self.sha256[:12]}"


@dataclass
class RunCatalog:
    """A run's finished variants, which (prompt, seed) images each has, and the prompts."""

    run_id: int
    contenders: list[Contender]
    images: dict[int, dict[ImageKey, CatalogImage]]
    prompts: dict[int, str]
    _common: dict[tuple[int, int], list[ImageKey]] = field(default_factory=dict, repr=False)

    def contender(self, variant_id: int) -> Contender:
        """Raises LookupError for a variant that is not (or no longer) finished."""
        for contender in self.contenders:
            if contender.id == variant_id:
                return contender
        raise LookupError(f"variant {variant_id} is not a finished variant of run {self.run_id}")

    def common_images(self, left_id: int, right_id: int) -> list[ImageKey]:
        """The (prompt, seed) images both variants have, in a stable order."""
        key = (min(left_id, right_id), max(left_id, right_id))
        if key not in self._common:
            both = self.images.get(left_id, {}).keys() & self.images.get(right_id, {}).keys()
            self._common[key] = sorted(both)
        return self._common[key]


def load_catalog(session: Session, run_id: int) -> RunCatalog:
    contenders = [
        Contender(id=row.id, name=row.name, reference_id=row.reference_id)
        for row in session.execute(
            select(Variant.id, Variant.name, Variant.reference_id)
            .where(Variant.run_id == run_id, Variant.status == VariantStatus.done)
            .order_by(Variant.position)
        )
    ]
    images: dict[int, dict[ImageKey, CatalogImage]] = defaultdict(dict)
    for row in session.execute(
        select(
            Generation.variant_id,
            Generation.prompt_id,
            Generation.seed,
            Generation.image_path,
            Generation.image_sha256,
            Generation.width,
            Generation.height,
            Generation.latency_s,
            Generation.steps,
        ).where(Generation.variant_id.in_([c.id for c in contenders]))
    ):
        images[row.variant_id][(row.prompt_id, row.seed)] = CatalogImage(
            path=row.image_path,
            sha256=row.image_sha256,
            width=row.width,
            height=row.height,
            latency_s=row.latency_s,
            steps=row.steps,
        )
    prompt_ids = {prompt_id for by_key in images.values() for prompt_id, _ in by_key}
    prompts = dict(
        session.execute(select(Prompt.id, Prompt.text).where(Prompt.id.in_(prompt_ids))).all()
    )
    return RunCatalog(run_id=run_id, contenders=contenders, images=dict(images), prompts=prompts)


@dataclass(frozen=True)
class RunInfo:
    """What the arena's pages show of a run."""

    id: int
    name: str
    arena: str = "open"  # "panels": invited raters only


class ArenaCache:
    """One per app: the memos the arena's hot paths read instead of the database."""

    def __init__(
        self, catalog_ttl_s: float = CATALOG_TTL_S, pair_counts_ttl_s: float = PAIR_COUNTS_TTL_S
    ) -> None:
        self.catalogs: TTLMemo[int, RunCatalog] = TTLMemo(catalog_ttl_s)
        self.pair_counts: TTLMemo[int, dict[frozenset[int], int]] = TTLMemo(pair_counts_ttl_s)
        # By the id asked for; None is "the latest run" (a new run shows within the TTL).
        # No run at all is not kept: None reads as a miss.
        self.runs: TTLMemo[int | None, RunInfo | None] = TTLMemo(catalog_ttl_s)
