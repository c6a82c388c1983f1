"""app/arena/catalog.py: the run catalog on the web test run, and the TTL memo on a fake clock."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from app.arena.catalog import CatalogImage, Contender, RunCatalog, VariantImages, load_catalog
from app.arena.matchups import ArenaError, choose_matchup
from app.db import make_engine, session_scope
from app.models import Generation, Variant
from tests.conftest import DemoData


def test_arena_catalog_holds_finished_variants_and_their_images(demo_data: DemoData) -> None:
    engine = make_engine(demo_data.database_url)
    with session_scope(engine) as session:
        catalog = load_catalog(session, demo_data.run_id)
        generations = session.scalars(
            select(Generation).where(Generation.run_id == demo_data.run_id)
        ).all()
        names = {v.id: v.name for v in session.scalars(select(Variant))}
    # schnell-fp8 failed on the CPU: not a contender, and it has no images anyway.
    assert sorted(c.name for c in catalog.contenders) == ["dev", "dev-turbo", "schnell"]
    assert sum(len(images) for images in catalog.images.values()) == len(generations) == 36
    for g in generations:
        image = catalog.images[g.variant_id][(g.prompt_id, g.seed)]
        assert (image.path, image.latency_s, image.width) == (g.image_path, g.latency_s, g.width)
        assert image.media_url == f"/media/{g.image_path}?v={g.image_sha256[:12]}"
        assert catalog.prompts[g.prompt_id]
        assert catalog.contender(g.variant_id).name == names[g.variant_id]
    fp8 = next(vid for vid, name in names.items() if name == "schnell-fp8")
    with pytest.raises(LookupError):
        catalog.contender(fp8)


def image(n: int) -> CatalogImage:
    return CatalogImage(path=f"{n}.png", version="0" * 12, width=8, height=8, latency_s=1, steps=4)


def test_arena_catalog_common_images_are_the_intersection_in_a_stable_order() -> None:
    catalog = RunCatalog(
        run_id=1,
        contenders=[Contender(1, "a", None), Contender(2, "b", 1)],
        images={
            1: VariantImages.of({(3, 0): image(1), (1, 1): image(2), (1, 0): image(3)}),
            2: VariantImages.of({(1, 0): image(4), (3, 0): image(5), (9, 9): image(6)}),
        },
        prompts={1: "one", 3: "three", 9: "nine"},
    )
    assert catalog.common_images(1, 2) == catalog.common_images(2, 1) == [(1, 0), (3, 0)]
    assert catalog.common_images(1, 1) == [(1, 0), (1, 1), (3, 0)]


def test_variant_images_columns_give_back_each_image_and_refuse_others() -> None:
    """The columnar store returns exactly what was put in, by key, however the keys were
    ordered; keys it does not hold (same prompt other seed, other prompt) are absent."""
    images = {
        (p, seed): CatalogImage(
            path=f"runs/1/ünï/{p}-{seed}.png",
            version=f"{p:04d}{seed % 10**8:08d}",
            width=8 * p + 8,
            height=16,
            latency_s=p / 7 + seed,
            steps=seed % 50 + 1,
        )
        for p in (9, 2, 5)
        for seed in (3, 0, 2**40)
    }
    columns = VariantImages.of(images)
    assert len(columns) == 9
    assert columns.keys() == sorted(images)
    assert [columns.key_at(i) for i in range(9)] == sorted(images)
    for key, expected in images.items():
        assert key in columns
        assert columns[key] == expected
    for missing in ((9, 1), (3, 0), (10, 2**40), (0, 0)):
        assert missing not in columns
        with pytest.raises(KeyError):
            columns[missing]
    assert "x" not in columns


def test_arena_matchup_image_is_uniform_over_the_common_ones() -> None:
    """One side has 40 images, the other 3 of them: every pick is one of the 3, each about a
    third of the time (rejection sampling, then the list when the draws keep missing)."""
    from collections import Counter

    import app.arena.matchups as matchups

    catalog = RunCatalog(
        run_id=1,
        contenders=[Contender(1, "a", None), Contender(2, "b", None)],
        images={
            1: VariantImages.of({(p, 0): image(p) for p in range(40)}),
            2: VariantImages.of({(p, 0): image(100 + p) for p in (5, 17, 33)}),
        },
        prompts={p: str(p) for p in range(40)},
    )
    rng = random.Random(1)
    seen = Counter(
        matchups._common_image(catalog, *catalog.contenders, rng)[0] for _ in range(3000)
    )
    assert set(seen) == {5, 17, 33}
    assert all(abs(n / 3000 - 1 / 3) < 0.04 for n in seen.values())


def test_arena_catalog_pair_without_a_common_image_is_a_clear_409() -> None:
    catalog = RunCatalog(
        run_id=1,
        contenders=[Contender(1, "a", None), Contender(2, "b", None)],
        images={1: VariantImages.of({(1, 0): image(1)}), 2: VariantImages.of({(2, 0): image(2)})},
        prompts={1: "one", 2: "two"},
    )
    rng = random.Random(0)
    refusals: set[tuple[int, str]] = set()
    for _ in range(50):
        try:
            pick = choose_matchup(catalog, {}, rng)
        except ArenaError as exc:
            refusals.add((exc.status_code, exc.reason))
        else:
            # Only an attention check (one variant on both sides) has an image to show.
            assert pick.attention_check and pick.left == pick.right
    # Sides are random: either order names the pair.
    assert refusals
    assert refusals <= {
        (409, "a and b have no image of a common prompt"),
        (409, "b and a have no image of a common prompt"),
    }


def test_arena_cache_reads_only_what_changed(writable_demo: DemoData) -> None:
    """Pair counts are tallied from the votes stored since the last tally, and equal a full
    count; a catalog is read again only when the run's images or variants changed."""
    from app.arena.catalog import ArenaCache, pair_vote_counts
    from app.models import VariantStatus
    from tests.arena.test_leaderboard import add_votes

    url, run_id = writable_demo.database_url, writable_demo.run_id
    cache = ArenaCache()
    engine = make_engine(url)
    add_votes(url, run_id, [("dev", "schnell", "left")] * 3)
    with session_scope(engine) as session:
        assert cache.tally_pairs(session, run_id) == pair_vote_counts(session, run_id)
        first = cache.load_catalog(session, run_id)
        assert cache.load_catalog(session, run_id) is first  # nothing changed
    add_votes(url, run_id, [("dev", "dev-turbo", "tie")] * 2, attention=False)
    add_votes(url, run_id, [("dev", "dev", "tie")], attention=True)  # not counted
    with session_scope(engine) as session:
        tally = cache.tally_pairs(session, run_id)
        assert tally == pair_vote_counts(session, run_id)
        assert sum(tally.values()) == 5
        dev = session.scalars(select(Variant).where(Variant.name == "dev-turbo")).one()
        dev.status = VariantStatus.failed
    with session_scope(engine) as session:
        again = cache.load_catalog(session, run_id)
        assert again is not first
        assert "dev-turbo" not in {c.name for c in again.contenders}
    engine.dispose()
