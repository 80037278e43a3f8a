"""A live session through a real nginx with the project's proxy config (deploy/nginx.py): the WebSocket
upgrade passes, the SDK streams and gets its transcript, and a browser's subprotocol key goes through."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from bench.realtime_client import stream
from deploy import nginx
from deploy.config import Slot
from tests.helpers import free_port
from tests.realtime.conftest import KEY, raw, receive
from tools import speech


@pytest.fixture
def proxy(live, tmp_path):
    """nginx in the foreground, its conf.d holding exactly what `fab deploy` writes, in front of `live`."""
    port = int(live.url.rsplit(":", 1)[1])
    public = free_port()
    conf_dir = tmp_path / "conf.d"
    conf_dir.mkdir()
    (conf_dir / nginx.CONF_NAME).write_text(nginx.render(Slot("green", port, 0), public_port=public))
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; events {{}}\n"
        f"http {{ include {conf_dir}/*.conf; }}\n"
    )
    process = subprocess.Popen(["nginx", "-c", str(main), "-g", "daemon off;"], stderr=subprocess.PIPE)
    end = time.monotonic() + 30
    while not _listening(public):
        assert process.poll() is None and time.monotonic() < end, process.stderr.read().decode()
        time.sleep(0.1)
    yield type(live)(f"http://127.0.0.1:{public}", live.metrics_url, live.process, live.log_path)
    process.terminate()
    process.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_session_through_the_proxy_gets_its_transcript(proxy, tmp_path):
    clip = speech.clip(tmp_path, 5, "en-us")
    events = stream(proxy.url, speech.read_wav(clip.path), api_key=KEY)
    completed = events.of("conversation.item.input_audio_transcription.completed")
    assert len(completed) == 1 and speech.wer(clip.text, completed[0]["transcript"]) <= 0.3


def test_the_browser_subprotocol_passes_the_proxy(proxy):
    with raw(proxy, key=None, subprotocols=["realtime", f"openai-insecure-api-key.{KEY}"]) as ws:
        assert ws.subprotocol == "realtime"
        assert receive(ws)["type"] == "session.created"
        ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        assert receive(ws)["type"] == "input_audio_buffer.cleared"
