"""One Settings object, read from the environment (prefix FLUX_PLAYGROUND_) or a `.env` file."""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# `serve` refuses this value on any address but loopback.
DEFAULT_SECRET_KEY = "dev-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLUX_PLAYGROUND_", env_file=".env", extra="ignore"
    )

    database_url: str = Field(
        default="sqlite:///data/flux-playground.db",
        description="SQLAlchemy URL. SQLite (default, relative to the working directory) or "
        "postgresql+psycopg://user:pass@host/db.",
    )
    media_dir: Path = Field(
        default=Path("media"), description="Where the worker writes images and thumbnails."
    )
    models_dir: Path = Field(
        default=Path("models"), description="Where the tiny offline FLUX models are built."
    )
    admin_token: str = Field(
        default="", description="Bearer token for admin pages; empty disables them."
    )
    secret_key: str = Field(
        default=DEFAULT_SECRET_KEY,
        description="Signs cookies and arena tokens. Set a long random value in production.",
    )
    cpu_threads: int | None = Field(
        default=None,
        ge=1,
        description="torch threads. Unset: on a CPU benchmark, one per core this process may "
        "use (more threads than cores made a tiny pipeline 80x slower on a 2-core machine); "
        "on a CUDA benchmark, torch's own default. Set: that many, on either device.",
    )
    host: str = Field(default="127.0.0.1", description="Address `serve` listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `serve` listens on.")
    page_cache_s: float = Field(
        default=1.0,
        ge=0,
        description="Seconds a rendered read-only page may be served again (0 disables). "
        "Bounds how stale a page can be; the live run page is never cached.",
    )
    arena_token_ttl_s: int = Field(
        default=900,
        ge=10,
        description="Seconds an arena matchup token stays valid after it is issued.",
    )
    arena_votes_per_minute: int = Field(
        default=30,
        ge=1,
        description="Per-rater vote rate limit; more in a minute get HTTP 429.",
    )
    lock_dir: Path = Field(
        default=Path(tempfile.gettempdir()) / "flux-playground-locks",
        description="Where workers on this machine hold their device locks (one worker "
        "measures on a device at a time). Must be the same folder for every worker of a host.",
    )
    arena_network_votes_per_minute: int = Field(
        default=120,
        ge=1,
        description="Votes per minute from one network (an IPv4 address, an IPv6 /64), "
        "whatever cookies it uses; more get HTTP 429. A panel of 20 behind one NAT voting "
        "as fast as people do stays under it.",
    )
    arena_network_new_raters_per_hour: int = Field(
        default=100,
        ge=1,
        description="New anonymous raters per hour from one network; more get HTTP 429.",
    )
    server_processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Server processes sharing the in-memory limits (set by `serve --workers`).",
    )
    leaderboard_refresh_s: float = Field(
        default=2.0,
        ge=0.0,
        description="After votes, the leaderboard is recomputed in the background at most "
        "this often per run (a new vote shows within this plus one computation).",
    )
    arena_preliminary_votes: int = Field(
        default=300,
        ge=0,
        description="A rating from fewer votes than this is marked preliminary on the "
        "leaderboard (TTS-Arena marks < 300; LMArena lists a model after ~1,000).",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses of reverse proxies whose X-Forwarded-For is "
        "believed (per-network limits, admin lockout). Empty: none, the peer's address is "
        "the client's. '*' trusts every peer: only when nothing else can reach the app.",
    )
    worker_lease_s: float = Field(
        default=1800.0,
        gt=0,
        description="A running job whose worker is on another host and silent for this long "
        "is taken again by the next worker.",
    )
    gpu_memory_gb: str = Field(
        default="16,24,48,80,141",
        description="Comma-separated GPU memory sizes, GB, that the dashboard and the hardware "
        'page check a measured CUDA peak against ("fits on"), and draw on the memory chart.',
    )

    @field_validator("gpu_memory_gb")
    @classmethod
    def _gpu_sizes(cls, value: str) -> str:
        parse_gpu_sizes(value)
        return value

    @property
    def gpu_memory_sizes_gb(self) -> tuple[float, ...]:
        return parse_gpu_sizes(self.gpu_memory_gb)


def parse_gpu_sizes(text: str) -> tuple[float, ...]:
    """The sizes in "16,24,80", sorted: (16.0, 24.0, 80.0). A part that is not a positive
    number is an error that names it; an empty text is no sizes at all."""
    sizes = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            size = float(part)
        except ValueError:
            raise ValueError(f"not a number of GB: {part!r}") from None
        if not 0 < size < 1e6:
            raise ValueError(f"not a GPU memory size in GB: {part!r}")
        sizes.append(size)
    return tuple(sorted(set(sizes)))


@lru_cache
def get_settings() -> Settings:
    return Settings()


def torch_threads(device: str, configured: int | None) -> int | None:
    """Threads torch should use on `device`: the setting if given; on the CPU one per core
    this process may use; on CUDA None, torch's own default (no cap on a GPU machine)."""
    if configured is not None:
        return configured
    return len(os.sched_getaffinity(0)) if device == "cpu" else None
