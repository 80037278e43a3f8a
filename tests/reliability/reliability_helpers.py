"""Helpers shared by the reliability tests (imported by name: conftest puts this folder on sys.path)."""

from __future__ import annotations

import threading
import time

import requests

API_KEY = (
    "reliability-test-key-0123456789"  # a test key: fine on the test's command lines, never the server's
)
OTHER_KEY = "second-key-abcdefghijklmnop"
FAST = {"WHISPER_FORCE_TOKENS": "4"}  # a few decoder steps per window: fast, deterministic cost


def auth(key: str = API_KEY) -> dict:
    return {"Authorization": f"Bearer {key}"}


def assert_error(resp: requests.Response, status: int | tuple[int, ...], code: str | None = None) -> dict:
    """The response is an error in OpenAI's shape with the given status (and code)."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert resp.status_code in statuses, (resp.status_code, resp.text[:500])
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["message"] and "Traceback" not in resp.text
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


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
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout} s")


def ready(service) -> bool:
    try:
        return requests.get(service.url + "/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False
