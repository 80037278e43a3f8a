"""`make dashboards` against a real OpenSSH server on loopback standing in for the VM: the tunnel it opens
reaches the "VM's" Grafana and Prometheus ports (two small HTTP servers), and it prints the local URLs."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.helpers import free_port

from .conftest import ROOT, started, wait_until

SSHD = "/usr/sbin/sshd"


def answering(body: bytes):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


@contextlib.contextmanager
def http_server(body: bytes):
    server = ThreadingHTTPServer(("127.0.0.1", 0), answering(body))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def vm(tmp_path):
    """An sshd on a loopback port accepting a fresh key for the current user; yields (port, key)."""
    for name in ("host_key", "user_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True
        )
    port = free_port()
    config = tmp_path / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp_path}/host_key\nPidFile {tmp_path}/sshd.pid\n"
        f"AuthorizedKeysFile {tmp_path}/user_key.pub\nPasswordAuthentication no\nUsePAM no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\n"
        "AllowTcpForwarding local\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    with started([SSHD, "-D", "-e", "-f", str(config)], tmp_path / "sshd.log") as sshd:
        wait_until(lambda: sshd.alive() and "Server listening" in sshd.log_text() or None, 15, "sshd")
        yield port, tmp_path / "user_key"


def make_dashboards(tmp_path: Path, ssh: str, ports: dict[str, int], outputs: Path) -> subprocess.Popen:
    args = [f"{name}={value}" for name, value in ports.items()]
    return subprocess.Popen(
        ["make", "-s", "dashboards", f"DEPLOY_OUTPUTS={outputs}", f"TUNNEL_SSH={ssh}", *args],
        cwd=ROOT,
        env={**os.environ, "SSH_USER": getpass.getuser()},
        stdout=(tmp_path / "make.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: make, the shell and ssh stop together
    )


def test_tunnel_reaches_grafana_and_prometheus_on_the_vm(tmp_path, vm):
    ssh_port, key = vm
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"ip": "127.0.0.1", "url": "http://127.0.0.1"}))
    ssh = (
        f"ssh -p {ssh_port} -i {key} -o BatchMode=yes -o StrictHostKeyChecking=no "
        "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
    )
    local = {"GRAFANA_LOCAL_PORT": free_port(), "PROMETHEUS_LOCAL_PORT": free_port()}
    with http_server(b"grafana") as grafana, http_server(b"prometheus") as prometheus:
        remote = {"GRAFANA_REMOTE_PORT": grafana, "PROMETHEUS_REMOTE_PORT": prometheus}
        make = make_dashboards(tmp_path, ssh, {**local, **remote}, outputs)
        try:
            for name, body in (("GRAFANA", "grafana"), ("PROMETHEUS", "prometheus")):
                url = f"http://127.0.0.1:{local[f'{name}_LOCAL_PORT']}/"
                text = wait_until(lambda u=url: requests.get(u, timeout=5).text, 30, f"tunnel to {name}")
                assert text == body
            assert make.poll() is None  # the tunnel stays open until Ctrl-C
        finally:
            os.killpg(make.pid, signal.SIGTERM)
            make.wait(10)
    printed = (tmp_path / "make.log").read_text()
    assert f"Grafana     http://127.0.0.1:{local['GRAFANA_LOCAL_PORT']}" in printed
    assert f"Prometheus  http://127.0.0.1:{local['PROMETHEUS_LOCAL_PORT']}" in printed


def test_without_stack_outputs_it_says_what_to_run(tmp_path):
    result = subprocess.run(
        ["make", "-s", "dashboards", f"DEPLOY_OUTPUTS={tmp_path / 'missing.json'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "run make outputs" in result.stderr
