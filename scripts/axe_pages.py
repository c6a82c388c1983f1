"""The accessibility pass of tests/e2e/test_accessibility_e2e.py on a database you already
have (by default the demo's own, as `make demo` leaves it): every page at 1440 and 390 px
through the vendored axe-core in a real Chromium, on a private copy of the database and its
media (the arena's pages write matchups). Prints each serious or critical violation with its
CSS selector; exits 1 if there is any.

    .venv/bin/python scripts/axe_pages.py                       # data/ and media/ of the demo
    .venv/bin/python scripts/axe_pages.py --database-url sqlite:////tmp/x.db --media /tmp/m

Why beside the test: the tests' fixtures are small runs, and a real run's digits and widths
are what overflowed the dashboard at 390 px (issue 21); `make a11y` checks those.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from tests.conftest import first_prompt_id  # noqa: E402
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, server_on_a_copy  # noqa: E402
from tests.e2e.test_accessibility_e2e import (  # noqa: E402
    PAGES,
    WIDTHS,
    blocking_violations,
    checked_page,
    open_page,
)


def latest_run(database_url: str) -> int:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        run_id = connection.execute(text("SELECT max(id) FROM runs")).scalar()
    engine.dispose()
    if run_id is None:
        sys.exit(f"error: {database_url} holds no run: run `make demo` (or a benchmark) first")
    return int(run_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=f"sqlite:///{ROOT / 'data/flux-playground.db'}")
    parser.add_argument("--media", type=Path, default=ROOT / "media")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--run", type=int, help="run id (default: the latest)")
    args = parser.parse_args()
    if not args.database_url.startswith("sqlite:///"):
        sys.exit("error: --database-url: only SQLite files can be copied here")
    if not Path(args.database_url.removeprefix("sqlite:///")).is_file():
        sys.exit(f"error: --database-url: no such file: {args.database_url}")
    run_id = args.run or latest_run(args.database_url)
    prompt_id = first_prompt_id(args.database_url, run_id)
    blocking: list[str] = []
    with tempfile.TemporaryDirectory() as root, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # An admin token, so /admin answers its sign-in page (401) as in the test, not 404.
        copy = server_on_a_copy(
            args.database_url,
            args.media,
            args.models,
            Path(root),
            FLUX_PLAYGROUND_ADMIN_TOKEN="axe-pages-admin-token",
        )
        with copy as (url, _):
            for name, (path, status) in PAGES.items():
                path = path.format(run=run_id, prompt=prompt_id)
                for width, size in WIDTHS.items():
                    where = f"{name} {path} at {size[0]} px"
                    with checked_page(browser, *size) as page:
                        try:
                            open_page(page, f"{url}{path}", status)
                        except AssertionError as err:  # a page that does not answer as expected
                            found = [f"{where}: answered {err}, expected status {status}"]
                        else:
                            found, _ = blocking_violations(page, where)
                    blocking += found
                    print(f"{'FAIL' if found else 'ok  '} {name:14} {width:8} {path}")
        browser.close()
    for line in blocking:
        print(line)
    print(f"{len(blocking)} serious/critical violations on {len(PAGES) * len(WIDTHS)} pages")
    return 1 if blocking else 0


if __name__ == "__main__":
    raise SystemExit(main())
