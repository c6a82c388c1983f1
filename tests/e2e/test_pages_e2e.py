"""The issue's browser checks: gallery filter, compare slider, price control, live progress."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import Page, expect

from app.bench.benchmark import load_benchmark
from app.bench.prompts import load_prompts
from app.db import make_engine
from app.worker.enqueue import enqueue_run
from tests import conftest

from .conftest import LiveServer

CLI = Path(sys.executable).parent / "flux-playground"


def first_prompt_id(server: LiveServer) -> int:
    return conftest.first_prompt_id(server.database_url, server.run_id)


def test_gallery_e2e_filter_by_category(page: Page, live_server: LiveServer) -> None:
    page.goto(f"{live_server.url}/prompts?run={live_server.run_id}")
    expect(page.locator("article.prompt-row")).to_have_count(6)
    page.locator("select[name=category]").select_option("Animals")
    # htmx swaps the results in place and pushes the filtered URL.
    expect(page.locator("article.prompt-row")).to_have_count(2)
    assert "category=Animals" in page.url
    for row in page.locator("article.prompt-row").all():
        expect(row).to_contain_text("Animals")
    page.locator("input[name=q]").press_sequentially("owl")  # typing, as a person would
    expect(page.locator("article.prompt-row")).to_have_count(1)
    expect(page.locator("article.prompt-row")).to_contain_text("owl reading a newspaper")


def test_prompt_page_e2e_compare_slider(page: Page, live_server: LiveServer) -> None:
    page.goto(f"{live_server.url}/prompts/{first_prompt_id(live_server)}")
    slider = page.locator("#compare-slider")
    expect(slider).to_be_visible()
    page.locator("select[name=right]").select_option("schnell")
    expect(slider.locator("img[data-side=right]")).to_have_attribute("data-variant", "schnell")
    assert "/schnell/" in (slider.locator("img[data-side=right]").get_attribute("src") or "")
    # Drag the divider: the range's value (0..100, where the divider is) follows.
    start = float(slider.locator("input[type=range]").input_value())
    box = slider.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.15, box["y"] + box["height"] * 0.5, steps=8)
    page.mouse.up()
    moved = float(slider.locator("input[type=range]").input_value())
    assert moved < start - 20, (start, moved)


def test_dashboard_e2e_price_changes_costs(page: Page, live_server: LiveServer) -> None:
    page.goto(f"{live_server.url}/dashboard?run={live_server.run_id}")
    cost = page.locator("tr[data-variant='dev'] td.cost")
    before = float(cost.get_attribute("data-value") or "nan")
    page.locator("#usd-per-hour").fill("7.2")
    expect(cost).not_to_have_attribute("data-value", str(before))
    after = float(cost.get_attribute("data-value") or "nan")
    assert after == 2 * before
    assert "usd_per_hour=7.2" in page.url


def test_run_page_e2e_progress_updates_until_done(page: Page, live_server: LiveServer) -> None:
    prompts = Path(live_server.media_dir).parent / "progress.tsv"
    prompts.write_text(
        "prompt\tcategory\tchallenge\n"
        + "".join(f"a watercolor of {n} boats\tArts\tQuantity\n" for n in range(2, 14))
    )
    config = prompts.with_suffix(".toml")
    config.write_text(
        'name = "progress"\nprompts = "progress.tsv"\nseeds = [0]\nwidth = 64\nheight = 64\n'
        'device = "cpu"\nhardware = "Test CPU"\nusd_per_hour = 1.0\nwarmup = 0\nrepeats = 2\n\n'
        '[[variants]]\nname = "dev"\nmodel = "tiny:dev"\nsteps = 8\nguidance = 3.5\n'
        'max_sequence_length = 32\ndtype = "float32"\n'
    )
    engine = make_engine(live_server.database_url)
    bench = load_benchmark(config)
    run_id = enqueue_run(engine, bench, load_prompts(bench.prompts_path))
    engine.dispose()

    page.goto(f"{live_server.url}/runs/{run_id}")
    progress = page.locator(".run-progress")
    expect(progress).to_have_attribute("hx-trigger", "every 1s")
    env = os.environ | {
        "FLUX_PLAYGROUND_DATABASE_URL": live_server.database_url,
        "FLUX_PLAYGROUND_MEDIA_DIR": str(live_server.media_dir),
        "FLUX_PLAYGROUND_MODELS_DIR": str(live_server.models_dir),
    }
    worker = subprocess.Popen(
        [str(CLI), "worker", "--run", str(run_id)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        expect(progress).to_have_attribute("data-status", "done", timeout=90_000)
    finally:
        worker.wait(timeout=60)
    assert worker.returncode == 0
    # The page updated itself (no reload) to the final counts, and stopped polling.
    expect(page.locator("progress.overall-bar")).to_have_attribute("value", "12")
    expect(page.locator(".run-progress")).not_to_have_attribute("hx-trigger", "every 1s")
