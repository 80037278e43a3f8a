"""Small helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import threading
import time

from bench.support import free_port  # noqa: F401 (one copy for the tests and the bench)


def in_background(fn, *args, **kwargs) -> dict:
    """Run fn in a thread; the returned dict gets 'result' or 'error', and 'thread'."""
    box: dict = {}

    def run():
        try:
            box["result"] = fn(*args, **kwargs)
        except Exception as error:  # the test that reads the box reports it
            box["error"] = error

    box["thread"] = threading.Thread(target=run, daemon=True)
    box["thread"].start()
    return box


def wait_for(condition, timeout: float = 60.0, interval: float = 0.05, what: str = "condition"):
    """Poll until condition() is truthy and return its value; fail after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout} s")
