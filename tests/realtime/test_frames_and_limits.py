"""What a live session does with bad frames, keys, limits and clients that vanish: an `error` event naming the
problem while the session goes on; a close code and a reason for a limit; nothing crashes, nothing leaks."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.conftest import launch
from tests.realtime.conftest import KEY, raw, receive, until, ws_url
from tools import speech


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        (json.dumps({"type": "response.create"}), "unknown_event"),
        (json.dumps({"type": "input_audio_buffer.append", "audio": "%%%"}), "invalid_audio"),
        (
            json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"abc").decode()}),
            "invalid_audio",
        ),
        (json.dumps({"type": "session.update", "session": {"input_audio_format": "mp3"}}), "invalid_value"),
        (json.dumps({"type": "input_audio_buffer.commit"}), "input_audio_buffer_commit_empty"),
    ],
)
def test_a_bad_frame_gets_an_error_and_the_session_goes_on(live, frame, code):
    with raw(live) as ws:
        assert receive(ws)["type"] == "session.created"
        ws.send(frame)
        error = until(ws, "error")
        assert error["error"]["code"] == code and error["error"]["message"]
        ws.send(json.dumps({"type": "input_audio_buffer.clear", "event_id": "after"}))
        assert until(ws, "input_audio_buffer.cleared")["type"] == "input_audio_buffer.cleared"


def test_the_browser_subprotocol_carries_the_key(live):
    protocols = ["realtime", f"openai-insecure-api-key.{KEY}", "openai-beta.realtime-v1"]
    with raw(live, key=None, subprotocols=protocols) as ws:
        assert ws.subprotocol == "realtime"
        assert receive(ws)["type"] == "session.created"


@pytest.mark.parametrize("key", [None, "wrong-key-0123456789abcdef"])
def test_no_key_or_a_wrong_key_gets_401_before_the_upgrade(live, key):
    with pytest.raises(InvalidStatus) as caught:
        raw(live, key=key, subprotocols=["realtime", f"openai-insecure-api-key.{key}"] if key else None)
    assert caught.value.response.status_code == 401
    assert json.loads(caught.value.response.body)["error"]["type"] == "invalid_request_error"


def test_a_conversation_session_is_refused_with_400(live):
    headers = {"Authorization": f"Bearer {KEY}"}
    with pytest.raises(InvalidStatus) as caught:
        connect(ws_url(live, "?model=gpt-realtime"), additional_headers=headers, proxy=None)
    assert caught.value.response.status_code == 400
    assert json.loads(caught.value.response.body)["error"]["param"] == "intent"


def test_a_client_that_vanishes_mid_turn_leaves_nothing_behind(live, tmp_path):
    audio = speech.read_wav(speech.clip(tmp_path, 2, "en-us").path)
    pcm = (np.repeat(audio, 3)[::2] * 32767).astype("<i2").tobytes()  # 24 kHz, roughly
    for _ in range(3):
        ws = raw(live)
        receive(ws)
        for offset in range(0, len(pcm) // 2, 4800):
            ws.send(
                json.dumps(
                    {
                        "type": "input_audio_buffer.append",
                        "audio": base64.b64encode(pcm[offset : offset + 4800]).decode(),
                    }
                )
            )
        until(ws, "input_audio_buffer.speech_started")
        ws.socket.close()  # no close frame: the network went away
    wait_for(lambda: live.metric("whisper_realtime_sessions") == 0)
    wait_for(lambda: live.metric("whisper_queue_depth") == 0)
    assert not live.tracebacks()


def wait_for(condition, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.2)


# -- limits: servers of their own ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def strict(tiny_en, tmp_path_factory):
    server = launch(
        tiny_en,
        tmp_path_factory.mktemp("strict"),
        VAD="true",
        API_KEYS=KEY,
        THREADS=4,
        QUEUE_MAX_REQUESTS=2,  # below THREADS
        REALTIME_MAX_SESSIONS=1,
        REALTIME_IDLE_TIMEOUT=2,
        REALTIME_MAX_FRAME_KB=64,
    )
    yield server
    server.stop()
    assert not server.tracebacks(), server.tracebacks()


def test_a_session_beyond_the_bound_is_closed_with_1013_and_the_first_goes_on(strict):
    with raw(strict) as first:
        assert receive(first)["type"] == "session.created"
        with raw(strict) as second:
            error = receive(second)
            assert error["type"] == "error" and error["error"]["code"] == "sessions_full"
            with pytest.raises(ConnectionClosed) as caught:
                second.recv(30)
            assert caught.value.rcvd.code == 1013 and "live sessions" in caught.value.rcvd.reason
        first.send(json.dumps({"type": "input_audio_buffer.clear"}))
        assert until(first, "input_audio_buffer.cleared")
    assert strict.metric("whisper_rejected_requests_total", reason="realtime_sessions_full") >= 1


def test_an_idle_session_is_closed_with_a_reason(strict):
    with raw(strict) as ws:
        assert receive(ws)["type"] == "session.created"
        error = until(ws, "error")
        assert "REALTIME_IDLE_TIMEOUT" in error["error"]["message"]
        with pytest.raises(ConnectionClosed) as caught:
            ws.recv(30)
        assert caught.value.rcvd.code == 1000 and "REALTIME_IDLE_TIMEOUT" in caught.value.rcvd.reason


def test_a_frame_over_the_limit_closes_the_session_with_1009(strict):
    with raw(strict, max_size=None) as ws:
        receive(ws)
        ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "A" * (65 * 1024)}))
        with pytest.raises(ConnectionClosed) as caught:
            while True:
                ws.recv(30)
        assert caught.value.rcvd.code == 1009


def test_a_session_is_closed_at_its_maximum_length(tiny_en, tmp_path):
    server = launch(tiny_en, tmp_path, VAD="true", REALTIME_MAX_SESSION_SECONDS=2)
    try:
        with raw(server, key=None) as ws:
            receive(ws)
            with pytest.raises(ConnectionClosed) as caught:
                while True:  # keep talking, so it is the length and not idleness that ends it
                    ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "AAAA"}))
                    try:
                        ws.recv(0.2)
                    except TimeoutError:
                        pass
            assert (
                caught.value.rcvd.code == 1000 and "REALTIME_MAX_SESSION_SECONDS" in caught.value.rcvd.reason
            )
    finally:
        server.stop()
    assert not server.tracebacks()
