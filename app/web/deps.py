"""Request dependencies: one database session per request, the settings, the templates."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from app.arena.network import network_of
from app.config import Settings
from app.memo import K, TTLMemo, V


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]

# Ids are 64-bit in both databases: a larger number is a 422 here, not an overflow (a 500)
# in the driver.
INT64_MAX = 2**63 - 1
RunQuery = Annotated[
    int | None, Query(ge=1, le=INT64_MAX, description="Run id; default the latest.")
]
RunPath = Annotated[int, Path(ge=1, le=INT64_MAX, description="Run id.")]
IdPath = Annotated[int, Path(ge=1, le=INT64_MAX)]


def client_network(request: Request) -> str:
    """The client's network (app/arena/network.py). Its address is the peer's, or, from a
    proxy named in FLUX_PLAYGROUND_TRUSTED_PROXIES, what that proxy forwarded."""
    return network_of(request.client.host if request.client else None)


async def memo_async(
    request: Request, memo: TTLMemo[K, V], key: K, load: Callable[[Session], V]
) -> V:
    """memo[key] without blocking the event loop: a cached value (fresh, or stale while a
    background thread reloads it) at once; a miss loaded in a worker thread, once however
    many requests miss together (app/memo.py)."""

    def load_now() -> V:
        with request.app.state.sessions() as session:
            return load(session)

    found = memo.serve(key, load_now)
    if found is not None:
        return found
    return await run_in_threadpool(memo.get, key, load_now)
