"""The prompt page's compare slider and images in a real browser: a native range input that
one key press moves by one step (Home/End, Page Up/Down too), exposed as a slider with its
value; both images side by side without JavaScript; the "All variants" grid on thumbnails;
no image drawn wider than twice its natural width."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from .conftest import LiveServer, assert_shown_at_most_twice_natural
from .test_pages_e2e import first_prompt_id

LABEL = "Reveal: dev vs dev-turbo"


@pytest.fixture
def prompt_url(live_server: LiveServer) -> str:
    return f"{live_server.url}/prompts/{first_prompt_id(live_server)}"


@pytest.fixture
def no_js_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    yield context.new_page()
    context.close()


def value(slider: Locator) -> int:
    return int(slider.input_value())


def clip_left(page: Page) -> str:
    """The right image's clip: inset from the left edge to the divider."""
    return page.locator("#compare-slider img[data-side=right]").evaluate(
        "img => getComputedStyle(img).clipPath"
    )


def divider_at(page: Page) -> float:
    """Where the drawn divider is, as a fraction of the images' width."""
    view = page.locator("#compare-slider").bounding_box()
    line = page.locator("#compare-slider .compare-divider").bounding_box()
    assert view is not None and line is not None
    return (line["x"] + line["width"] / 2 - view["x"]) / view["width"]


def test_slider_e2e_one_key_press_is_one_step(page: Page, prompt_url: str) -> None:
    page.goto(prompt_url)
    slider = page.get_by_role("slider", name=LABEL)
    expect(slider).to_be_visible()
    assert value(slider) == 50
    assert clip_left(page) == "inset(0px 0px 0px 50%)"
    slider.focus()
    # A quick press (down, up), as a person taps a key: one step, not "as long as it is held".
    page.keyboard.press("ArrowRight")
    assert value(slider) == 51
    expect(slider).to_have_attribute("aria-valuetext", "51% dev, 49% dev-turbo")
    assert clip_left(page) == "inset(0px 0px 0px 51%)"
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert value(slider) == 49
    page.keyboard.press("PageUp")
    assert value(slider) == 59
    page.keyboard.press("PageDown")
    page.keyboard.press("PageDown")
    assert value(slider) == 39
    page.keyboard.press("Home")
    assert value(slider) == 0
    expect(slider).to_have_attribute("aria-valuetext", "0% dev, 100% dev-turbo")
    assert clip_left(page) == "inset(0px 0px 0px 0%)"
    assert divider_at(page) == pytest.approx(0, abs=0.02)
    page.keyboard.press("End")
    assert value(slider) == 100
    assert clip_left(page) == "inset(0px 0px 0px 100%)"
    assert divider_at(page) == pytest.approx(1, abs=0.02)
    # The arrows moved the slider, not to the previous/next prompt.
    assert page.url == prompt_url


def test_slider_e2e_is_a_slider_with_its_value_to_assistive_tech(
    page: Page, prompt_url: str
) -> None:
    page.goto(prompt_url)
    page.get_by_role("slider", name=LABEL).focus()
    page.keyboard.press("PageDown")
    # What Chromium hands to screen readers: the accessibility tree itself.
    cdp = page.context.new_cdp_session(page)
    sliders = [
        node
        for node in cdp.send("Accessibility.getFullAXTree")["nodes"]
        if node.get("role", {}).get("value") == "slider"
    ]
    assert len(sliders) == 1
    node = sliders[0]
    assert node["name"]["value"] == LABEL
    assert node["value"]["value"] == 40
    properties = {p["name"]: p["value"].get("value") for p in node["properties"]}
    assert (properties["valuemin"], properties["valuemax"]) == (0, 100)
    assert properties["focusable"] is True
    # As Playwright reads the same tree: a slider, its name and its value.
    snapshot = page.locator("#compare-slider").aria_snapshot()
    assert f'slider "{LABEL}"\': "40"' in snapshot, snapshot


def test_slider_e2e_other_variant_relabels_it(page: Page, prompt_url: str) -> None:
    page.goto(prompt_url)
    page.locator("select[name=right]").select_option("schnell")
    slider = page.get_by_role("slider", name="Reveal: dev vs schnell")
    expect(slider).to_be_visible()
    expect(slider).to_have_attribute("aria-valuetext", "50% dev, 50% schnell")
    slider.focus()
    page.keyboard.press("End")
    expect(slider).to_have_attribute("aria-valuetext", "100% dev, 0% schnell")


def test_slider_e2e_drag_moves_the_clip(page: Page, prompt_url: str) -> None:
    page.goto(prompt_url)
    view = page.locator("#compare-slider").bounding_box()
    assert view is not None
    y = view["y"] + view["height"] / 2
    page.mouse.move(view["x"] + view["width"] * 0.5, y)
    page.mouse.down()
    page.mouse.move(view["x"] + view["width"] * 0.25, y, steps=6)
    page.mouse.up()
    moved = value(page.get_by_role("slider", name=LABEL))
    assert moved == pytest.approx(25, abs=2)
    assert clip_left(page) == f"inset(0px 0px 0px {moved}%)"
    assert divider_at(page) == pytest.approx(0.25, abs=0.03)


def test_slider_e2e_without_js_shows_both_images_side_by_side(
    no_js_page: Page, prompt_url: str
) -> None:
    no_js_page.goto(prompt_url)
    left = no_js_page.locator("#compare-slider img[data-side=left]")
    right = no_js_page.locator("#compare-slider img[data-side=right]")
    expect(left).to_be_visible()
    expect(right).to_be_visible()
    a, b = left.bounding_box(), right.bounding_box()
    assert a is not None and b is not None
    assert a["x"] + a["width"] <= b["x"]  # beside, not on top of each other
    assert a["y"] == pytest.approx(b["y"], abs=1)
    assert a["width"] > 10 and b["width"] > 10
    # Both whole: nothing clips the right one, and no slider that could not move.
    assert right.evaluate("img => getComputedStyle(img).clipPath") == "none"
    expect(no_js_page.locator("#compare-slider input[type=range]")).to_be_hidden()
    expect(no_js_page.locator(".compare .hint")).to_be_hidden()
    expect(no_js_page.locator("#compare-form button[type=submit]")).to_be_visible()


def test_prompt_page_e2e_grid_loads_thumbnails_not_pngs(
    page: Page, prompt_url: str, live_server: LiveServer
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(prompt_url)
    grid = page.locator("figure.variant-image a.zoom img")
    expect(grid).to_have_count(3)
    grid.last.scroll_into_view_if_needed()
    for img in grid.all():
        expect(img).to_have_js_property("complete", True)
    paths = [url.removeprefix(live_server.url).split("?")[0] for url in requested]
    shown = grid.evaluate_all("imgs => imgs.map(i => new URL(i.currentSrc).pathname)")
    assert all(src.endswith(".thumb.webp") for src in shown), shown
    assert set(shown) <= set(paths)
    # The only PNGs fetched are the slider's two (compared at full resolution, lossless).
    slider = page.locator("#compare-slider img").evaluate_all(
        "imgs => imgs.map(i => new URL(i.currentSrc).pathname)"
    )
    assert sorted(p for p in paths if p.endswith(".png")) == sorted(slider)
    assert len(slider) == 2
    # The PNG is a click away: the lightbox opens it.
    grid.first.click()
    lightbox = page.locator("dialog#lightbox img")
    expect(lightbox).to_be_visible()
    assert str(lightbox.get_attribute("src")).split("?")[0].endswith(".png")


@pytest.mark.parametrize("width", [1440, 390])
def test_prompt_page_e2e_no_image_wider_than_twice_its_own(
    browser: Browser, prompt_url: str, width: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        page = context.new_page()
        page.goto(prompt_url)
        images = page.locator("#compare-slider img, figure.variant-image img")
        assert_shown_at_most_twice_natural(images, 5)  # the slider's two, the grid's three
    finally:
        context.close()
