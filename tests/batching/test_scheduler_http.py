"""The scheduler through the real server: queue bounds, cancellation, cross-request batching, windows, SSE."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from service.engines.openai_whisper import OpenAIWhisperEngine
from tests.helpers import in_background, wait_for

ENDPOINT = "/v1/audio/transcriptions"
GREEDY = {"compression_ratio_threshold": "100", "logprob_threshold": "-100"}  # no fallback: deterministic


def transcribe(service, path, data=None, timeout=180):
    with open(path, "rb") as f:
        return requests.post(service.url + ENDPOINT, files={"file": f}, data=data or {}, timeout=timeout)


def send_and_hang_up(service, path, data: dict, until) -> None:
    """POST a multipart upload over a raw socket, then close the connection without reading the answer
    once `until()` holds (a condition, not a delay: the same moment of the work on any machine)."""
    prepared = requests.Request(
        "POST", service.url + ENDPOINT, files={"file": open(path, "rb")}, data=data
    ).prepare()
    url = urlparse(service.url)
    head = f"POST {ENDPOINT} HTTP/1.1\r\nHost: {url.netloc}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in prepared.headers.items()) + "\r\n"
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(head.encode() + prepared.body)
        wait_for(until, what="the moment to hang up")


def test_disconnect_cancels_queued_windows(start_service, audio_dir, tmp_path):
    from service.intake.upload import decode_file
    from service.intake.windows import contiguous_windows

    five_minutes = tmp_path / "five-minutes.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-stream_loop", "3", "-i",
                    str(audio_dir / "long.wav"), str(five_minutes)], check=True)  # fmt: skip
    windows = len(contiguous_windows(decode_file(str(five_minutes), 3600, 60)))
    service = start_service(BATCH_SIZE="1")
    # hang up once the first window has been decoded: the rest are queued then, however fast the machine
    first_call = lambda: service.metric("whisper_batch_size_count") >= 1  # noqa: E731
    send_and_hang_up(service, five_minutes, {"language": "en", **GREEDY}, until=first_call)
    wait_for(lambda: service.metric("whisper_cancelled_requests_total", reason="disconnect") == 1)

    # greedy, one window per batch: every window is either decoded once (those under way when the client
    # left finish) or dropped undecoded; none is decoded after being dropped
    def accounted() -> float:
        return service.metric("whisper_batch_size_sum") + service.metric("whisper_cancelled_windows_total")

    wait_for(lambda: accounted() == windows)  # the batch under way when the client left may still finish
    time.sleep(1.5)
    assert accounted() == windows  # and nothing more is decoded afterwards
    assert service.metric("whisper_cancelled_windows_total") >= 1
    assert service.metric("whisper_queue_depth") == 0
    assert requests.get(service.url + "/readyz").status_code == 200


def test_windows_of_concurrent_requests_share_a_batch(start_service, audio_dir):
    service = start_service(BATCH_SIZE="8")
    # keep the model busy with an incompatible request (other language) while two compatible ones queue
    blocker = in_background(transcribe, service, audio_dir / "long.wav", {"language": "de"})
    wait_for(lambda: service.metric("whisper_queue_audio_seconds") > 0)
    pair = [
        in_background(transcribe, service, audio_dir / "speech.wav", {"language": "en", **GREEDY})
        for _ in range(2)
    ]
    for box in [blocker, *pair]:
        box["thread"].join(180)
        assert box["result"].status_code == 200
    shared = service.metric("whisper_batch_requests_count") - service.metric(
        "whisper_batch_requests_bucket", le="1.0"
    )
    assert shared >= 1  # at least one model call decoded windows of two requests


def test_timestamps_continue_across_windows(service, audio_dir):
    body = transcribe(
        service, audio_dir / "long.wav", {"response_format": "verbose_json", "language": "en", **GREEDY}
    ).json()
    segments = body["segments"]
    assert body["duration"] == pytest.approx(75, abs=0.1)
    seeks = sorted({s["seek"] for s in segments})
    assert len(seeks) >= 3  # segments from every window
    assert [s["id"] for s in segments] == list(range(len(segments)))
    previous_end = 0.0
    for segment in segments:
        assert previous_end - 1e-6 <= segment["start"] <= segment["end"] <= body["duration"] + 1e-6
        assert segment["start"] >= segment["seek"] * 0.01 - 1e-6  # inside its own window
        previous_end = segment["end"]
    assert segments[-1]["start"] > 45  # the last window's times are offset, not restarted at 0


def sse_events(resp) -> list[dict]:
    events = []
    for line in resp.iter_lines(decode_unicode=True):
        if line.startswith("data: "):
            events.append(json.loads(line[6:]))
    return events


def test_sse_order_and_final_text_match_the_plain_response(service, audio_dir):
    data = {"language": "en", **GREEDY}
    plain = transcribe(service, audio_dir / "long.wav", {**data, "response_format": "json"}).json()
    with open(audio_dir / "long.wav", "rb") as f:
        resp = requests.post(
            service.url + ENDPOINT,
            files={"file": f},
            data={**data, "stream": "true"},
            stream=True,
            timeout=180,
        )
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(resp)
    assert [e["type"] for e in events[:-1]] == ["transcript.text.delta"] * (len(events) - 1)
    assert events[-1]["type"] == "transcript.text.done"
    assert events[-1]["text"] == plain["text"]
    assert "".join(e["delta"] for e in events[:-1]).strip() == plain["text"]
    assert events[-1]["usage"]["type"] == "tokens"  # the stream's done event takes token usage only
    assert events[-1]["usage"]["input_tokens"] == plain["usage"]["seconds"] * 50  # encoder positions


@pytest.mark.parametrize("mode", [{}, {"condition_on_previous_text": "true"}])
def test_batched_and_sequential_give_valid_verbose_json(service, audio_dir, mode):
    body = transcribe(
        service, audio_dir / "long.wav", {"response_format": "verbose_json", "language": "en", **mode}
    ).json()
    assert body["language"] == "english" and body["duration"] == pytest.approx(75, abs=0.1)
    assert body["segments"], body
    for s in body["segments"]:
        assert 0 <= s["start"] <= s["end"] <= body["duration"] + 0.05
        assert isinstance(s["tokens"], list) and s["temperature"] in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert body["text"] == "".join(s["text"] for s in body["segments"]).strip()


class Blocked(OpenAIWhisperEngine):
    """The real engine, whose decode waits until the test lets it go: what must happen while a request is
    decoding (its deadline passes, another is refused) happens first, whatever the machine's speed."""

    release: threading.Event

    def decode(self, windows, options):
        self.release.wait(60)
        return super().decode(windows, options)


@pytest.fixture
def blocked(checkpoint):
    """make(**settings) -> (Flask test client, scheduler, engine): the app in-process around a Blocked engine
    (random weights, no VAD, one window per call); the engine is released when the test ends."""
    from service import _flask_app
    from service.batching.scheduler import Scheduler
    from service.settings import Settings

    engines = []

    def make(**changes):
        settings = Settings(whisper_model=str(checkpoint), whisper_device="cpu", warmup=False, vad=False)
        settings = settings.replace(batch_size=1, **changes)
        engine = Blocked(settings)
        engine.release = threading.Event()
        engines.append(engine)
        scheduler = Scheduler(engine, settings)
        client = _flask_app(settings, scheduler).test_client()
        scheduler.start()
        wait_for(lambda: scheduler.ready)
        return client, scheduler, engine

    yield make
    for engine in engines:
        engine.release.set()


def post(client, path: Path, **data):
    with open(path, "rb") as f:
        return client.post(ENDPOINT, data={"file": (f, path.name), **data})


def test_deadline_gives_a_clean_timeout(blocked, audio_dir):
    from service import metrics

    client, scheduler, engine = blocked(request_timeout=1, request_timeout_per_audio_second=0)
    timeouts = metrics.CANCELLED.labels("timeout")._value.get()
    resp = post(client, audio_dir / "long.wav", language="en")
    assert resp.status_code == 504 and resp.json["error"]["code"] == "timeout", resp.text
    assert metrics.CANCELLED.labels("timeout")._value.get() == timeouts + 1
    engine.release.set()
    wait_for(lambda: scheduler.work.empty())  # the decode under way finishes; the rest was dropped
    assert client.get("/readyz").status_code == 200


def test_full_queue_refuses_at_once_and_accepted_work_finishes(blocked, audio_dir):
    from service import metrics

    client, scheduler, engine = blocked(queue_max_seconds=100)
    refusals = metrics.REJECTED.labels("queue_full")._value.get()
    first = in_background(post, client, audio_dir / "long.wav", language="en")
    wait_for(lambda: not scheduler.work.empty())  # 75 s queued; the model is held, so it stays queued
    refused = post(client, audio_dir / "long.wav", language="en")  # 150 s would pass QUEUE_MAX_SECONDS
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json["error"]["code"] == "queue_full"
    engine.release.set()
    first["thread"].join(180)
    assert first["result"].status_code == 200, first.get("error") or first["result"].text
    assert metrics.REJECTED.labels("queue_full")._value.get() == refusals + 1
