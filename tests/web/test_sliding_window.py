from __future__ import annotations

from app.web.sliding_window import SlidingWindowLimit


def test_sliding_window_limit_per_key_and_window() -> None:
    now = [0.0]
    limit = SlidingWindowLimit(2, 60, clock=lambda: now[0], max_keys=2)
    assert [limit.allow("a") for _ in range(3)] == [True, True, False]
    assert limit.allow("b")  # another network has its own budget
    now[0] = 61.0
    assert limit.allow("a")  # the window moved on
    limit.allow("c")  # a third key: the least recently seen one ("b") is forgotten
    assert set(limit._events) == {"a", "c"}
