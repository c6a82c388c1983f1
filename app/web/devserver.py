"""The app served by a real uvicorn subprocess on a free loopback port, as a user runs it:
for the browser tests (tests/e2e) and the load benchmarks (benchmarks/)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_subprocess(
    settings: dict[str, str],
    *,
    timeout_s: float = 30.0,
    factory: str = "app.web.main:create_app",
    workers: int = 1,
) -> Iterator[str]:
    """Start the app (from `factory`, importable from the repository root) with these
    FLUX_PLAYGROUND_* variables added to the environment, wait until `/healthz` answers,
    yield its base URL, and stop it afterwards. `workers` > 1 serves from that many
    processes, as `flux-playground serve --workers` does (PostgreSQL only)."""
    port = free_port()
    several = ["--workers", str(workers)] if workers > 1 else []
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            factory,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            *several,
        ],
        env=os.environ | {"FLUX_PLAYGROUND_SERVER_PROCESSES": str(workers)} | settings,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the app server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
