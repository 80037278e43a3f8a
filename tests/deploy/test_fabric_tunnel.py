"""`fab tunnel` through a real sshd on loopback (tests/deploy/conftest.py's deploy host): the host's Grafana
and Prometheus ports forwarded to localhost."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from tests.deploy.conftest import FAB, ROOT, wait_for_port
from tests.helpers import free_port

# each test gets 5 minutes; the fixtures bound their own builds, pushes and starts
pytestmark = pytest.mark.timeout(300, func_only=True)


def test_tunnel_forwards_grafana_and_prometheus_to_localhost(deploy_host, tmp_path):
    """Two HTTP servers stand for the host's Grafana and Prometheus; `fab tunnel` must reach both."""
    servers, remote_ports = [], {}
    for name in ("grafana", "prometheus"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "who").write_text(name)
        remote_ports[name] = free_port()
        servers.append(
            subprocess.Popen(
                [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(remote_ports[name])],
                cwd=tmp_path / name,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    local = {"grafana": free_port(), "prometheus": free_port()}
    env = {
        **deploy_host.env,
        "DEPLOY_GRAFANA_PORT": str(remote_ports["grafana"]),
        "DEPLOY_PROMETHEUS_PORT": str(remote_ports["prometheus"]),
    }
    command = [FAB, "-r", str(ROOT), "tunnel", "--seconds", "30"]
    command += ["--grafana-port", str(local["grafana"]), "--prometheus-port", str(local["prometheus"])]
    tunnel = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for name, port in local.items():
            wait_for_port(port, seconds=20)
            assert requests.get(f"http://127.0.0.1:{port}/who", timeout=10).text == name
    finally:
        tunnel.terminate()
        tunnel.wait(timeout=30)
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
