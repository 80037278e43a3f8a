"""infra/idle_stop.py against the real service: gunicorn with the random checkpoint, its real /metrics on the
metrics port, real probes and a real transcription. Only Google is a stand-in (the metadata server and the
Compute API's instances.stop, on loopback). The watch's clock is its --now, so nothing depends on timing."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from .conftest import ROOT, free_port, running_service, transcribe

SCRIPT = ROOT / "infra" / "idle_stop.py"
BOOT = 1_800_000_000.0


class Google(BaseHTTPRequestHandler):
    stops: list[str] = []

    def do_GET(self):
        values = {
            "/v1/instance/attributes/whisper-idle-stop-minutes": "30",
            "/v1/project/project-id": "demo-project",
            "/v1/instance/zone": "projects/1/zones/us-central1-a",
            "/v1/instance/name": "vm",
            "/v1/instance/service-accounts/default/token": json.dumps({"access_token": "t"}),
        }
        body = values.get(self.path)
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write((body or "").encode())

    def do_POST(self):
        Google.stops.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def google() -> Iterator[str]:
    Google.stops = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Google)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def service(tmp_path_factory, checkpoint):
    with running_service(checkpoint, tmp_path_factory.mktemp("idle-stop"), workers=1) as running:
        yield running


@pytest.fixture
def watch(service, tmp_path):
    """watch(minute) -> one run of the VM's timer that many minutes after the boot; True once it stopped."""
    idle_colour = f"http://127.0.0.1:{free_port()}/metrics"  # nothing listens: the other blue/green port
    with google() as url:
        env = {
            "PATH": os.environ["PATH"],
            "METADATA_URL": f"{url}/v1",
            "COMPUTE_URL": f"{url}/compute/v1",
            "METRICS_URLS": f"{service.metrics_url} {idle_colour}",
            "IDLE_STOP_STATE": str(tmp_path / "idle-stop.json"),
        }

        def run(minute: float) -> bool:
            result = subprocess.run(
                [sys.executable, str(SCRIPT), "--now", str(BOOT + minute * 60)],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, result.stdout + result.stderr
            return bool(Google.stops)

        yield run


def test_the_real_services_probes_do_not_keep_it_awake(service, watch):
    assert not watch(0)
    for _ in range(3):
        assert requests.get(f"{service.url}/readyz", timeout=10).status_code == 200
        assert requests.get(f"{service.url}/healthz", timeout=10).status_code == 200
    assert not watch(29)
    assert watch(30)
    assert Google.stops == ["/compute/v1/projects/demo-project/zones/us-central1-a/instances/vm/stop"]


def test_a_real_transcription_restarts_the_clock(service, watch, speech_wav):
    assert not watch(0)
    assert transcribe(service, speech_wav).status_code == 200
    assert not watch(20)  # the run that sees the new request
    assert not watch(49)
    assert watch(50)
