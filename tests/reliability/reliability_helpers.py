"""Helpers shared by the reliability tests (imported by name: conftest puts this folder on sys.path)."""

from __future__ import annotations

import requests

from tests.helpers import in_background, wait_for  # noqa: F401 - re-exported for this folder

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


def ready(service) -> bool:
    try:
        return requests.get(service.url + "/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False
