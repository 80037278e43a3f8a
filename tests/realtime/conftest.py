"""A real gunicorn server with the embedded tiny.en and VAD on, driven over /v1/realtime."""

from __future__ import annotations

import json

import pytest
from websockets.sync.client import connect

from tests.conftest import launch

KEY = "live-test-key-0123456789"


@pytest.fixture(scope="module")
def live(tiny_en, tmp_path_factory):
    server = launch(
        tiny_en, tmp_path_factory.mktemp("live"), VAD="true", API_KEYS=KEY, REALTIME_MAX_SESSIONS=4
    )
    yield server
    server.stop()
    assert not server.tracebacks(), server.tracebacks()


def ws_url(service, query: str = "?intent=transcription") -> str:
    return service.url.replace("http://", "ws://") + "/v1/realtime" + query


def raw(service, key: str | None = KEY, **options):
    """A plain WebSocket client (the `websockets` package), as a browser or another SDK would connect."""
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return connect(ws_url(service), additional_headers=headers, proxy=None, open_timeout=30, **options)


def receive(ws, timeout: float = 30) -> dict:
    return json.loads(ws.recv(timeout))


def until(ws, kind: str, timeout: float = 60) -> dict:
    """The next event of `kind`, skipping others."""
    while True:
        event = receive(ws, timeout)
        if event["type"] == kind:
            return event
