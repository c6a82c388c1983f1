"""app/memo.py: fresh for the TTL, stale while one background reload runs, one loader per
missed key however many callers ask at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from app.memo import TTLMemo


class Loads:
    """A loader that counts its calls; `gate` (if set) holds each call until released."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls = 0
        self.gate = gate
        self.done = threading.Event()
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self.calls += 1
            n = self.calls
        if self.gate is not None:
            self.gate.wait(5)
        self.done.set()
        return f"value {n}"


def test_memo_fresh_then_stale_while_one_background_reload_runs() -> None:
    now = [0.0]
    memo: TTLMemo[int, str] = TTLMemo(5.0, timer=lambda: now[0])
    load = Loads()
    assert memo.peek(1) is None
    assert memo.get(1, load) == "value 1"
    now[0] = 4.9
    assert memo.get(1, load) == "value 1" and memo.peek(1) == "value 1"
    # Expired: the stale value at once, and one reload behind it.
    now[0] = 5.1
    gate = threading.Event()
    slow = Loads(gate)
    assert memo.get(1, slow) == "value 1"
    assert memo.get(1, slow) == "value 1"  # still stale, no second reload started
    assert memo.peek(1) is None
    gate.set()
    assert slow.done.wait(5)
    deadline = time.monotonic() + 5
    while memo.peek(1) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert memo.peek(1) == "value 1" and slow.calls == 1  # the reload's own first call
    assert load.calls == 1


def test_memo_too_stale_is_a_miss() -> None:
    now = [0.0]
    memo: TTLMemo[int, str] = TTLMemo(1.0, timer=lambda: now[0], max_stale_s=2.0)
    load = Loads()
    memo.get(1, load)
    now[0] = 3.5
    assert memo.lookup(1) is None
    assert memo.get(1, load) == "value 2"  # loaded now, not served stale


def test_memo_concurrent_misses_load_once() -> None:
    memo: TTLMemo[int, str] = TTLMemo(5.0)
    gate = threading.Event()
    load = Loads(gate)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(memo.get, 7, load) for _ in range(8)]
        time.sleep(0.2)  # all eight are waiting on the one load
        gate.set()
        values = [f.result(timeout=10) for f in futures]
    assert values == ["value 1"] * 8
    assert load.calls == 1


def test_memo_none_is_not_stored_and_a_failed_reload_keeps_the_stale_value() -> None:
    now = [0.0]
    memo: TTLMemo[int, str | None] = TTLMemo(1.0, timer=lambda: now[0])
    assert memo.get(1, lambda: None) is None
    assert memo.lookup(1) is None
    memo.get(2, lambda: "kept")
    now[0] = 2.0
    failed = threading.Event()

    def broken() -> str:
        failed.set()
        raise RuntimeError("database away")

    assert memo.get(2, broken) == "kept"
    assert failed.wait(5)
    time.sleep(0.05)
    assert memo.lookup(2) == ("kept", False)


def test_memo_keeps_at_most_maxsize_keys() -> None:
    memo: TTLMemo[int, int] = TTLMemo(5.0, maxsize=2)
    for key in range(3):
        memo.get(key, lambda key=key: key)  # type: ignore[misc]
    assert memo.lookup(0) is None and memo.peek(2) == 2
