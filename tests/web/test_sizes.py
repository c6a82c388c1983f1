"""Sizes (issue 12) on the gallery (/prompts) and the prompt page (/prompts/{id}): one size at a
time (`size=WxH`, default the run's main size), a size selector only when the run has several,
links that keep the size, and "does not fit" shown as a result, not a failure. On the real
sized run made by the real worker (tests/conftest.py `sized_data`); HTML checked with CSS
selectors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import make_engine, session_scope
from app.models import Generation, Job, JobStatus, Prompt, Run, Variant
from app.web.main import create_app
from tests.conftest import DemoData, sqlite_copy

HX = {"HX-Request": "true"}
MAIN, WIDE = (64, 64), (96, 64)
VARIANTS = ["dev", "dev-turbo", "schnell"]
OOM = "does not fit at 96x64, batch 1: 0.3 GB reached of 24.0 GB (test)"


@dataclass(frozen=True)
class Db:
    """What the pages should show, read straight from the sized run's database."""

    run_id: int
    prompts: list[Prompt]  # in position order
    # (variant name, prompt id, (width, height)) -> generation
    images: dict[tuple[str, int, tuple[int, int]], Generation]

    def thumbs(self, size: tuple[int, int]) -> set[str]:
        return {
            f"/media/{g.thumb_path}?v={g.image_sha256[:12]}"
            for (_, _, at), g in self.images.items()
            if at == size
        }

    def thumb(self, variant: str, prompt_id: int, size: tuple[int, int]) -> str:
        g = self.images[(variant, prompt_id, size)]
        return f"/media/{g.thumb_path}?v={g.image_sha256[:12]}"

    def png(self, variant: str, prompt_id: int, size: tuple[int, int]) -> str:
        g = self.images[(variant, prompt_id, size)]
        return f"/media/{g.image_path}?v={g.image_sha256[:12]}"


def read_db(data: DemoData) -> Db:
    engine = make_engine(data.database_url)
    with Session(engine, expire_on_commit=False) as session:
        prompts = list(
            session.scalars(
                select(Prompt).where(Prompt.run_id == data.run_id).order_by(Prompt.position)
            )
        )
        images = {
            (name, g.prompt_id, (g.width, g.height)): g
            for g, name in session.execute(
                select(Generation, Variant.name)
                .join(Variant, Generation.variant_id == Variant.id)
                .where(Generation.run_id == data.run_id)
            )
        }
        session.expunge_all()
    engine.dispose()
    return Db(data.run_id, prompts, images)


@pytest.fixture(scope="module")
def db(sized_data: DemoData) -> Db:
    return read_db(sized_data)


def client_for(data: DemoData) -> TestClient:
    settings = Settings(database_url=data.database_url, media_dir=data.media_dir, page_cache_s=0)
    return TestClient(create_app(settings))


@pytest.fixture
def client(sized_data: DemoData) -> Iterator[TestClient]:
    with client_for(sized_data) as client:
        yield client


@pytest.fixture
def sized_copy(sized_data: DemoData, tmp_path: Path) -> DemoData:
    """A private copy of the sized run's database (media shared, read-only) to write to."""
    return sqlite_copy(sized_data, tmp_path)


def html(text: str) -> BeautifulSoup:
    return BeautifulSoup(text, "html.parser")


def get(client: TestClient, url: str, **headers: str) -> BeautifulSoup:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return html(response.text)


def reasons(text: str) -> str:
    return " ".join(li.get_text() for li in html(text).select(".reasons li"))


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def srcs(page: BeautifulSoup, selector: str) -> list[str]:
    return [str(img["src"]) for img in page.select(selector)]


# ---- the fixture itself -------------------------------------------------------------------


def test_sizes_fixture_is_what_its_docstring_says(sized_data: DemoData, db: Db) -> None:
    assert len(db.prompts) == 3
    assert sorted({(v, at) for v, _, at in db.images}) == [
        (v, at) for v in VARIANTS for at in (MAIN, WIDE)
    ]
    assert len(db.images) == 18
    engine = make_engine(sized_data.database_url)
    with session_scope(engine) as session:
        run = session.get_one(Run, sized_data.run_id)
        assert (run.width, run.height) == MAIN
        assert run.config["sizes"] == ["64x64", "96x64"]
        assert run.config["batch_sizes"] == [1, 2]
        assert set(session.scalars(select(Job.status))) == {JobStatus.done}
    engine.dispose()


# ---- the gallery --------------------------------------------------------------------------


def test_sizes_gallery_defaults_to_the_main_size(client: TestClient, db: Db) -> None:
    page = get(client, f"/prompts?run={db.run_id}")
    shown = srcs(page, "article.prompt-row img")
    assert len(shown) == 9 and set(shown) == db.thumbs(MAIN)
    for img in page.select("article.prompt-row img"):
        assert (img["width"], img["height"]) == ("64", "64")
    assert page.select_one("#results")["data-size"] == "64x64"
    # The default size stays out of the links.
    for row in page.select("article.prompt-row"):
        assert "size" not in query_of(str(row.select_one(".prompt-text")["href"]))


def test_sizes_gallery_size_shows_that_sizes_images(client: TestClient, db: Db) -> None:
    page = get(client, f"/prompts?run={db.run_id}&size=96x64")
    shown = srcs(page, "article.prompt-row img")
    assert len(shown) == 9 and set(shown) == db.thumbs(WIDE)
    # Each image at its own shape: 96 wide, 64 high.
    for img in page.select("article.prompt-row img"):
        assert (img["width"], img["height"]) == ("96", "64")
    assert page.select_one("#results")["data-size"] == "96x64"
    assert "96×64" in page.select_one(".result-count").get_text()
    selected = page.select("form.filters select[name=size] option[selected]")
    assert [o["value"] for o in selected] == ["96x64"]


def test_sizes_gallery_htmx_filter_swaps_in_the_other_size(client: TestClient, db: Db) -> None:
    page = get(client, f"/prompts?run={db.run_id}&size=96x64", **HX, **{"HX-Target": "results"})
    assert page.select("form.filters, html") == []
    assert set(srcs(page, "article.prompt-row img")) == db.thumbs(WIDE)


def test_sizes_selector_has_both_sizes_in_the_filter_form(client: TestClient, db: Db) -> None:
    form = get(client, f"/prompts?run={db.run_id}").select_one("form.filters")
    assert form is not None and form["hx-get"] == "/prompts" and form["method"] == "get"
    select_ = form.select_one("select[name=size]")
    assert select_ is not None
    # Labelled for screen readers: the select sits inside its <label>.
    assert select_.find_parent("label").get_text(" ", strip=True).startswith("Size")
    options = select_.select("option")
    assert [o["value"] for o in options] == ["64x64", "96x64"]
    assert [o.get_text() for o in options] == ["64×64", "96×64"]
    assert [o["value"] for o in options if o.has_attr("selected")] == ["64x64"]


def test_sizes_selector_absent_on_a_one_size_run(
    demo_client: TestClient, demo_data: DemoData
) -> None:
    page = get(demo_client, f"/prompts?run={demo_data.run_id}")
    assert page.select_one("form.filters select[name=seed]") is not None
    assert page.select("select[name=size]") == []
    assert page.select_one("#results")["data-size"] == "64x64"
    prompt_url = str(page.select_one("article.prompt-row .prompt-text")["href"])
    prompt = get(demo_client, prompt_url)
    assert prompt.select_one("form.seed-form select[name=seed]") is not None
    assert prompt.select("select[name=size]") == []


def test_sizes_gallery_links_keep_the_size(client: TestClient, db: Db) -> None:
    page = get(client, f"/prompts?run={db.run_id}&size=96x64&per_page=2")
    for row in page.select("article.prompt-row"):
        assert query_of(str(row.select_one(".prompt-text")["href"]))["size"] == ["96x64"]
        assert query_of(str(row.select_one(".tag-category")["href"]))["size"] == ["96x64"]
        for link in row.select("figure.thumb a"):
            assert query_of(str(link["href"]))["size"] == ["96x64"]
    next_url = str(page.select_one("a[rel=next]")["href"])
    assert query_of(next_url)["size"] == ["96x64"]
    assert page.select_one("nav#load-more button.load-more")["hx-get"] == next_url
    # "Load more" brings the next page's rows at the same size.
    more = get(client, next_url, **HX, **{"HX-Target": "load-more"})
    assert set(srcs(more, "article.prompt-row img")) <= db.thumbs(WIDE)
    assert len(srcs(more, "article.prompt-row img")) == 3
    prev_url = str(get(client, next_url).select_one("a[rel=prev]")["href"])
    assert query_of(prev_url)["size"] == ["96x64"]
    # A search that matches nothing offers all prompts again, at the same size.
    empty = get(client, f"/prompts?run={db.run_id}&size=96x64&q=zebra")
    assert query_of(str(empty.select_one("#results .empty a")["href"]))["size"] == ["96x64"]


@pytest.mark.parametrize(
    ("query", "status", "reason"),
    [
        ("&size=128x128", 422, "size: 128x128 is not a size of run"),
        ("&size=abc", 422, "size: 'abc' is not a size: write it WIDTHxHEIGHT"),
        ("&size=96X64", 422, "write it WIDTHxHEIGHT"),
        ("&size=96x64x1", 422, "write it WIDTHxHEIGHT"),
        ("&size=", 422, "write it WIDTHxHEIGHT"),
        ("&size=" + "9" * 17, 422, "size"),
    ],
)
def test_sizes_gallery_bad_size_is_4xx_with_reason(
    client: TestClient, db: Db, query: str, status: int, reason: str
) -> None:
    response = client.get(f"/prompts?run={db.run_id}{query}")
    assert response.status_code == status
    assert reason in reasons(response.text)


def test_sizes_gallery_unknown_size_lists_the_runs_sizes(client: TestClient, db: Db) -> None:
    response = client.get(f"/prompts?run={db.run_id}&size=128x128")
    assert "(one of 64x64, 96x64)" in reasons(response.text)


# ---- the prompt page ----------------------------------------------------------------------


def test_sizes_prompt_page_defaults_to_the_main_size(client: TestClient, db: Db) -> None:
    prompt = db.prompts[0]
    page = get(client, f"/prompts/{prompt.id}")
    assert srcs(page, "figure.variant-image a.zoom img") == [
        db.thumb(v, prompt.id, MAIN) for v in VARIANTS
    ]
    slider = page.select_one("#compare-slider")
    assert srcs(slider, "img") == [db.png(v, prompt.id, MAIN) for v in ("dev", "dev-turbo")]
    form = page.select_one("form.seed-form")
    assert form is not None and form.has_attr("data-autosubmit")
    options = form.select("select[name=size] option")
    assert [o["value"] for o in options] == ["64x64", "96x64"]
    assert [o["value"] for o in options if o.has_attr("selected")] == ["64x64"]
    assert form.select_one("button[type=submit]") is not None  # without JS
    # One seed: no seed select, and nothing to keep.
    assert form.select("[name=seed]") == []
    assert page.select("form#compare-form input[name=size]") == []
    assert "size" not in query_of(str(page.select_one("a[rel=next]")["href"]))


def test_sizes_prompt_page_size_shows_that_sizes_images(client: TestClient, db: Db) -> None:
    prompt = db.prompts[1]
    page = get(client, f"/prompts/{prompt.id}?size=96x64")
    assert page.select_one("article.prompt-page")["data-size"] == "96x64"
    images = page.select("figure.variant-image a.zoom img")
    assert [str(i["src"]) for i in images] == [db.thumb(v, prompt.id, WIDE) for v in VARIANTS]
    assert {(i["width"], i["height"]) for i in images} == {("96", "64")}
    links = page.select("figure.variant-image a.zoom")
    assert [str(a["href"]) for a in links] == [db.png(v, prompt.id, WIDE) for v in VARIANTS]
    # No image is drawn wider than twice its width.
    assert "--img-max: 192px" in str(page.select_one(".variant-grid")["style"])
    for figure in page.select("figure.variant-image"):
        size = figure.select_one(".setting[data-key=size] dd").get_text(strip=True)
        assert size == "96×64"
    slider = page.select_one("#compare-slider")
    assert srcs(slider, "img") == [db.png(v, prompt.id, WIDE) for v in ("dev", "dev-turbo")]
    # The compare box takes the image's shape, and stops at twice its width.
    box_style = str(page.select_one(".compare-box")["style"])
    assert "--ratio: 96 / 64" in box_style
    assert "--img-max: 192px" in box_style
    # The slider's choices swap in images of this size.
    options = page.select("form#compare-form select[name=right] option")
    assert [str(o["data-src"]) for o in options] == [db.png(v, prompt.id, WIDE) for v in VARIANTS]
    selected = page.select("form.seed-form select[name=size] option[selected]")
    assert [o["value"] for o in selected] == ["96x64"]


def test_sizes_prompt_page_links_keep_the_size(client: TestClient, db: Db) -> None:
    first, second, third = db.prompts
    page = get(client, f"/prompts/{second.id}?size=96x64&left=schnell")
    for rel, target in (("prev", first), ("next", third)):
        url = str(page.select_one(f"a[rel={rel}]")["href"])
        assert urlsplit(url).path == f"/prompts/{target.id}"
        assert query_of(url) == {"size": ["96x64"], "left": ["schnell"]}
    gallery = str(page.select_one("a.back")["href"])
    assert query_of(gallery) == {"run": [str(db.run_id)], "size": ["96x64"]}
    for tag in page.select(".prompt-meta a.tag"):
        assert query_of(str(tag["href"]))["size"] == ["96x64"]
    # The compare form (a GET form without JS) keeps it too.
    hidden = page.select_one("form#compare-form input[type=hidden][name=size]")
    assert hidden is not None and hidden["value"] == "96x64"
    # So does the size form keep the comparison.
    assert page.select_one("form.seed-form input[name=left]")["value"] == "schnell"


@pytest.mark.parametrize(
    ("query", "status", "reason"),
    [
        ("?size=128x128", 404, "size: 128x128 is not a size of run"),
        ("?size=%3Cb%3E", 422, "size: '<b>' is not a size"),
        ("?size=64", 422, "write it WIDTHxHEIGHT, e.g. 64x64"),
    ],
)
def test_sizes_prompt_page_bad_size_is_4xx_with_reason(
    client: TestClient, db: Db, query: str, status: int, reason: str
) -> None:
    response = client.get(f"/prompts/{db.prompts[0].id}{query}")
    assert response.status_code == status
    assert reason in reasons(response.text)
    assert html(response.text).select("main b") == []


# ---- what a cell without an image says ----------------------------------------------------


def mark_does_not_fit(data: DemoData, variant: str, prompt_id: int) -> None:
    """As the worker stores an out-of-memory image: the job does_not_fit, no generation."""
    engine = make_engine(data.database_url)
    with session_scope(engine) as session:
        job = session.scalars(
            select(Job)
            .join(Variant, Job.variant_id == Variant.id)
            .where(Variant.name == variant, Job.prompt_id == prompt_id, Job.width == WIDE[0])
        ).one()
        session.execute(delete(Generation).where(Generation.job_id == job.id))
        job.status, job.error = JobStatus.does_not_fit, OOM
    engine.dispose()


def test_sizes_does_not_fit_is_a_result_not_a_failure(sized_copy: DemoData, db: Db) -> None:
    prompt = db.prompts[0]
    mark_does_not_fit(sized_copy, "dev-turbo", prompt.id)
    with client_for(sized_copy) as client:
        page = get(client, f"/prompts?run={db.run_id}&size=96x64")
        row = page.select_one(f"article.prompt-row[data-prompt-id='{prompt.id}']")
        cell = row.select_one("figure.thumb.missing[data-variant=dev-turbo]")
        placeholder = cell.select_one(".placeholder")
        assert placeholder.get_text(strip=True) == "does not fit at 96x64"
        assert placeholder["title"] == OOM
        assert "status-does_not_fit" in placeholder["class"]
        assert "status-failed" not in placeholder["class"]
        assert "aspect-ratio: 96 / 64" in str(placeholder["style"])
        # The main size's image is still there.
        main = get(client, f"/prompts?run={db.run_id}")
        assert main.select("figure.missing") == []

        page = get(client, f"/prompts/{prompt.id}?size=96x64")
        figure = page.select_one("figure.variant-image[data-variant=dev-turbo]")
        assert figure.select_one(".placeholder").get_text(strip=True) == "does not fit at 96x64"
        assert figure.select_one(".badge").get_text(strip=True) == "does not fit"
        assert figure.select_one(".error").get_text(strip=True) == OOM
        assert "not-a-failure" in figure.select_one(".error")["class"]
        option = page.select_one("select[name=right] option[value=dev-turbo]")
        assert option.get_text() == "dev-turbo (does not fit at 96x64)"
        # dev-turbo against its reference is the default pair: its image is missing, so the
        # first two variants with an image are compared instead.
        assert page.select_one("#compare-slider") is not None
        page = get(client, f"/prompts/{prompt.id}?size=96x64&right=dev-turbo")
        message = page.select_one(".compare-missing").get_text(" ", strip=True)
        assert "dev-turbo has no image for this prompt at seed 0 (does not fit at 96x64)" in message


def test_sizes_a_variant_narrowed_to_one_size_says_not_made(sized_copy: DemoData, db: Db) -> None:
    # As a variant with `sizes = ["64x64"]` would have been enqueued: no jobs at 96x64.
    engine = make_engine(sized_copy.database_url)
    with session_scope(engine) as session:
        variant = session.scalars(select(Variant).where(Variant.name == "schnell")).one()
        variant.config = {**variant.config, "sizes": ["64x64"]}
        wide = select(Job.id).where(Job.variant_id == variant.id, Job.width == WIDE[0])
        session.execute(delete(Generation).where(Generation.job_id.in_(wide)))
        session.execute(delete(Job).where(Job.id.in_(wide)))
    engine.dispose()
    with client_for(sized_copy) as client:
        page = get(client, f"/prompts?run={db.run_id}&size=96x64")
        placeholders = page.select("figure.missing[data-variant=schnell] .placeholder")
        assert len(placeholders) == 3
        for placeholder in placeholders:
            assert placeholder.get_text(strip=True) == "not made at 96x64"
            assert placeholder["title"] == "schnell makes images only at 64x64"
        assert len(srcs(get(client, f"/prompts?run={db.run_id}"), "article img")) == 9


def test_sizes_prompts_past_the_size_prompt_limit(sized_copy: DemoData, db: Db) -> None:
    # As `size_prompt_limit = 2` would have been enqueued: the third prompt only at 64x64.
    last = db.prompts[2]
    engine = make_engine(sized_copy.database_url)
    with session_scope(engine) as session:
        run = session.get_one(Run, db.run_id)
        run.config = {**run.config, "size_prompt_limit": 2}
        wide = select(Job.id).where(Job.prompt_id == last.id, Job.width == WIDE[0])
        session.execute(delete(Generation).where(Generation.job_id.in_(wide)))
        session.execute(delete(Job).where(Job.id.in_(wide)))
    engine.dispose()
    with client_for(sized_copy) as client:
        page = get(client, f"/prompts?run={db.run_id}&size=96x64")
        ids = [int(str(r["data-prompt-id"])) for r in page.select("article.prompt-row")]
        assert ids == [p.id for p in db.prompts[:2]]
        assert "first 2 prompts only" in page.select_one(".result-count").get_text()
        assert page.select("figure.missing") == []
        main = get(client, f"/prompts?run={db.run_id}")
        assert len(main.select("article.prompt-row")) == 3

        page = get(client, f"/prompts/{last.id}?size=96x64")
        placeholders = page.select("figure.variant-image .placeholder")
        assert [p.get_text(strip=True) for p in placeholders] == ["not made at 96x64"] * 3
        error = page.select_one("figure.variant-image .error").get_text(strip=True)
        assert error == "images at 96x64 are made for the first 2 prompts only"
