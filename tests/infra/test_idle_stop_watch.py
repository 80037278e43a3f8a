"""infra/idle_stop.py run for real, as the VM's timer runs it, against loopback HTTP servers.

- the service's metrics: exposition text made by prometheus_client with the service's own metric names and
  labels (service/metrics.py), served on two ports as the blue/green pair serves them;
- the GCE metadata server and the Compute Engine API: one small server that answers the metadata paths and
  records the one call that matters, POST .../instances/NAME/stop, with its bearer token.

The clock is the script's --now (minutes after a boot), so no assertion depends on time passing.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from service import metrics as service_metrics

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "idle_stop.py"
TOKEN = "ya29.idle-stop-token"  # noqa: S105 (a fake token the fake metadata server hands out)
BOOT = 1_800_000_000.0
MODEL = {"model": "turbo", "engine": "openai-whisper"}


class ServiceMetrics:
    """What one service port exports: the real metric names and label sets, counted by prometheus_client."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "whisper_requests",
            "HTTP requests served.",
            service_metrics.REQUESTS._labelnames,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "whisper_requests_in_flight", "Requests being handled.", registry=self.registry
        )
        self.up = True

    def request(self, endpoint: str, status: str = "200") -> None:
        self.requests.labels(endpoint=endpoint, status=status, **MODEL).inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)


@contextlib.contextmanager
def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def metrics_handler(port: ServiceMetrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if not port.up:
                self.send_error(503)
                return
            body = port.text()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


class Google:
    """The metadata server and the Compute Engine API, as far as the watch uses them."""

    def __init__(self) -> None:
        self.attributes = {"whisper-idle-stop-minutes": "30"}
        self.stops: list[dict] = []
        self.stop_status = 200

    def handler(self) -> type[BaseHTTPRequestHandler]:
        google = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                assert self.headers["Metadata-Flavor"] == "Google"
                path = self.path.removeprefix("/computeMetadata/v1/")
                values = {
                    "project/project-id": "demo-project",
                    "instance/zone": "projects/123456/zones/us-central1-a",
                    "instance/name": "whisper-dev-vm-instance",
                    "instance/service-accounts/default/token": json.dumps(
                        {"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"}
                    ),
                    **{f"instance/attributes/{k}": v for k, v in google.attributes.items()},
                }
                if path not in values:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.end_headers()
                self.wfile.write(values[path].encode())

            def do_POST(self):
                google.stops.append({"path": self.path, "authorization": self.headers["Authorization"]})
                self.send_response(google.stop_status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        return Handler


class Vm:
    def __init__(self, tmp: Path, google: Google, blue: ServiceMetrics, green: ServiceMetrics, env: dict):
        self.tmp, self.google, self.blue, self.green, self.env = tmp, google, blue, green, env

    def watch(self, minute: float) -> subprocess.CompletedProcess:
        """One run of the timer, `minute` minutes after the boot."""
        return subprocess.run(
            [sys.executable, str(SCRIPT), "--now", str(BOOT + minute * 60)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def stopped(self) -> bool:
        return bool(self.google.stops)


@pytest.fixture
def vm(tmp_path) -> Iterator[Vm]:
    google, blue, green = Google(), ServiceMetrics(), ServiceMetrics()
    green.up = False  # the idle colour: nothing listens on its port between deploys
    with (
        serve(google.handler()) as google_url,
        serve(metrics_handler(blue)) as blue_url,
        serve(metrics_handler(green)) as green_url,
    ):
        env = {
            "PATH": os.environ["PATH"],
            "METADATA_URL": f"{google_url}/computeMetadata/v1",
            "COMPUTE_URL": f"{google_url}/compute/v1",
            "METRICS_URLS": f"{blue_url}/metrics {green_url}/metrics",
            "IDLE_STOP_STATE": str(tmp_path / "run" / "idle-stop.json"),
        }
        yield Vm(tmp_path, google, blue, green, env)


STOP_PATH = "/compute/v1/projects/demo-project/zones/us-central1-a/instances/whisper-dev-vm-instance/stop"


def test_after_the_idle_minutes_it_stops_this_vm_with_its_own_token(vm):
    vm.blue.request("/v1/audio/transcriptions")
    assert vm.watch(0).returncode == 0
    assert vm.watch(29).returncode == 0
    assert not vm.stopped()
    result = vm.watch(30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert vm.google.stops == [{"path": STOP_PATH, "authorization": f"Bearer {TOKEN}"}]
    assert "no request for 30 min" in result.stdout
    assert TOKEN not in result.stdout + result.stderr  # the token is never logged


def test_probes_do_not_keep_it_awake(vm):
    vm.watch(0)
    for minute in range(1, 30):
        vm.blue.request("/readyz")
        vm.blue.request("/healthz")
        vm.watch(minute)
    assert not vm.stopped()
    vm.watch(30)
    assert vm.stopped()


def test_a_request_restarts_the_clock(vm):
    vm.watch(0)
    vm.blue.request("/asr", status="400")  # any answer to a real request counts, errors too
    vm.watch(20)
    vm.watch(49)
    assert not vm.stopped()
    vm.watch(50)
    assert vm.stopped()


def test_a_request_in_flight_keeps_it_awake(vm):
    vm.watch(0)
    vm.blue.in_flight.set(1)  # a long file being transcribed: no new request for an hour
    vm.watch(45)
    vm.watch(74)
    assert not vm.stopped()
    vm.blue.in_flight.set(0)  # done: 30 idle minutes from the last run that saw it (minute 74)
    vm.watch(103)
    assert not vm.stopped()
    vm.watch(104)
    assert vm.stopped()


def test_a_deploy_to_the_other_colour_counts_as_activity(vm):
    vm.blue.request("/v1/audio/transcriptions")
    vm.watch(0)
    vm.blue.up, vm.green.up = False, True  # the new container's counters start at zero on :9102
    vm.green.request("/v1/audio/transcriptions")
    vm.watch(10)
    vm.watch(39)
    assert not vm.stopped()
    vm.watch(40)
    assert vm.stopped()


def test_before_the_service_first_answers_it_waits_the_setup_grace_too(vm):
    vm.blue.up = False  # first boot: Ansible and the first deploy have not run yet
    vm.watch(0)
    vm.watch(89)
    assert not vm.stopped()
    vm.watch(90)  # 30 idle minutes + 60 minutes of setup grace
    assert vm.stopped()


def test_a_service_that_answered_and_went_away_counts_as_idle(vm):
    vm.watch(0)
    vm.blue.up = False
    vm.watch(29)
    assert not vm.stopped()
    vm.watch(30)
    assert vm.stopped()


def test_without_the_setting_it_does_nothing(vm):
    del vm.google.attributes["whisper-idle-stop-minutes"]
    result = vm.watch(0)
    assert vm.watch(10_000).returncode == 0
    assert "idle stop is off" in result.stdout
    assert not vm.stopped()


def test_a_refused_stop_is_reported_and_tried_again(vm):
    vm.google.stop_status = 403  # e.g. the role binding was removed by hand
    vm.watch(0)
    result = vm.watch(30)
    assert result.returncode == 1
    assert "could not stop the VM" in result.stdout and "403" in result.stdout
    vm.google.stop_status = 200
    vm.watch(31)
    assert len(vm.google.stops) == 2
