"""Compression (Starlette's GZipMiddleware in app/web/main.py) and what a first load of each
page weighs with it: the page's HTML plus every script, stylesheet, icon and image it
references, in the bytes that cross the wire."""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import anyio
import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from starlette.types import Message

from app.config import Settings
from app.web.main import GZIP_MINIMUM_SIZE, create_app
from tests.conftest import first_prompt_id
from tests.web.conftest import DemoData

GZIP = {"Accept-Encoding": "gzip"}
ADMIN_TOKEN = "compression-admin-token"
KB = 1000

# First-load budgets in KB, on the web test run (4 variants x 6 prompts x 2 seeds, 64x64).
# /prompts and /prompts/{id} are the issue's; the others are what they weighed when this
# test was written plus ~25% (see the report in the commit): a page that grows past its
# budget should say why in the commit that raises it.
BUDGETS_KB = {
    "overview": 28,  # 21.9 KB measured; htmx is 16.9 KB of it
    "gallery": 300,  # 65.0
    "prompt": 350,  # 54.4
    "dashboard": 130,  # 103.6; Chart.js 71.3
    "arena": 66,  # 53.0; the two matchup PNGs 26.9
    "leaderboard": 30,  # 23.5
    "runs": 29,  # 22.7
    "run": 30,  # 23.6
    "hardware": 31,  # 24.3
    "admin login": 27,  # 21.2
    "admin": 28,  # 21.9
    "not found": 26,  # 20.2
    "api docs": 645,  # 514.6; Swagger UI's bundle 459.8
}

TEXT_TYPES = (
    "text/html",
    "text/css",
    "text/javascript",
    "application/javascript",
    "application/json",
)
IMAGE_TYPES = ("image/png", "image/webp", "image/jpeg", "image/avif")


@pytest.fixture(scope="module")
def client(demo_data: DemoData) -> Iterator[TestClient]:
    settings = Settings(
        database_url=demo_data.database_url,
        media_dir=demo_data.media_dir,
        admin_token=ADMIN_TOKEN,
        secret_key="compression-secret",
        page_cache_s=0,
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def prompt_id(demo_data: DemoData) -> int:
    return first_prompt_id(demo_data.database_url, demo_data.run_id)


def pages(run_id: int, prompt_id: int) -> dict[str, tuple[str, dict[str, str]]]:
    """Name -> (path, extra request headers)."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    return {
        "overview": (f"/?run={run_id}", {}),
        "gallery": (f"/prompts?run={run_id}", {}),
        "prompt": (f"/prompts/{prompt_id}", {}),
        "dashboard": (f"/dashboard?run={run_id}", {}),
        "arena": (f"/arena?run={run_id}", {}),
        "leaderboard": (f"/leaderboard?run={run_id}", {}),
        "runs": ("/runs", {}),
        "run": (f"/runs/{run_id}", {}),
        "hardware": ("/hardware", {}),
        "admin login": ("/admin", {}),
        "admin": ("/admin", admin),
        "not found": ("/no-such-page", {}),
        "api docs": ("/docs", {}),
    }


# A first load in a desktop browser: what an <img srcset sizes> picks at this width, DPR 1.
VIEWPORT_PX = 1440


def slot_width(sizes: str) -> float:
    """The image's slot width in CSS px from a `sizes` attribute: the first entry whose
    (max-width|min-width: N px) condition holds at VIEWPORT_PX, or the last entry."""
    for entry in (part.strip() for part in sizes.split(",") if part.strip()):
        condition = re.match(r"^\((max|min)-width:\s*([\d.]+)px\)\s*(.+)$", entry)
        if condition:
            kind, limit, length = condition.groups()
            holds = float(limit) >= VIEWPORT_PX if kind == "max" else float(limit) <= VIEWPORT_PX
            if not holds:
                continue
            entry = length
        value = re.match(r"^(?:min\()?\s*([\d.]+)(px|vw)", entry)
        assert value is not None, f"sizes entry this test cannot read: {entry!r}"
        number, unit = float(value.group(1)), value.group(2)
        return number * VIEWPORT_PX / 100 if unit == "vw" else number
    return VIEWPORT_PX


def chosen_source(srcset: str, sizes: str | None) -> str:
    """The candidate a browser takes at VIEWPORT_PX: with width descriptors the smallest at
    least the slot's width (else the largest), with density descriptors the 1x one."""
    candidates = []
    for part in (p.strip() for p in srcset.split(",") if p.strip()):
        url, _, descriptor = part.partition(" ")
        candidates.append((url, descriptor.strip() or "1x"))
    if all(d.endswith("w") for _, d in candidates):
        need = slot_width(sizes or "100vw")
        by_width = sorted(candidates, key=lambda c: float(c[1][:-1]))
        wide_enough = [url for url, d in by_width if float(d[:-1]) >= need]
        return wide_enough[0] if wide_enough else by_width[-1][0]
    return next((url for url, d in candidates if d == "1x"), candidates[0][0])


def referenced(html: str, base: str) -> list[str]:
    """Every script, stylesheet, icon and image a first load of the page fetches (each once)."""
    soup = BeautifulSoup(html, "html.parser")
    urls = [s["src"] for s in soup.select("script[src]")]
    for link in soup.select("link[href]"):
        rel = set(link.get("rel") or [])
        if rel & {"stylesheet", "icon", "preload", "modulepreload"}:
            urls.append(link["href"])
    for img in soup.select("img"):
        srcset = img.get("srcset")
        if srcset:
            urls.append(chosen_source(str(srcset), img.get("sizes")))
        elif img.get("src"):
            urls.append(img["src"])
    for source in soup.select("picture source[srcset]"):
        urls.append(chosen_source(str(source["srcset"]), source.get("sizes")))
    absolute = [urljoin(base, str(url)) for url in urls]
    return list(dict.fromkeys(url for url in absolute if urlsplit(url).scheme != "data"))


@dataclass
class Load:
    html_plain: int = 0
    html_wire: int = 0
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # url -> (type, wire bytes)

    @property
    def total(self) -> int:
        return self.html_wire + sum(size for _, size in self.files.values())


def wire_get(client: TestClient, url: str, headers: dict[str, str]) -> tuple[int, str, int, bytes]:
    """Status, content type, bytes on the wire (still compressed), decoded body."""
    with client.stream("GET", url, headers=GZIP | headers) as response:
        raw = b"".join(response.iter_raw())
        encoding = response.headers.get("content-encoding")
        body = gzip.decompress(raw) if encoding == "gzip" else raw
        assert encoding in (None, "gzip"), url
        return response.status_code, response.headers.get("content-type", ""), len(raw), body


def first_load(client: TestClient, path: str, headers: dict[str, str]) -> Load:
    status, kind, wire, body = wire_get(client, path, headers)
    assert kind.startswith("text/html"), path
    assert status in (200, 401, 404), (path, status)
    load = Load(html_plain=len(body), html_wire=wire)
    base = f"http://testserver{path}"
    for url in referenced(body.decode(), base):
        status, kind, size, _ = wire_get(client, url, {})
        assert status == 200, (path, url, status)
        load.files[url] = (kind.partition(";")[0], size)
    if path == "/docs":  # Swagger UI fetches the schema as it starts
        status, kind, size, _ = wire_get(client, "/openapi.json", {})
        load.files["/openapi.json"] = (kind, size)
    return load


def describe(name: str, load: Load) -> str:
    lines = [f"{name}: {load.total / KB:.1f} KB (HTML {load.html_plain} -> {load.html_wire} B)"]
    lines += [f"  {size:>9} B  {kind:24} {url}" for url, (kind, size) in load.files.items()]
    return "\n".join(lines)


def test_compression_first_loads_within_budget(
    client: TestClient, demo_data: DemoData, prompt_id: int
) -> None:
    report, over = [], []
    for name, (path, headers) in pages(demo_data.run_id, prompt_id).items():
        load = first_load(client, path, headers)
        report.append(describe(name, load))
        if load.total > BUDGETS_KB[name] * KB:
            over.append(f"{name} ({path}): {load.total / KB:.1f} KB > {BUDGETS_KB[name]} KB")
    print("\n".join(report))
    assert over == [], "\n".join(over) + "\n\n" + "\n".join(report)


def tokens(header: str | None) -> list[str]:
    return [token.strip().lower() for token in (header or "").split(",") if token.strip()]


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/prompts?run={run}", "text/html"),
        ("/api/v1/runs/{run}/generations?limit=50", "application/json"),
        ("/static/css/app.css?v=1", "text/css"),
        ("/static/vendor/htmx-2.0.11.min.js", "text/javascript"),
        ("/static/vendor/swagger-ui-5.35.0/swagger-ui.css", "text/css"),
    ],
)
def test_compression_gzips_html_json_css_and_js(
    client: TestClient, demo_data: DemoData, path: str, kind: str
) -> None:
    url = path.format(run=demo_data.run_id)
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    status, content_type, wire, body = wire_get(client, url, {})
    assert status == plain.status_code == 200
    assert content_type.startswith(kind)
    assert "content-encoding" not in plain.headers
    assert body == plain.content  # the same bytes, once unzipped
    assert wire < len(body) / 2, (url, wire, len(body))
    with client.stream("GET", url, headers=GZIP) as response:
        assert response.headers["content-encoding"] == "gzip"
        # A file bigger than one 64 KiB read goes out chunked, its length unknown in advance.
        assert int(response.headers.get("content-length", wire)) == wire
        assert "accept-encoding" in tokens(response.headers.get("vary"))


def test_compression_static_files_keep_their_cache_headers(client: TestClient) -> None:
    url = "/static/vendor/chart-4.6.1.umd.min.js"
    response = client.get(url, headers=GZIP)
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    # A revalidation still answers 304 (no body to compress) with the cache headers.
    again = client.get(url, headers=GZIP | {"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_compression_adds_accept_encoding_to_vary_of_htmx_fragments(
    client: TestClient, demo_data: DemoData
) -> None:
    htmx = {"HX-Request": "true", "HX-Target": "variant-cards"}
    url = f"/?run={demo_data.run_id}&sort=name"
    fragment = client.get(url, headers=GZIP | htmx)
    assert fragment.headers["content-encoding"] == "gzip"
    assert len(fragment.content) > GZIP_MINIMUM_SIZE  # big enough to be compressed
    soup = BeautifulSoup(fragment.text, "html.parser")
    assert soup.select("html, nav.mainnav") == [] and soup.select_one("#variant-cards")
    # Both reasons to vary, neither replacing the other.
    assert sorted(tokens(fragment.headers["vary"])) == ["accept-encoding", "hx-request"]
    page = client.get(url, headers=GZIP)
    assert page.headers["content-encoding"] == "gzip"
    assert sorted(tokens(page.headers["vary"])) == ["accept-encoding", "hx-request"]
    assert BeautifulSoup(page.text, "html.parser").select_one("nav.mainnav") is not None


def test_compression_leaves_images_alone(
    client: TestClient, demo_data: DemoData, prompt_id: int
) -> None:
    html = client.get(f"/prompts/{prompt_id}").text
    images = [
        url
        for url in referenced(html, "http://testserver/")
        if urlsplit(url).path.endswith((".png", ".webp"))
    ]
    assert {urlsplit(url).path.rsplit(".", 1)[1] for url in images} == {"png", "webp"}
    arena = client.get(f"/arena?run={demo_data.run_id}").text
    images += referenced(arena, "http://testserver/arena")[-2:]
    assert any("/arena/images/" in url for url in images)
    for url in images:
        with client.stream("GET", url, headers=GZIP) as response:
            raw = b"".join(response.iter_raw())
            assert response.status_code == 200, url
            assert response.headers["content-type"] in IMAGE_TYPES, url
            assert "content-encoding" not in response.headers, url
            assert len(raw) > GZIP_MINIMUM_SIZE  # big enough that only its type spares it
            assert raw[:4] in (b"\x89PNG", b"RIFF"), url


def test_compression_skips_small_answers(client: TestClient) -> None:
    response = client.get("/healthz", headers=GZIP)
    assert response.json() == {"ok": True}
    assert "content-encoding" not in response.headers


async def asgi_get(app: object, path: str, query: str = "") -> list[Message]:
    """Every message the app sends for a GET, as a server would receive them."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"accept-encoding", b"gzip")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    messages: list[Message] = []
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if requested:  # the client stays connected until the answer is complete
            await anyio.sleep_forever()
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, send)  # type: ignore[operator]
    return messages


def test_compression_streams_an_export_chunk_by_chunk(
    client: TestClient, demo_data: DemoData, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 36 generations in chunks of 5 rows: 8 chunks, each to leave compressed as it comes.
    monkeypatch.setattr("app.web.api.csv_export.CSV_CHUNK_ROWS", 5)
    path = f"/api/v1/runs/{demo_data.run_id}/export/generations.csv"
    whole = client.get(path, headers={"Accept-Encoding": "identity"}).text
    # In a thread of its own: after the browser tests, Playwright's sync API keeps an event
    # loop running in this one, and anyio.run refuses to start a second.
    with ThreadPoolExecutor(max_workers=1) as pool:
        messages = pool.submit(anyio.run, asgi_get, client.app, path).result()
    start, bodies = messages[0], [m for m in messages if m["type"] == "http.response.body"]
    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    assert start["status"] == 200 and headers["content-encoding"] == "gzip"
    assert "content-length" not in headers  # streamed, length unknown until the end
    assert headers["content-type"] == "text/csv; charset=utf-8"
    chunks = [m["body"] for m in bodies if m["body"]]
    assert len(chunks) >= 8
    assert all(m.get("more_body") for m in bodies[:-1]) and not bodies[-1].get("more_body")
    # Each chunk decodes on arrival to whole CSV rows: nothing waits for the end.
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    text = ""
    for chunk in chunks[:-1]:
        text += decoder.decompress(chunk).decode()
        assert text.endswith("\r\n") and whole.startswith(text)
    text += (decoder.decompress(chunks[-1]) + decoder.flush()).decode()
    assert text == whole
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 36


def test_compression_and_the_page_cache_serve_each_client_its_encoding(
    demo_data: DemoData,
) -> None:
    # The microcache (inside the compression) keeps one plain copy for every client: a hit
    # is compressed again for a client that accepts gzip and not for one that does not.
    settings = Settings(
        database_url=demo_data.database_url, media_dir=demo_data.media_dir, page_cache_s=60
    )
    with TestClient(create_app(settings)) as client:
        plain = client.get("/runs", headers={"Accept-Encoding": "identity"}).content
        assert len(plain) > GZIP_MINIMUM_SIZE
        for encoding in ("gzip", "identity", "gzip", "identity"):
            status, _, wire, body = wire_get(client, "/runs", {"Accept-Encoding": encoding})
            assert status == 200 and body == plain, encoding
            assert (wire < len(plain)) == (encoding == "gzip"), encoding
