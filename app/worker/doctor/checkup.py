"""`run_checks`: this machine's facts gathered once, then every check on them, in the order
a user fixes them."""

from __future__ import annotations

import os
from pathlib import Path

from app.bench.benchmark import Benchmark
from app.worker.doctor.check import Check
from app.worker.doctor.disk import check_disk_media, check_disk_weights, free_disk
from app.worker.doctor.hub import (
    cached_gb,
    check_cache,
    check_hub_access,
    check_token,
    hub_offline_reason,
    hub_repos,
    to_download,
)
from app.worker.doctor.machine import (
    available_ram_gb,
    check_cuda,
    check_fp8,
    check_gpu,
    check_torch,
    probe_torch,
)
from app.worker.doctor.memory import check_memory
from app.worker.doctor.software import (
    check_bitsandbytes,
    check_compiler,
    check_gguf,
    check_onediff,
    check_pruna,
    check_torchao,
)


def run_checks(bench: Benchmark, n_prompts: int, media_dir: Path) -> list[Check]:
    """Every check, in the order a user fixes them: torch, GPU, memory, compiler, Hub, disk,
    optional packages."""
    facts = probe_torch(need_cuda=bench.device == "cuda")
    rows = [check_torch(facts)]
    if facts.version is None:
        return rows  # no worker extra: nothing else can run, and its packages are missing
    from huggingface_hub import constants, get_token

    ram = available_ram_gb()
    rows += [check_cuda(bench, facts), check_gpu(bench, facts), check_fp8(bench, facts)]
    rows += check_memory(bench, facts, ram)
    rows.append(check_compiler(bench))

    repos = hub_repos(bench)
    token = get_token()
    offline = hub_offline_reason() if repos else None
    cache_dir = Path(constants.HF_HUB_CACHE)
    cached = cached_gb(repos, cache_dir)
    missing = to_download(bench, repos, cached)
    rows.append(check_token(repos, token))
    rows += check_hub_access(repos, token, offline)
    rows.append(check_cache(repos, cached, missing))

    cache_at, cache_free = free_disk(cache_dir)
    media_at, media_free = free_disk(media_dir)
    weights = sum(gb for gb in missing.values() if gb is not None)
    same_disk = os.stat(cache_at).st_dev == os.stat(media_at).st_dev
    rows.append(check_disk_weights(missing, cache_at, cache_free, bool(repos)))
    rows.append(
        check_disk_media(bench, n_prompts, media_at, media_free, weights if same_disk else 0.0)
    )

    rows += [
        check_onediff(bench),
        check_torchao(bench),
        check_bitsandbytes(bench),
        check_gguf(bench),
        check_pruna(bench),
    ]
    return rows
