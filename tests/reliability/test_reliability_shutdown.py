"""SIGTERM through the real gunicorn: accepted work finishes, late requests are refused cleanly, exit 0.

What a client can observe after SIGTERM (gunicorn 27 gthread, see service/server/worker.py `handle_exit`):
  - a request already accepted, in flight or queued: finishes normally (200);
  - a request on a kept-alive connection (gunicorn keeps those ~2 s): 503, Retry-After, Connection: close;
  - a new connection: refused by the kernel at once (the listeners are closed), never a hang;
  - the master exits 0 once the accepted work is done, within GRACEFUL_TIMEOUT.
"""

from __future__ import annotations

import re
import signal
import socket
import time
from pathlib import Path

import requests
from reliability_helpers import assert_error, in_background, wait_for

from deploy.config import DeployConfig
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ENDPOINT = "/v1/audio/transcriptions"
GRACE = 90  # seconds: generous, the drain below needs a few
# no temperature fallback: with random weights it would redo windows at random, and make the drain slow
GREEDY = {"language": "en", "compression_ratio_threshold": "100", "logprob_threshold": "-100"}


def transcribe(service, path, session=None, timeout=120):
    with open(path, "rb") as f:
        return (session or requests).post(
            service.url + ENDPOINT, files={"file": f}, data=GREEDY, timeout=timeout
        )


def refused(service) -> bool:
    port = int(service.url.rsplit(":", 1)[1])
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):
        # reset: the SYN reached the backlog of a listener that then closed, which is a refusal too
        return True
    return False


def test_sigterm_finishes_accepted_work_and_refuses_new_work(start_service, audio_dir):
    # one window per model call, taken from each request in turn: none of the four 75 s requests (four
    # windows each) can finish before all four are accepted, and each has windows left at SIGTERM
    service = start_service(BATCH_SIZE="1", WHISPER_FORCE_TOKENS="24", GRACEFUL_TIMEOUT=str(GRACE))
    kept_alive = requests.Session()
    assert kept_alive.get(service.url + "/healthz", timeout=10).status_code == 200
    accepted = [in_background(transcribe, service, audio_dir / "long.wav") for _ in range(4)]
    wait_for(lambda: service.metric("whisper_queue_audio_seconds") >= 4 * 75, what="4 requests accepted")
    assert service.metric("whisper_queue_depth") >= 4  # windows still waiting: queued work, not just one

    began = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    wait_for(lambda: refused(service), timeout=10, interval=0.01, what="new connections refused")
    late = transcribe(service, audio_dir / "speech.wav", session=kept_alive, timeout=30)
    assert_error(late, 503, "unavailable")
    assert int(late.headers["Retry-After"]) >= 1
    assert late.headers["Connection"].lower() == "close"

    for box in accepted:
        box["thread"].join(GRACE)
        assert "error" not in box, box.get("error")
        assert box["result"].status_code == 200, box["result"].text
    assert service.process.wait(GRACE + 15) == 0
    assert time.monotonic() - began < GRACE
    assert refused(service)
    log = service.log()
    assert "Handling signal: term" in log and "Shutting down: Master" in log
    assert not re.search(r"WORKER TIMEOUT|was sent SIGKILL", log)


def test_image_and_deploy_give_gunicorn_its_whole_grace_period():
    """docker stop must wait longer than gunicorn's drain, and send the signal gunicorn drains on."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^STOPSIGNAL SIGTERM$", dockerfile, re.M)
    # the image sets no GRACEFUL_TIMEOUT of its own: the service's default applies, and deploy takes the same
    assert not re.search(r"^(ENV|ARG)\b.*GRACEFUL_TIMEOUT", dockerfile, re.M)
    image_grace = Settings().graceful_timeout
    assert image_grace == DeployConfig(image="x").graceful_timeout
    deploy = DeployConfig(image="x", graceful_timeout=image_grace)
    assert deploy.stop_timeout > image_grace  # `docker run --stop-timeout` used by fab deploy
    assert DeployConfig.from_env({"IMAGE": "x", "GRACEFUL_TIMEOUT": "300"}).stop_timeout > 300


def test_a_request_still_uploading_at_sigterm_is_served(start_service, audio_dir):
    """The client sent its request to a live server: the drain finishes it instead of answering 503."""
    service = start_service(GRACEFUL_TIMEOUT=str(GRACE))
    with open(audio_dir / "speech.wav", "rb") as f:
        prepared = requests.Request("POST", service.url + ENDPOINT, files={"file": f}, data=GREEDY).prepare()
    port = int(service.url.rsplit(":", 1)[1])
    head = f"POST {ENDPOINT} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in prepared.headers.items()) + "\r\n"
    half = len(prepared.body) // 2
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head.encode() + prepared.body[:half])
        # the worker has started on the request (the app counts it in flight) and waits for the rest
        wait_for(
            lambda: service.metric("whisper_requests_in_flight") >= 1,
            timeout=60,
            what="the worker handling the half-sent request",
        )
        service.process.send_signal(signal.SIGTERM)
        wait_for(lambda: refused(service), timeout=10, interval=0.01, what="new connections refused")
        sock.sendall(prepared.body[half:])
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    status_line = response.split(b"\r\n", 1)[0]
    assert status_line.endswith(b"200 OK"), response[:500]
    assert service.process.wait(GRACE + 15) == 0
