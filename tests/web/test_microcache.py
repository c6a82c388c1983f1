from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient

from app.web.microcache import MicroCache


def counting_app(ttl_s: float) -> tuple[TestClient, list[str]]:
    calls: list[str] = []
    app = FastAPI()

    @app.get("/dashboard")
    def dashboard() -> dict[str, int]:
        calls.append("dashboard")
        return {"n": len(calls)}

    @app.get("/runs/{run_id}")
    def run(run_id: int) -> dict[str, int]:
        calls.append("run")
        return {"n": len(calls)}

    @app.get("/prompts")
    def with_cookie(response: Response) -> dict[str, int]:
        calls.append("cookie")
        response.set_cookie("rater", "x")
        return {"n": len(calls)}

    app.add_middleware(MicroCache, ttl_s=ttl_s)
    return TestClient(app), calls


def test_microcache_serves_a_page_again_within_its_ttl() -> None:
    client, calls = counting_app(ttl_s=60)
    first = client.get("/dashboard?run=1")
    second = client.get("/dashboard?run=1")
    assert first.json() == second.json() == {"n": 1}
    assert calls == ["dashboard"]
    # Another query string or an htmx fragment request is another entry.
    client.get("/dashboard?run=2")
    client.get("/dashboard?run=1", headers={"HX-Request": "true"})
    assert calls == ["dashboard"] * 3


def test_microcache_expires() -> None:
    client, calls = counting_app(ttl_s=0.001)
    client.get("/dashboard")
    import time

    time.sleep(0.01)
    client.get("/dashboard")
    assert calls == ["dashboard", "dashboard"]


def test_microcache_never_caches_live_progress_or_cookies() -> None:
    client, calls = counting_app(ttl_s=60)
    client.get("/runs/1")
    client.get("/runs/1")
    client.get("/prompts")
    client.get("/prompts")
    assert calls == ["run", "run", "cookie", "cookie"]


def test_microcache_off_with_zero_ttl() -> None:
    client, calls = counting_app(ttl_s=0)
    client.get("/dashboard")
    client.get("/dashboard")
    assert calls == ["dashboard", "dashboard"]


def test_microcache_two_hx_request_headers_answered_as_the_page_reads_them() -> None:
    # The page reads the first HX-Request; a key built from the last one would store a bare
    # fragment under the full page's key and serve it to every visitor.
    calls: list[str] = []
    app = FastAPI()

    @app.get("/dashboard")
    def dashboard(request: Request) -> Response:
        calls.append("x")
        fragment = request.headers.get("HX-Request") == "true"
        return Response("fragment" if fragment else "<html>page</html>")

    app.add_middleware(MicroCache, ttl_s=60)
    client = TestClient(app)
    poison = client.get(
        "/dashboard",
        headers=[("HX-Request", "true"), ("HX-Request", "")],  # type: ignore[arg-type]
    )
    assert poison.text == "fragment"
    assert client.get("/dashboard").text == "<html>page</html>"


def test_microcache_memory_bounded_by_bytes() -> None:

    app = FastAPI()

    @app.get("/dashboard")
    def dashboard() -> Response:
        return Response(b"x" * 1000)

    cache = MicroCache(app, ttl_s=60, max_bytes=10_000)
    client = TestClient(cache)
    for n in range(50):  # cache-busting query strings
        client.get(f"/dashboard?bust={n}")
    assert cache.bytes <= 10_000 and len(cache.entries) == 10


def test_microcache_drops_expired_entries_as_new_ones_arrive() -> None:
    import time

    app = FastAPI()

    @app.get("/dashboard")
    def dashboard() -> Response:
        return Response(b"x" * 1000)

    cache = MicroCache(app, ttl_s=0.05)
    client = TestClient(cache)
    for n in range(20):
        client.get(f"/dashboard?bust={n}")
    time.sleep(0.1)
    client.get("/dashboard?bust=new")
    assert list(cache.entries) == [(b"/dashboard", b"bust=new", b"", b"", b"")]
    assert cache.bytes == 1000
