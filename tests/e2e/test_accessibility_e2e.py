"""Every page through axe-core (vendored: static/vendor/axe-core-*.min.js) in a real Chromium,
at a desktop and a phone width: no violation of impact "serious" or "critical".

A failure lists, per page and width, each rule id with its impact and the CSS selectors of
the elements at fault (axe's `target`), so the page's owner can go straight to them; the
rule's help page is https://dequeuniversity.com/rules/axe/4.14/<rule id>.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import DemoData, first_prompt_id

from . import conftest as e2e
from .conftest import LiveServer, server_on_a_copy

ROOT = Path(__file__).resolve().parent.parent.parent
AXE = ROOT / "static" / "vendor" / "axe-core-4.14.1.min.js"
ADMIN_TOKEN = "a11y-admin-token"
BLOCKING = ("serious", "critical")
WIDTHS = {"desktop": (1440, 900), "phone": (390, 844)}

# What a page is, its URL ({run}, {prompt} filled in) and the status it answers.
PAGES = {
    "overview": ("/?run={run}", 200),
    "gallery": ("/prompts?run={run}", 200),
    "prompt": ("/prompts/{prompt}", 200),
    "dashboard": ("/dashboard?run={run}", 200),
    "arena": ("/arena?run={run}", 200),
    "leaderboard": ("/leaderboard?run={run}", 200),
    "runs": ("/runs", 200),
    "run": ("/runs/{run}", 200),
    "hardware": ("/hardware", 200),
    "admin sign-in": ("/admin", 401),
    "not found": ("/no-such-page", 404),
    "api docs": ("/docs", 200),
}

# Violations inside Swagger UI's own markup (/docs, #swagger-ui) that only its upstream can
# fix (swagger-api/swagger-ui renders it from the OpenAPI schema with React); anything of
# ours on that page (lang, landmarks, the heading, the skip link, Swagger UI's colours in
# static/css/docs.css, its options in templates/docs.html) is checked like any page.
SWAGGER_UPSTREAM = {
    "select-name": "a boolean parameter's <select> (an open operation) has no label: Swagger"
    " UI's JsonSchema_boolean component renders it without one, and its name is in another"
    " table cell",
}

AXE_RUN = """async () => {
  const results = await axe.run(document, { resultTypes: ["violations"] });
  const inSwagger = (target) => {
    // A node in a shadow root has a list of selectors, the host's first.
    const first = Array.isArray(target[0]) ? target[0][0] : target[0];
    try {
      const element = document.querySelector(first);
      return Boolean(element && element.closest("#swagger-ui"));
    } catch (error) {
      return false;
    }
  };
  return results.violations.map((v) => ({
    id: v.id,
    help: v.help,
    nodes: v.nodes.map((n) => ({
      impact: n.impact,
      target: n.target.map((t) => (Array.isArray(t) ? t.join(" >>> ") : t)).join(" "),
      summary: (n.failureSummary || "").split("\\n").slice(0, 2).join(" ").slice(0, 220),
      swagger: inSwagger(n.target),
    })),
  }));
}"""


@dataclass(frozen=True)
class A11yServer:
    url: str
    database_url: str
    run_id: int
    prompt_id: int


@pytest.fixture(scope="module")
def a11y_server(
    live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[A11yServer]:
    """The browser tests' data on a server with an admin token (a copy: the admin pages'
    tests create a panel)."""
    root = tmp_path_factory.mktemp("a11y")
    prompt_id = first_prompt_id(live_server.database_url, live_server.run_id)
    with server_on_a_copy(
        live_server.database_url,
        live_server.media_dir,
        live_server.models_dir,
        root,
        FLUX_PLAYGROUND_ADMIN_TOKEN=ADMIN_TOKEN,
        FLUX_PLAYGROUND_SECRET_KEY="a11y-secret",
    ) as (url, database_url):
        yield A11yServer(url, database_url, live_server.run_id, prompt_id)


# The pages whose tables grow with a run's sizes and batch sizes (the demo has both): the
# web test run above has one size, and its dashboard shows no scaling, fits or similarity
# table at all. Checked again on the sized run (tests/conftest.py, sized_data).
SIZED_PAGES = ("overview", "gallery", "prompt", "dashboard", "hardware")


@pytest.fixture(scope="module")
def sized_server(
    sized_data: DemoData, tiny_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[A11yServer]:
    root = tmp_path_factory.mktemp("a11y-sized")
    prompt_id = first_prompt_id(sized_data.database_url, sized_data.run_id)
    with server_on_a_copy(sized_data.database_url, sized_data.media_dir, tiny_models, root) as (
        url,
        database_url,
    ):
        yield A11yServer(url, database_url, sized_data.run_id, prompt_id)


def _status_note(text: str) -> bool:
    """The browser's own note that the document answered a 4xx (the sign-in and not-found
    pages), which is not a script error."""
    return text.startswith("Failed to load resource") and any(
        f"status of {code}" in text for code in (401, 404)
    )


@contextmanager
def checked_page(browser: Browser, width: int, height: int) -> Iterator[Page]:
    """conftest's checked page at this size, with the 4xx notes expected."""
    with e2e.checked_page(
        browser, width, height, timeout_ms=15_000, expected_error=_status_note
    ) as page:
        yield page


@pytest.fixture(params=list(WIDTHS))
def width_page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[tuple[str, Page]]:
    """A checked page at each width."""
    with checked_page(browser, *WIDTHS[request.param]) as page:
        yield request.param, page


def open_page(page: Page, url: str, status: int) -> None:
    response = page.goto(url, wait_until="networkidle")
    assert response is not None and response.status == status, (url, response and response.status)
    if "/docs" in url:  # Swagger UI renders the schema after it has fetched it
        expect(page.locator("#swagger-ui .opblock").first).to_be_visible()


def blocking_violations(page: Page, where: str) -> tuple[list[str], list[str]]:
    """(blocking violations, ones excused as Swagger UI's upstream), one line per element."""
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(AXE_RUN)
    blocking, excused = [], []
    for violation in found:
        for node in violation["nodes"]:
            if node["impact"] not in BLOCKING:
                continue
            line = (
                f"{where}: {violation['id']} ({node['impact']}) at `{node['target']}`"
                f" - {violation['help']}. {node['summary']}"
            )
            upstream = node["swagger"] and violation["id"] in SWAGGER_UPSTREAM
            (excused if upstream else blocking).append(line)
    return blocking, excused


def check(page: Page, where: str) -> None:
    blocking, _ = blocking_violations(page, where)
    assert blocking == [], f"{len(blocking)} serious/critical axe violations:\n" + "\n".join(
        blocking
    )


def check_named_page(width_page: tuple[str, Page], server: A11yServer, name: str, tag: str) -> None:
    width, page = width_page
    path, status = PAGES[name]
    path = path.format(run=server.run_id, prompt=server.prompt_id)
    open_page(page, f"{server.url}{path}", status)
    check(page, f"{name}{tag} {path} at {WIDTHS[width][0]} px")


@pytest.mark.parametrize("name", list(PAGES))
def test_accessibility_e2e_page_has_no_serious_violations(
    width_page: tuple[str, Page], a11y_server: A11yServer, name: str
) -> None:
    check_named_page(width_page, a11y_server, name, "")


@pytest.mark.parametrize("name", SIZED_PAGES)
def test_accessibility_e2e_sized_run_page_has_no_serious_violations(
    width_page: tuple[str, Page], sized_server: A11yServer, name: str
) -> None:
    check_named_page(width_page, sized_server, name, " (sizes x batches)")


def test_accessibility_e2e_admin_pages_after_sign_in(
    width_page: tuple[str, Page], a11y_server: A11yServer
) -> None:
    width, page = width_page
    open_page(page, f"{a11y_server.url}/admin", 401)
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).to_contain_text("Admin: panels, raters and votes")
    # A panel, so that the panels' table is there too.
    page.get_by_label("New panel name").fill(f"a11y panel {width}")
    page.get_by_role("button", name="Create invite code").click()
    expect(page.locator("tr.panel-row").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    check(page, f"admin (signed in) {page.url} at {WIDTHS[width][0]} px")
    open_page(page, f"{a11y_server.url}/admin?flagged=true", 200)
    check(page, f"admin (signed in, flagged only) at {WIDTHS[width][0]} px")


def test_accessibility_e2e_api_docs_with_an_operation_open(
    width_page: tuple[str, Page], a11y_server: A11yServer
) -> None:
    width, page = width_page
    open_page(page, f"{a11y_server.url}/docs", 200)
    # The first operation, the admin's CSV export, has the three kinds of parameter inputs.
    page.locator("#swagger-ui .opblock-summary-control").first.click()
    expect(page.locator("#swagger-ui .parameters").first).to_be_visible()
    blocking, excused = blocking_violations(page, f"api docs, an operation open, at {width}")
    assert blocking == [], f"{len(blocking)} serious/critical axe violations:\n" + "\n".join(
        blocking
    )
    # Each upstream exception is still needed (else drop it from SWAGGER_UPSTREAM).
    assert {line.split(": ", 1)[1].split(" ", 1)[0] for line in excused} == set(SWAGGER_UPSTREAM)
