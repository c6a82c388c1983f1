"""The gallery (/prompts) and the prompt page (/prompts/{id}), on the real demo run made by the
real worker (tests/web/conftest.py); HTML checked with CSS selectors. Read-only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

import pytest
from bs4 import BeautifulSoup, Tag
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import make_engine
from app.models import Generation, Prompt, Variant
from app.web.gallery.cells import Cell
from app.web.gallery.choices import ImageSize
from app.web.main import create_app
from tests.web.conftest import DemoData

HX = {"HX-Request": "true"}
SCRIPT_PROMPT = '<script>alert("x")</script> a lighthouse & the sea'


class Response(Protocol):
    """The test client's response, as far as these tests read it."""

    @property
    def text(self) -> str: ...


@dataclass(frozen=True)
class Db:
    """What the pages should show, read straight from the demo database."""

    run_id: int
    variants: list[str]
    prompts: list[Prompt]  # in position order
    # (variant name, prompt id, seed) -> generation
    images: dict[tuple[str, int, int], Generation]

    def prompt(self, text_start: str) -> Prompt:
        return next(p for p in self.prompts if p.text.startswith(text_start))

    def thumb(self, variant: str, prompt_id: int, seed: int) -> str:
        g = self.images[(variant, prompt_id, seed)]
        return f"/media/{g.thumb_path}?v={g.image_sha256[:12]}"

    def png(self, variant: str, prompt_id: int, seed: int) -> str:
        g = self.images[(variant, prompt_id, seed)]
        return f"/media/{g.image_path}?v={g.image_sha256[:12]}"


@pytest.fixture(scope="module")
def db(demo_data: DemoData) -> Iterator[Db]:
    engine = make_engine(demo_data.database_url)
    with Session(engine, expire_on_commit=False) as session:
        run_id = demo_data.run_id
        variants = list(
            session.scalars(
                select(Variant.name).where(Variant.run_id == run_id).order_by(Variant.position)
            )
        )
        prompts = list(
            session.scalars(select(Prompt).where(Prompt.run_id == run_id).order_by(Prompt.position))
        )
        images = {
            (name, g.prompt_id, g.seed): g
            for g, name in session.execute(
                select(Generation, Variant.name)
                .join(Variant, Generation.variant_id == Variant.id)
                .where(Generation.run_id == run_id)
            )
        }
        session.expunge_all()
    engine.dispose()
    yield Db(run_id, variants, prompts, images)


def html(response: Response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")


def gallery(client: TestClient, db: Db, query: str = "", **headers: str) -> BeautifulSoup:
    response = client.get(f"/prompts?run={db.run_id}{query}", headers=headers)
    assert response.status_code == 200, response.text
    return html(response)


def prompt_ids(page: BeautifulSoup | Tag) -> list[int]:
    return [int(str(row["data-prompt-id"])) for row in page.select("article.prompt-row")]


def reasons(response: Response) -> str:
    return " ".join(li.get_text() for li in html(response).select(".reasons li"))


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# ---- the gallery ------------------------------------------------------------------------


def test_gallery_rows_and_thumbnails_match_the_database(demo_client: TestClient, db: Db) -> None:
    page = gallery(demo_client, db)
    assert db.variants == ["dev", "dev-turbo", "schnell", "schnell-fp8"]
    assert prompt_ids(page) == [p.id for p in db.prompts]
    heads = [span.get_text(strip=True) for span in page.select(".prompt-grid-head .variant-head")]
    assert heads == db.variants
    for prompt in db.prompts:
        row = page.select_one(f"article.prompt-row[data-prompt-id='{prompt.id}']")
        assert row is not None
        assert [str(f["data-variant"]) for f in row.select("figure")] == db.variants
        for variant in ("dev", "dev-turbo", "schnell"):
            img = row.select_one(f"figure[data-variant='{variant}'] img")
            assert img is not None
            assert img["src"] == db.thumb(variant, prompt.id, 0)
            assert img["loading"] == "lazy"
            assert img["width"] == img["height"] == "64"
            assert str(img["alt"]).startswith(f"{variant}: ")
        assert row.select_one(".prompt-text")["href"] == f"/prompts/{prompt.id}"
        assert row.select_one(".tag-category").get_text() == prompt.category
        assert row.select_one(".tag-challenge").get_text() == prompt.challenge
    assert len(page.select("article.prompt-row img")) == 3 * len(db.prompts)
    assert page.select_one(".result-count").get_text(" ", strip=True).startswith("6 prompts")


def test_gallery_failed_variant_shows_placeholder(demo_client: TestClient, db: Db) -> None:
    page = gallery(demo_client, db)
    missing = page.select("article.prompt-row figure.missing")
    assert len(missing) == len(db.prompts)
    for figure in missing:
        assert figure["data-variant"] == "schnell-fp8"
        assert figure.select("img") == []
        assert figure.select_one(".placeholder").get_text(strip=True) == "failed"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("&category=Animals", ["an owl", "two cats"]),
        ("&challenge=Imagination", ["an owl", "a teapot"]),
        ("&q=LightHouse", ["<script>"]),
        ("&q=+a+bowl+", ["a bowl"]),
        ("&category=Animals&challenge=Quantity", ["two cats"]),
        ("&category=&challenge=&q=", ["a red", "a bowl", "an owl", "<script>", "a teapot", "two"]),
    ],
)
def test_gallery_filters_by_category_challenge_and_text(
    demo_client: TestClient, db: Db, query: str, expected: list[str]
) -> None:
    page = gallery(demo_client, db, query)
    assert prompt_ids(page) == [db.prompt(start).id for start in expected]


def test_gallery_filter_options_come_from_the_run(demo_client: TestClient, db: Db) -> None:
    page = gallery(demo_client, db, "&category=Animals")
    options = page.select("form.filters select[name=category] option")
    assert [o["value"] for o in options] == ["", *sorted({p.category for p in db.prompts})]
    assert [o["value"] for o in options if o.has_attr("selected")] == ["Animals"]
    challenges = page.select("form.filters select[name=challenge] option")
    assert [o["value"] for o in challenges][1:] == sorted({p.challenge for p in db.prompts})
    assert [o["value"] for o in page.select("form.filters select[name=seed] option")] == ["0", "1"]


def test_gallery_filter_form_works_with_and_without_htmx(demo_client: TestClient, db: Db) -> None:
    form = gallery(demo_client, db, "&q=owl").select_one("form.filters")
    assert form is not None
    assert (form["method"], form["action"]) == ("get", "/prompts")
    assert form.select_one("input[name=q]")["value"] == "owl"
    assert form.select_one("input[type=hidden][name=run]")["value"] == str(db.run_id)
    assert form["hx-get"] == "/prompts"
    assert form["hx-target"] == "#results"
    assert form["hx-push-url"] == "true"
    assert "keyup changed delay:300ms from:input[name=q]" in str(form["hx-trigger"])
    assert "change" in str(form["hx-trigger"]).split(", ")


def test_gallery_no_match_says_so(demo_client: TestClient, db: Db) -> None:
    page = gallery(demo_client, db, "&q=zebra")
    assert prompt_ids(page) == []
    empty = page.select_one("#results .empty")
    assert empty is not None
    assert "No prompts match “zebra”" in empty.get_text(" ", strip=True)
    assert empty.select_one("a")["href"] == f"/prompts?run={db.run_id}"


def test_gallery_text_search_is_literal(demo_client: TestClient, db: Db) -> None:
    # "%" and "_" are LIKE wildcards; typed in the box they must match only themselves.
    assert prompt_ids(gallery(demo_client, db, "&q=%25")) == []
    assert prompt_ids(gallery(demo_client, db, "&q=_")) == []


def test_gallery_seed_switch_shows_that_seeds_images(demo_client: TestClient, db: Db) -> None:
    page = gallery(demo_client, db, "&seed=1")
    first = db.prompts[0]
    row = page.select_one(f"article.prompt-row[data-prompt-id='{first.id}']")
    assert row is not None
    srcs = [img["src"] for img in row.select("img")]
    assert srcs == [db.thumb(v, first.id, 1) for v in ("dev", "dev-turbo", "schnell")]
    assert set(srcs).isdisjoint(db.thumb(v, first.id, 0) for v in ("dev", "dev-turbo", "schnell"))
    assert row.select_one(".prompt-text")["href"] == f"/prompts/{first.id}?seed=1"
    selected = page.select("select[name=seed] option[selected]")
    assert [o["value"] for o in selected] == ["1"]
    assert page.select_one("#results")["data-seed"] == "1"


@pytest.mark.parametrize(
    ("query", "status", "reason"),
    [
        ("&seed=7", 422, "seed: 7 is not a seed of run"),
        ("&seed=abc", 422, "seed"),
        ("&page=0", 422, "page"),
        ("&page=x", 422, "page"),
        ("&page=2", 404, "page: 2 is past the last page (1)"),
        ("&per_page=0", 422, "per_page"),
        ("&per_page=1000", 422, "per_page"),
        ("&q=" + "x" * 201, 422, "q"),
    ],
)
def test_gallery_bad_query_is_4xx_with_reason(
    demo_client: TestClient, db: Db, query: str, status: int, reason: str
) -> None:
    response = demo_client.get(f"/prompts?run={db.run_id}{query}")
    assert response.status_code == status
    assert reason in reasons(response)


def test_gallery_unknown_run_is_404(demo_client: TestClient) -> None:
    response = demo_client.get("/prompts?run=999")
    assert response.status_code == 404
    assert "run 999 not found" in reasons(response)


def test_gallery_without_runs_says_how_to_start(database_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=database_url, media_dir=tmp_path / "media")
    response = TestClient(create_app(settings)).get("/prompts")
    assert response.status_code == 200
    assert "flux-playground run" in html(response).select_one("p.empty").get_text()


def test_gallery_htmx_filter_returns_only_the_results(demo_client: TestClient, db: Db) -> None:
    page = gallery(demo_client, db, "&category=Animals", **HX, **{"HX-Target": "results"})
    assert page.select("html, head, nav.mainnav, header.topbar, form.filters") == []
    top = [el for el in page.children if isinstance(el, Tag)]
    assert [(el.name, el.get("id")) for el in top] == [("section", "results")]
    assert prompt_ids(page) == [db.prompt("an owl").id, db.prompt("two cats").id]


def test_gallery_htmx_without_target_returns_the_content(demo_client: TestClient, db: Db) -> None:
    page = gallery(demo_client, db, **HX)
    assert page.select("html, nav.mainnav") == []
    assert page.select_one("form.filters") is not None
    assert len(prompt_ids(page)) == len(db.prompts)


def test_gallery_pagination_pages_through_every_prompt(demo_client: TestClient, db: Db) -> None:
    first = gallery(demo_client, db, "&per_page=4")
    assert prompt_ids(first) == [p.id for p in db.prompts[:4]]
    assert first.select("a[rel=prev]") == []
    pager = first.select_one("nav.pager#load-more")
    assert pager is not None
    next_url = str(first.select_one("a[rel=next]")["href"])
    assert query_of(next_url) == {"run": [str(db.run_id)], "per_page": ["4"], "page": ["2"]}
    # htmx: "Load more" (hidden until gallery.js shows it) loads the next page in its place.
    button = pager.select_one("button.load-more[hidden]")
    assert button is not None
    assert button["type"] == "button"
    assert button["hx-get"] == next_url
    assert (button["hx-target"], button["hx-swap"]) == ("#load-more", "outerHTML")
    assert not pager.has_attr("hx-trigger")  # a button, not infinite scroll
    assert button.get_text(strip=True) == "Load 2 more prompts"
    # The filter form keeps the page size.
    assert first.select_one("form.filters input[name=per_page]")["value"] == "4"

    second = html(demo_client.get(next_url))
    assert prompt_ids(second) == [p.id for p in db.prompts[4:]]
    assert second.select("a[rel=next]") == []
    assert second.select("nav.pager button") == []
    prev_url = str(second.select_one("a[rel=prev]")["href"])
    assert prompt_ids(html(demo_client.get(prev_url))) == prompt_ids(first)


def test_gallery_load_more_returns_only_the_next_rows(demo_client: TestClient, db: Db) -> None:
    first = gallery(demo_client, db, "&per_page=2&challenge=Basic")
    next_url = str(first.select_one("nav#load-more button.load-more")["hx-get"])
    assert query_of(next_url)["challenge"] == ["Basic"]
    response = demo_client.get(next_url, headers={**HX, "HX-Target": "load-more"})
    assert response.status_code == 200
    fragment = html(response)
    top = [el.name for el in fragment.children if isinstance(el, Tag)]
    # Rows, then the pager that replaces the old one (and loads the page after, if any).
    assert top == ["article", "nav"]
    assert fragment.select("html, #results, .prompt-grid-head, form") == []
    basic = [p.id for p in db.prompts if p.challenge == "Basic"]
    assert prompt_ids(fragment) == basic[2:3]
    # Below the rows already shown, the pager counts from the first and has no "previous".
    pager = fragment.select_one("nav#load-more")
    assert pager is not None
    assert pager.select("a, button") == []
    assert pager.get_text(" ", strip=True) == f"1–3 of {len(basic)}"
    # What the live region says once the rows are in.
    assert pager["data-announce"] == f"1 more prompt loaded, 1–3 of {len(basic)} shown."


def test_gallery_escapes_prompt_text(demo_client: TestClient, db: Db) -> None:
    response = demo_client.get(f"/prompts?run={db.run_id}")
    page = html(response)
    assert page.select("main script") == []
    row = page.select_one(f"article.prompt-row[data-prompt-id='{db.prompt('<script>').id}']")
    assert row is not None
    text = row.select_one(".prompt-text").get_text(" ", strip=True)
    assert text.endswith(SCRIPT_PROMPT)
    assert row.select_one("img")["alt"] == f"dev: {SCRIPT_PROMPT}"
    # The filter and the empty message echo the search text escaped too.
    searched = gallery(demo_client, db, "&q=%3Cscript%3Enope")
    assert searched.select("main script") == []
    assert searched.select_one("input[name=q]")["value"] == "<script>nope"


def test_gallery_thumbnails_are_cached_webp(demo_client: TestClient, db: Db) -> None:
    page = gallery(demo_client, db)
    srcs = [str(img["src"]) for img in page.select("article.prompt-row img")]
    assert len(srcs) == 18
    for src in srcs:
        response = demo_client.get(src)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/webp"
        assert "max-age=31536000" in response.headers["cache-control"]


def test_gallery_loads_its_script_not_the_prompt_pages(demo_client: TestClient, db: Db) -> None:
    page = gallery(demo_client, db)
    assert page.select("script[src*='prompt.js']") == []
    script = page.select_one("script[src^='/static/js/gallery.js']")
    assert script is not None and script.has_attr("defer")
    assert demo_client.get(str(script["src"])).status_code == 200
    assert page.select_one("link[href^='/static/css/gallery.css']") is not None
    assert page.select_one("nav.mainnav a[aria-current=page]").get_text() == "Gallery"


@pytest.mark.parametrize(
    ("query", "sentence"),
    [
        ("", "6 prompts shown."),
        ("&category=Animals", "2 prompts shown, filtered by category Animals."),
        (
            "&q=owl&challenge=Imagination",
            "1 prompt shown, filtered by “owl”, challenge Imagination.",
        ),
        ("&per_page=4", "1–4 of 6 prompts shown."),
        ("&per_page=4&page=2", "5–6 of 6 prompts shown."),
        ("&seed=1", "6 prompts shown, seed 1."),
        ("&seed=1&q=zebra", "No prompts match “zebra”, seed 1."),
        ("&q=zebra", "No prompts match “zebra”."),
        ("&q=zebra&category=Animals&seed=0", "No prompts match “zebra”, category Animals."),
    ],
)
def test_gallery_live_region_says_one_sentence(
    demo_client: TestClient, db: Db, query: str, sentence: str
) -> None:
    page = gallery(demo_client, db, query)
    results = page.select_one("#results")
    # The results are swapped whole: not live themselves (a screen reader would read all of
    # them, or nothing), but carrying the sentence the status region says.
    assert not results.has_attr("aria-live")
    assert results["data-announce"] == sentence
    status = page.select_one("#gallery-status")
    assert (status["role"], status["aria-live"]) == ("status", "polite")
    assert status.get_text() == ""
    assert status.find_parent(id="results") is None  # outlives every swap of the results
    # The htmx fragment of the filter form carries the same sentence.
    fragment = gallery(demo_client, db, query, **HX, **{"HX-Target": "results"})
    assert fragment.select_one("#results")["data-announce"] == sentence


def test_gallery_images_capped_at_twice_their_size(demo_client: TestClient, db: Db) -> None:
    assert "--img-max: 128px" in str(gallery(demo_client, db).select_one("#results")["style"])


@pytest.mark.parametrize(
    ("size", "srcset"),
    [
        ((1024, 768), "/media/t.webp?v=abc 384w, /media/i.png?v=abc 1024w"),
        ((512, 1024), "/media/t.webp?v=abc 192w, /media/i.png?v=abc 512w"),
        ((384, 256), None),
        ((64, 64), None),
    ],
)
def test_gallery_cell_srcset_offers_the_png_only_when_bigger(
    size: tuple[int, int], srcset: str | None
) -> None:
    width, height = size
    generation = Generation(
        image_path="i.png", thumb_path="t.webp", image_sha256="abc", width=width, height=height
    )
    cell = Cell(Variant(name="v"), generation, "done", None, ImageSize(width, height))
    assert cell.srcset == srcset


# ---- the prompt page --------------------------------------------------------------------


def prompt_page(client: TestClient, prompt: Prompt, query: str = "") -> BeautifulSoup:
    response = client.get(f"/prompts/{prompt.id}{query}")
    assert response.status_code == 200, response.text
    return html(response)


def settings_of(figure: Tag) -> dict[str, str]:
    return {
        str(div["data-key"]): div.select_one("dd").get_text(strip=True)
        for div in figure.select("dl.settings .setting")
    }


def test_prompt_page_shows_every_variant_with_its_settings(demo_client: TestClient, db: Db) -> None:
    prompt = db.prompt("an owl")
    page = prompt_page(demo_client, prompt)
    assert page.select_one("h1.prompt-title").get_text() == prompt.text
    figures = page.select("figure.variant-image")
    assert [f["data-variant"] for f in figures] == db.variants
    for figure in figures[:3]:
        g = db.images[(str(figure["data-variant"]), prompt.id, 0)]
        img = figure.select_one("a.zoom img")
        assert img["src"] == db.thumb(str(figure["data-variant"]), prompt.id, 0)
        assert (img["width"], img["height"]) == ("64", "64")
        settings = settings_of(figure)
        assert settings["model"] == g.model
        assert settings["steps"] == str(g.steps)
        assert settings["guidance"] == f"{g.guidance:g}"
        assert settings["seed"] == "0"
        assert settings["dtype"] == g.dtype
        assert settings["size"] == "64×64"
        assert settings["latency"].endswith(("ms", "s"))
        assert "optimizations" in settings
    by_name = {str(f["data-variant"]): f for f in figures}
    assert settings_of(by_name["dev-turbo"])["lora"] == "tiny:turbo-lora × 1.0 (fused)"
    assert settings_of(by_name["dev"])["lora"] == "none"
    assert by_name["dev-turbo"].select_one(".reference").get_text() == "vs dev"
    failed = by_name["schnell-fp8"]
    assert "missing" in failed["class"]
    assert failed.select("img") == []
    assert failed.select_one(".placeholder").get_text(strip=True) == "failed"
    assert failed.select_one(".error").get_text(strip=True)
    # Settings of an image that was never made come from the variant's config.
    assert settings_of(failed)["model"] == "tiny:schnell"
    assert "latency" not in settings_of(failed)


def test_prompt_page_images_link_to_the_full_png(demo_client: TestClient, db: Db) -> None:
    page = prompt_page(demo_client, db.prompts[0])
    links = page.select("figure.variant-image a.zoom")
    assert len(links) == 3
    for link in links:
        # The page shows the thumbnail; the link (and the lightbox) opens the PNG.
        variant = str(link.find_parent("figure")["data-variant"])
        assert link["href"] == db.png(variant, db.prompts[0].id, 0)
        assert link.select_one("img")["src"] == db.thumb(variant, db.prompts[0].id, 0)
        response = demo_client.get(str(link["href"]))
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert "max-age=31536000" in response.headers["cache-control"]
    assert page.select_one("dialog#lightbox") is not None


def test_prompt_page_slider_defaults_to_optimized_vs_reference(
    demo_client: TestClient, db: Db
) -> None:
    prompt = db.prompts[0]
    page = prompt_page(demo_client, prompt)
    slider = page.select_one("#compare-slider")
    assert slider is not None
    # The slider compares the full PNGs (lossless: a thumbnail's WebP would blur the details).
    assert slider.select_one("img[data-side=left]")["src"] == db.png("dev", prompt.id, 0)
    assert slider.select_one("img[data-side=right]")["src"] == db.png("dev-turbo", prompt.id, 0)
    assert page.select_one("select[name=left] option[selected]")["value"] == "dev"
    assert page.select_one("select[name=right] option[selected]")["value"] == "dev-turbo"


def test_prompt_page_slider_shows_the_chosen_variants(demo_client: TestClient, db: Db) -> None:
    prompt = db.prompts[2]
    page = prompt_page(demo_client, prompt, "?left=schnell&right=dev&seed=1")
    slider = page.select_one("#compare-slider")
    assert slider.select_one("img[data-side=left]")["src"] == db.png("schnell", prompt.id, 1)
    assert slider.select_one("img[data-side=right]")["src"] == db.png("dev", prompt.id, 1)
    assert [s.get_text() for s in page.select("[data-compare-label]")] == ["schnell", "dev"]
    form = page.select_one("form#compare-form")
    assert form["method"] == "get"
    assert form.select_one("input[type=hidden][name=seed]")["value"] == "1"
    # Each option carries its image so the script can swap without a reload.
    options = {str(o["value"]): o for o in form.select("select[name=right] option")}
    assert list(options) == db.variants
    assert options["dev-turbo"]["data-src"] == db.png("dev-turbo", prompt.id, 1)
    assert not options["schnell-fp8"].has_attr("data-src")
    assert options["schnell-fp8"].get_text() == "schnell-fp8 (failed)"


def test_prompt_page_compare_with_a_failed_variant_says_why(
    demo_client: TestClient, db: Db
) -> None:
    page = prompt_page(demo_client, db.prompts[0], "?right=schnell-fp8")
    assert page.select("#compare-slider, input[type=range]") == []
    message = page.select_one(".compare-missing").get_text(" ", strip=True)
    assert "schnell-fp8 has no image for this prompt at seed 0 (failed)" in message


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("?left=nope", "left: no variant named 'nope'"),
        ("?right=%3Cb%3E", "right: no variant named '<b>'"),
        ("?left=" + "x" * 65, "left"),
    ],
)
def test_prompt_page_bad_query_is_422_with_reason(
    demo_client: TestClient, db: Db, query: str, reason: str
) -> None:
    response = demo_client.get(f"/prompts/{db.prompts[0].id}{query}")
    assert response.status_code == 422
    assert reason in reasons(response)
    assert html(response).select("main b") == []


def test_prompt_page_seed_the_run_lacks_is_404(demo_client: TestClient, db: Db) -> None:
    response = demo_client.get(f"/prompts/{db.prompts[0].id}?seed=9")
    assert response.status_code == 404
    assert "seed: 9 is not a seed of run" in reasons(response)


def test_prompt_page_seed_switch_shows_that_seeds_images(demo_client: TestClient, db: Db) -> None:
    prompt = db.prompts[1]
    page = prompt_page(demo_client, prompt, "?seed=1")
    srcs = [img["src"] for img in page.select("figure.variant-image img")]
    assert srcs == [db.thumb(v, prompt.id, 1) for v in ("dev", "dev-turbo", "schnell")]
    assert {settings_of(f)["seed"] for f in page.select("figure.variant-image")} == {"1"}
    assert page.select_one("form.seed-form option[selected]")["value"] == "1"


def test_prompt_page_prev_next_links_follow_positions(demo_client: TestClient, db: Db) -> None:
    first, second, *_, before_last, last = db.prompts
    page = prompt_page(demo_client, first)
    assert page.select("a[rel=prev]") == []
    assert page.select_one("a[rel=next]")["href"] == f"/prompts/{second.id}"
    assert page.select_one("a[rel=next]")["data-key-nav"] == "next"

    page = prompt_page(demo_client, last)
    assert page.select("a[rel=next]") == []
    assert page.select_one("a[rel=prev]")["href"] == f"/prompts/{before_last.id}"

    page = prompt_page(demo_client, second, "?seed=1&left=schnell")
    prev_url = str(page.select_one("a[rel=prev]")["href"])
    assert urlsplit(prev_url).path == f"/prompts/{first.id}"
    assert query_of(prev_url) == {"seed": ["1"], "left": ["schnell"]}
    assert query_of(str(page.select_one("a[rel=next]")["href"]))["seed"] == ["1"]


def test_prompt_page_unknown_prompt_is_404(demo_client: TestClient) -> None:
    response = demo_client.get("/prompts/99999")
    assert response.status_code == 404
    assert reasons(response) == "prompt 99999 not found"
    assert demo_client.get("/prompts/abc").status_code == 422


def test_prompt_page_escapes_prompt_text(demo_client: TestClient, db: Db) -> None:
    prompt = db.prompt("<script>")
    response = demo_client.get(f"/prompts/{prompt.id}")
    assert '<script>alert("x")' not in response.text
    page = html(response)
    assert page.select("main script") == []
    assert page.select_one("h1.prompt-title").get_text() == SCRIPT_PROMPT
    assert page.select_one("#compare-slider img")["alt"] == f"dev: {SCRIPT_PROMPT}"
    label = page.select_one("#compare-slider input[type=range]")["aria-label"]
    assert label == "Reveal: dev vs dev-turbo"


def test_prompt_page_slider_is_a_native_range(demo_client: TestClient, db: Db) -> None:
    page = prompt_page(demo_client, db.prompts[0])
    # No web component to load: the slider is an <input type=range> that prompt.js shows.
    assert page.select("script[src*='/static/vendor/']:not([src*=htmx])") == []
    assert page.select("img-comparison-slider") == []
    slider = page.select_one("#compare-slider input.compare-range[type=range]")
    assert slider is not None
    assert slider.has_attr("hidden")  # without JS the two images stand side by side
    assert (slider["min"], slider["max"], slider["step"], slider["value"]) == (
        "0",
        "100",
        "1",
        "50",
    )
    assert slider["aria-label"] == "Reveal: dev vs dev-turbo"
    assert slider["aria-valuetext"] == "50% dev, 50% dev-turbo"
    # The box stops at twice the image's width.
    assert "--img-max: 128px" in str(page.select_one(".compare-box")["style"])
    own = page.select_one("script[src^='/static/js/prompt.js']")
    assert own is not None and own.has_attr("defer")
    assert demo_client.get(str(own["src"])).status_code == 200


def test_prompt_page_htmx_returns_only_the_content(demo_client: TestClient, db: Db) -> None:
    response = demo_client.get(f"/prompts/{db.prompts[0].id}", headers=HX)
    assert response.status_code == 200
    page = html(response)
    assert page.select("html, head, nav.mainnav") == []
    assert page.select_one("article.prompt-page h1.prompt-title") is not None
