"""Where `make run`'s gunicorn listens: loopback by default (API and /metrics), every interface only when
API_HOST / METRICS_HOST say so, as the image does. gunicorn is started as `make run` starts it (no --bind)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from tests.conftest import ROOT
from tests.helpers import free_port, wait_for

GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def listening(pid: int) -> set[tuple[str, int]]:
    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


@pytest.mark.parametrize(
    ("env", "address"),
    [({}, "127.0.0.1"), ({"API_HOST": "0.0.0.0", "METRICS_HOST": "0.0.0.0"}, "0.0.0.0")],  # noqa: S104
)
def test_the_api_and_metrics_listen_where_the_settings_say(checkpoint, tmp_path, env, address):
    port, metrics_port = free_port(), free_port()
    full_env = {
        **{k: v for k, v in os.environ.items() if k not in ("API_HOST", "METRICS_HOST")},
        "WHISPER_MODEL": str(checkpoint),
        "WHISPER_DEVICE": "cpu",
        "WARMUP": "false",
        "PORT": str(port),
        "METRICS_PORT": str(metrics_port),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "GRACEFUL_TIMEOUT": "5",
        **env,
    }
    with open(tmp_path / "log", "wb") as log:
        server = subprocess.Popen(
            [GUNICORN, "-c", "gunicorn.conf.py"],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        want = {(address, port), (address, metrics_port)}
        wait_for(lambda: ready(port) or server.poll() is not None, timeout=120, what="ready")
        log = (tmp_path / "log").read_text
        assert server.poll() is None, log()[-2000:]
        assert listening(server.pid) == want, log()[-2000:]
    finally:
        stop(server)


def ready(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def stop(server: subprocess.Popen) -> None:
    """SIGTERM; the process group is killed if it is still there after 30 s."""
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
