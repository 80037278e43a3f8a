"""`make start`: the real make target and deploy/stack.py, with a stand-in `gcloud` on PATH (it records the
start call) and a real HTTP server standing in for the VM's public URL, whose /readyz answers 503 while "the
model loads" and then 200."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAKE_GCLOUD = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["GCLOUD_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if os.environ.get("GCLOUD_FAIL"):
    sys.exit("ERROR: (gcloud.compute.instances.start) " + os.environ["GCLOUD_FAIL"])
"""


class ReadyAfter:
    """A /readyz that answers 503 `loading` times, then 200; it counts what it was asked."""

    def __init__(self, loading: int) -> None:
        self.loading, self.asked = loading, []

    def handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                site.asked.append(self.path)
                ready = self.path == "/readyz" and len(site.asked) > site.loading
                self.send_response(200 if ready else 503)
                self.end_headers()
                self.wfile.write(b'{"status": "ready"}' if ready else b'{"status": "loading"}')

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def stack(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(FAKE_GCLOUD)
    gcloud.chmod(0o755)
    site = ReadyAfter(loading=3)
    server = ThreadingHTTPServer(("127.0.0.1", 0), site.handler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            {
                "mode": "vm",
                "project": "demo-project",
                "instanceName": "whisper-dev-vm-instance",
                "zone": "us-central1-a",
                "url": f"http://127.0.0.1:{server.server_address[1]}",
            }
        )
    )
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "GCLOUD_LOG": str(tmp_path / "gcloud.log"),
        "START_POLL_S": "0.05",
    }
    yield tmp_path, outputs, env, site
    server.shutdown()
    server.server_close()


def make_start(outputs: Path, env: dict, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", "start", f"DEPLOY_OUTPUTS={outputs}"],
        cwd=ROOT,
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_start_starts_the_vm_and_waits_for_readyz(stack):
    tmp, outputs, env, site = stack
    result = make_start(outputs, env)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = [json.loads(line) for line in (tmp / "gcloud.log").read_text().splitlines()]
    assert calls == [
        ["compute", "instances", "start", "whisper-dev-vm-instance", "--zone", "us-central1-a"]
        + ["--project", "demo-project"]
    ]
    assert site.asked == ["/readyz"] * 4  # three 503s while loading, then the 200 it waited for
    assert "waiting for" in result.stdout and "503" in result.stdout
    assert "/readyz answers 200" in result.stdout


def test_a_refused_start_says_why_and_does_not_wait(stack):
    tmp, outputs, env, site = stack
    result = make_start(outputs, env, GCLOUD_FAIL="Quota 'NVIDIA_T4_GPUS' exceeded")
    assert result.returncode != 0
    assert "could not start whisper-dev-vm-instance" in result.stderr
    assert "NVIDIA_T4_GPUS" in result.stderr
    assert site.asked == []


def test_a_service_that_never_gets_ready_ends_with_what_to_do(stack):
    tmp, outputs, env, site = stack
    site.loading = 10**9
    result = make_start(outputs, env, START_TIMEOUT_S="0.3")
    assert result.returncode != 0
    assert "did not answer 200" in result.stderr and "last: 503" in result.stderr


def test_a_fleet_is_refused(stack):
    tmp, outputs, env, site = stack
    outputs.write_text(json.dumps({"mode": "fleet", "groupName": "g", "region": "us-central1"}))
    result = make_start(outputs, env)
    assert result.returncode != 0
    assert "autoscaler starts VMs" in result.stderr
    assert not (tmp / "gcloud.log").exists()


def test_without_outputs_it_says_what_to_run(tmp_path):
    result = subprocess.run(
        ["make", "-s", "start", f"DEPLOY_OUTPUTS={tmp_path / 'missing.json'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "run make outputs" in result.stderr
