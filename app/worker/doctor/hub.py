"""The Hugging Face side: which of a config's models come from the Hub, whether the token
may read them, what the local cache already holds and what is left to download. No weights
are downloaded; the Hub is asked only when it answers within HUB_TIMEOUT_S."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from app.bench.benchmark import Benchmark, resolve_local
from app.worker.doctor.check import Check, Status
from app.worker.doctor.figures import FLUX_DOWNLOAD_GB, FLUX_MODELS, GATED_MODELS, LORA_GB

HUB_TIMEOUT_S = 5.0


def hub_repos(bench: Benchmark) -> list[str]:
    """The config's models and LoRAs that come from the Hub, in config order: not tiny: and
    not an existing local path (diffusers takes an existing folder before a Hub id)."""
    config_dir = bench.config_path.parent
    refs = [v.model for v in bench.variants] + [v.lora.path for v in bench.variants if v.lora]
    repos = [
        ref
        for ref in refs
        if not ref.startswith("tiny:") and not Path(resolve_local(config_dir, ref)).exists()
    ]
    return list(dict.fromkeys(repos))


def download_gb(bench: Benchmark, repo: str) -> float | None:
    """The rough download size of one Hub repository as this config uses it."""
    if repo in FLUX_MODELS:
        return FLUX_DOWNLOAD_GB
    if any(v.lora is not None and v.lora.path == repo for v in bench.variants):
        return LORA_GB
    return None


def hub_offline_reason() -> str | None:
    """Why the Hub cannot be asked now, or None when it answered within HUB_TIMEOUT_S."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if hub_offline_set():
        return "HF_HUB_OFFLINE is set"
    try:
        # The Hub client waits without limit by default; this bounded request answers
        # "reachable?" before the per-repository checks.
        get_session().head(constants.ENDPOINT, timeout=HUB_TIMEOUT_S)
    except Exception as err:  # the HTTP library's transport errors have no public base class
        return f"could not reach the Hub ({type(err).__name__})"
    return None


def hub_offline_set() -> bool:
    from huggingface_hub import constants

    # The environment is read again: huggingface_hub reads its constants once, at import.
    setting = os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}
    return setting or constants.is_offline_mode()


def check_token(repos: Sequence[str], token: str | None) -> Check:
    if not repos:
        return Check("HF token", Status.SKIP, "not needed: no Hub models")
    if token:
        return Check("HF token", Status.OK, "found (HF_TOKEN or huggingface-cli login)")
    gated = [repo for repo in repos if repo in GATED_MODELS]
    if gated:
        return Check(
            "HF token",
            Status.FAIL,
            f"none, and {', '.join(gated)} is gated: accept its licence on its Hub page, "
            "then huggingface-cli login (or set HF_TOKEN)",
        )
    return Check("HF token", Status.SKIP, "none; public repositories need none")


def check_hub_access(repos: Sequence[str], token: str | None, offline: str | None) -> list[Check]:
    """Whether the token may read each repository (a gated one needs its licence accepted)."""
    if not repos:
        return [Check("Hub access", Status.SKIP, "not needed: no Hub models")]
    if offline is not None:
        return [Check("Hub access", Status.SKIP, f"offline: {offline}, skipped")]
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    api = HfApi()
    rows = []
    for repo in repos:
        name = f"Hub: {repo}"
        try:
            api.auth_check(repo, token=token or False)
        except GatedRepoError:
            detail = f"gated: accept the licence at https://huggingface.co/{repo}"
            if not token:
                detail += ", then huggingface-cli login (or set HF_TOKEN)"
            rows.append(Check(name, Status.FAIL, detail))
        except RepositoryNotFoundError:
            rows.append(
                Check(name, Status.FAIL, "not found, or private and the token cannot read it")
            )
        except HfHubHTTPError as err:
            rows.append(Check(name, Status.FAIL, f"the Hub answered: {str(err).splitlines()[0]}"))
        except Exception as err:  # a transport error: the connection dropped after the probe
            rows.append(Check(name, Status.SKIP, f"offline: {type(err).__name__}, skipped"))
        else:
            rows.append(Check(name, Status.OK, "readable with this token" if token else "public"))
    return rows


def cached_gb(repos: Sequence[str], cache_dir: Path) -> dict[str, float]:
    """GB of each Hub repository already in the local HF cache (absent: none). No network."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return {}
    wanted = set(repos)
    return {
        repo.repo_id: repo.size_on_disk / 1e9
        for repo in info.repos
        if repo.repo_type == "model" and repo.repo_id in wanted
    }


def to_download(
    bench: Benchmark, repos: Sequence[str], cached: dict[str, float]
) -> dict[str, float | None]:
    """The part of each Hub repository not yet in the cache (None: size unknown). A cache
    within 5% of the public size counts as complete: the figures are rounded."""
    missing: dict[str, float | None] = {}
    for repo in repos:
        size = download_gb(bench, repo)
        have = cached.get(repo, 0.0)
        if size is None:
            if repo not in cached:
                missing[repo] = None
        elif have < 0.95 * size:
            missing[repo] = size - have
    return missing


def check_cache(
    repos: Sequence[str], cached: dict[str, float], missing: dict[str, float | None]
) -> Check:
    if not repos:
        return Check("HF cache", Status.SKIP, "not needed: no Hub models")
    parts = []
    if done := [r for r in repos if r not in missing]:
        parts.append("cached: " + ", ".join(f"{r} ({cached[r]:.1f} GB)" for r in done))
    if missing:
        parts.append("to download: " + ", ".join(_sized(r, gb) for r, gb in missing.items()))
    detail = "; ".join(parts)
    if missing and hub_offline_set():
        # The run loads with the same setting: an uncached model cannot load at all.
        return Check("HF cache", Status.FAIL, f"HF_HUB_OFFLINE is set and not all cached; {detail}")
    return Check("HF cache", Status.OK, detail)


def _sized(repo: str, gb: float | None) -> str:
    return f"{repo} (~{gb:.1f} GB)" if gb is not None else f"{repo} (size unknown)"
