"""The measuring primitives: compile counters and the resettable peak memory."""

from __future__ import annotations

import torch

from app.worker.timing import CompileCounters, peak_memory_gb, reset_peak_memory


def test_compile_counters_count_a_recompile_for_a_new_shape() -> None:
    torch._dynamo.reset()
    double = torch.compile(lambda x: x * 2, backend="eager", dynamic=False)
    double(torch.ones(3))
    steady = CompileCounters.now()

    double(torch.ones(3))
    assert CompileCounters.now().since(steady).graphs == 0

    double(torch.ones(5))  # a new shape: a static graph compiles again
    assert CompileCounters.now().since(steady).graphs == 1


def test_compile_counters_cache_state() -> None:
    assert CompileCounters().cache_state is None
    assert CompileCounters(cache_misses=3).cache_state == "cold"
    assert CompileCounters(cache_hits=3).cache_state == "warm"
    assert CompileCounters(cache_hits=1, cache_misses=1).cache_state == "partial"


def test_peak_memory_reset_forgets_an_earlier_peak() -> None:
    reset_peak_memory("cpu")
    big = torch.ones(100_000_000 // 4)  # 100 MB
    big += 1
    with_big, kind = peak_memory_gb("cpu")
    del big
    reset_peak_memory("cpu")
    after, _ = peak_memory_gb("cpu")

    assert kind == "process_peak_rss"
    assert with_big - after > 0.08
