"""The web tests' fixtures (demo_data, demo_client, writable_demo, writable_client) live in
tests/conftest.py, shared with the arena, leaderboard and browser tests."""

from tests.conftest import DemoData

__all__ = ["DemoData"]
