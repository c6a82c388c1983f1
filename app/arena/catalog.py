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

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import groupby
from typing import cast

import numpy as np
from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from app.memo import TTLMemo
from app.memory import release_freed_memory
from app.models import Generation, Prompt, Run, Variant, VariantStatus, Vote

VOTES = cast(Table, Vote.__table__)

CATALOG_TTL_S = 5.0
PAIR_COUNTS_TTL_S = 1.0


ImageKey = tuple[int, int]  # (prompt_id, seed)


@dataclass(frozen=True)
class Contender:
    """A finished variant of a run: it can appear in the arena."""

    id: int
    name: str
    reference_id: int | None


@dataclass(frozen=True, slots=True)
class CatalogImage:
    """One variant's image of one prompt and seed: what a matchup and its reveal show."""

    path: str
    version: str  # the image's sha256, first 12 hex digits: its URL's cache key (media_url)
    width: int
    height: int
    latency_s: float
    steps: int

    @property
    def media_url(self) -> str:
        return f"/media/{self.path}?v={self.version}"


class VariantImages:
    """One variant's images, by (prompt, seed), held in columns: a big run's 78k images as
    Python objects were ~55 MB of every server process (issue 11's 300 MB goal); as numpy
    columns and one UTF-8 blob of paths they are ~8 MB. Sorted by (prompt, seed): a lookup
    is a binary search, and the order is stable."""

    def __init__(self, rows: Iterable[tuple[ImageKey, CatalogImage]]) -> None:
        items = sorted(rows, key=lambda item: item[0])
        self._prompts = np.array([key[0] for key, _ in items], dtype=np.int64)
        self._seeds = np.array([key[1] for key, _ in items], dtype=np.int64)
        self._latency = np.array([image.latency_s for _, image in items], dtype=np.float64)
        self._steps = np.array([image.steps for _, image in items], dtype=np.int32)
        self._width = np.array([image.width for _, image in items], dtype=np.int32)
        self._height = np.array([image.height for _, image in items], dtype=np.int32)
        self._version = np.array([image.version.encode() for _, image in items], dtype="S12")
        paths = [image.path.encode() for _, image in items]
        self._path_blob = b"".join(paths)
        self._path_ends = np.cumsum([len(path) for path in paths], dtype=np.int64)

    @classmethod
    def of(cls, images: Mapping[ImageKey, CatalogImage]) -> VariantImages:
        return cls(images.items())

    def __len__(self) -> int:
        return len(self._prompts)

    def _index(self, key: ImageKey) -> int | None:
        prompt_id, seed = key
        start = int(np.searchsorted(self._prompts, prompt_id, side="left"))
        end = int(np.searchsorted(self._prompts, prompt_id, side="right"))
        at = start + int(np.searchsorted(self._seeds[start:end], seed))
        return at if at < end and self._seeds[at] == seed else None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and self._index(key) is not None

    def __getitem__(self, key: ImageKey) -> CatalogImage:
        at = self._index(key)
        if at is None:
            raise KeyError(key)
        start = int(self._path_ends[at - 1]) if at else 0
        return CatalogImage(
            path=self._path_blob[start : int(self._path_ends[at])].decode(),
            version=self._version[at].decode(),
            width=int(self._width[at]),
            height=int(self._height[at]),
            latency_s=float(self._latency[at]),
            steps=int(self._steps[at]),
        )

    def prompt_ids(self) -> set[int]:
        return set(self._prompts.tolist())

    def key_at(self, index: int) -> ImageKey:
        """The index-th (prompt, seed) in order: a uniform draw without listing the keys."""
        return int(self._prompts[index]), int(self._seeds[index])

    def keys(self) -> list[ImageKey]:
        return list(zip(self._prompts.tolist(), self._seeds.tolist(), strict=True))


NO_IMAGES = VariantImages(())


@dataclass
class RunCatalog:
    """A run's finished variants, which (prompt, seed) images each has, and the prompts."""

    run_id: int
    contenders: list[Contender]
    images: dict[int, VariantImages]
    prompts: dict[int, str]
    marker: tuple[object, ...] = ()  # catalog_marker when it was loaded
    _common: dict[tuple[int, int], list[ImageKey]] = field(default_factory=dict, repr=False)

    def contender(self, variant_id: int) -> Contender:
        """Raises LookupError for a variant that is not (or no longer) finished."""
        for contender in self.contenders:
            if contender.id == variant_id:
                return contender
        raise LookupError(f"variant {variant_id} is not a finished variant of run {self.run_id}")

    def images_of(self, variant_id: int) -> VariantImages:
        return self.images.get(variant_id, NO_IMAGES)

    def common_images(self, left_id: int, right_id: int) -> list[ImageKey]:
        """The (prompt, seed) images both variants have, in a stable order."""
        key = (min(left_id, right_id), max(left_id, right_id))
        if key not in self._common:
            both = set(self.images_of(left_id).keys()) & set(self.images_of(right_id).keys())
            self._common[key] = sorted(both)
        return self._common[key]


def load_catalog(
    session: Session, run_id: int, marker: tuple[object, ...] | None = None
) -> RunCatalog:
    # The marker first: a change landing during the load shows as a change at the next look.
    marker = marker if marker is not None else catalog_marker(session, run_id)
    # The arena pairs images of one size: the run's main size (its first), which is what
    # its leaderboard ranks.
    width, height = session.execute(select(Run.width, Run.height).where(Run.id == run_id)).one()
    contenders = [
        Contender(id=row.id, name=row.name, reference_id=row.reference_id)
        for row in session.execute(
            select(Variant.id, Variant.name, Variant.reference_id)
            .where(Variant.run_id == run_id, Variant.status == VariantStatus.done)
            .order_by(Variant.position)
        )
    ]
    rows = session.execute(
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
        )
        .where(
            Generation.variant_id.in_([c.id for c in contenders]),
            Generation.width == width,
            Generation.height == height,
        )
        .order_by(Generation.variant_id)
        .execution_options(yield_per=5000)
    )
    # A variant's rows become columns before the next variant's are read: the objects of
    # one variant's images are alive at a time, not a big run's 78k.
    images = {
        variant_id: VariantImages(
            (
                (row.prompt_id, row.seed),
                CatalogImage(
                    path=row.image_path,
                    version=row.image_sha256[:12],
                    width=row.width,
                    height=row.height,
                    latency_s=row.latency_s,
                    steps=row.steps,
                ),
            )
            for row in variant_rows
        )
        for variant_id, variant_rows in groupby(rows, key=lambda row: row.variant_id)
    }
    prompt_ids = {prompt_id for by_key in images.values() for prompt_id in by_key.prompt_ids()}
    prompts = dict(
        session.execute(select(Prompt.id, Prompt.text).where(Prompt.id.in_(prompt_ids))).all()
    )
    return RunCatalog(
        run_id=run_id,
        contenders=contenders,
        images=images,
        prompts=prompts,
        marker=marker,
    )


def pair_vote_counts(
    session: Session,
    run_id: int,
    *,
    after: int = 0,
    upto: int | None = None,
    add_to: dict[frozenset[int], int] | None = None,
) -> dict[frozenset[int], int]:
    """Votes per unordered variant pair (attention checks excluded), of the votes with ids
    in (after, upto]; added to a copy of `add_to` (the tally so far) when given."""
    counts = dict(add_to or {})
    query = (
        select(VOTES.c.left_variant_id, VOTES.c.right_variant_id, func.count())
        .where(
            VOTES.c.run_id == run_id,
            VOTES.c.id > after,
            VOTES.c.attention_check.is_(False),
        )
        .group_by(VOTES.c.left_variant_id, VOTES.c.right_variant_id)
    )
    if upto is not None:
        query = query.where(VOTES.c.id <= upto)
    for left, right, n in session.execute(query):
        key = frozenset((left, right))
        counts[key] = counts.get(key, 0) + n
    return counts


def catalog_marker(session: Session, run_id: int) -> tuple[object, ...]:
    """What changes when a catalog would: the run's newest image and its variants' states.
    Two small reads (an index probe and the run's variants), against the 78k rows a big
    run's catalog holds."""
    newest = session.scalar(select(func.max(Generation.id)).where(Generation.run_id == run_id))
    states = session.execute(
        select(Variant.id, Variant.status).where(Variant.run_id == run_id).order_by(Variant.id)
    ).all()
    return (newest, tuple((variant_id, str(status)) for variant_id, status in states))


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
        self._loaded: dict[int, RunCatalog] = {}
        # Per run: the largest vote id tallied, and the votes per unordered pair up to it.
        self._pairs: dict[int, tuple[int, dict[frozenset[int], int]]] = {}
        self._pairs_lock = threading.Lock()
        # By the id asked for; None is "the latest run" (a new run shows within the TTL).
        # No run at all is not kept: None reads as a miss.
        self.runs: TTLMemo[int | None, RunInfo | None] = TTLMemo(catalog_ttl_s)

    def load_catalog(self, session: Session, run_id: int) -> RunCatalog:
        """The run's catalog, read again only when its marker changed: each TTL the memo
        asks, and a big run's unchanged catalog costs two small reads instead of a reload
        of every image (a second of CPU every few seconds at 78k images, issue 11)."""
        marker = catalog_marker(session, run_id)
        loaded = self._loaded.get(run_id)
        if loaded is not None and loaded.marker == marker:
            return loaded
        catalog = load_catalog(session, run_id, marker)
        self._loaded[run_id] = catalog
        release_freed_memory()  # the rows a big run's catalog was read from
        return catalog

    def tally_pairs(self, session: Session, run_id: int) -> dict[frozenset[int], int]:
        """Votes per unordered variant pair (attention checks excluded), tallied from the
        votes stored since the last tally only: a GROUP BY over a run's million votes every
        second was most of a busy arena's database time (issue 11)."""
        with self._pairs_lock:
            last, counts = self._pairs.get(run_id, (0, {}))
            upto = session.scalar(select(func.max(VOTES.c.id)).where(VOTES.c.run_id == run_id))
            if upto is None or upto <= last:
                return dict(counts)
            counts = pair_vote_counts(session, run_id, after=last, upto=upto, add_to=counts)
            self._pairs[run_id] = (upto, counts)
            return dict(counts)
