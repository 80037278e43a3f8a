"""Fixtures for the monitoring tests: paths, the random checkpoint, speech audio, and real processes
(the service under gunicorn, Prometheus, node-exporter) on free loopback ports, each stopped afterwards."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
PROMETHEUS_DIR = MONITORING / "prometheus"
DASHBOARD_DIR = MONITORING / "grafana" / "dashboards"
VENV_BIN = Path(sys.executable).parent
SERVICE_START_S = 180  # torch import + model load + warm-up on 2 busy CPU cores


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


def load_build_dashboards():
    """monitoring/grafana/build_dashboards.py as a module (monitoring/ is not a package)."""
    path = MONITORING / "grafana" / "build_dashboards.py"
    spec = importlib.util.spec_from_file_location("build_dashboards", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def wait_until(
    check: Callable[[], object],
    timeout: float,
    what: str,
    every: float = 0.25,
    details: Callable[[], str] = str,
):
    """Poll check() until it returns something truthy; fail naming `what` (and details()) on timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (requests.RequestException, OSError, ValueError, KeyError) as error:
            last_error, result = error, None
        if result:
            return result
        time.sleep(every)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last error: {last_error})\n{details()}")


@dataclass
class Process:
    """A child process with its log file; stop() ends it (SIGTERM, then SIGKILL) and returns the log."""

    popen: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


@contextlib.contextmanager
def started(cmd: list[str], log: Path, env: dict | None = None) -> Iterator[Process]:
    with log.open("wb") as out:
        popen = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    process = Process(popen, log)
    try:
        yield process
    finally:
        process.stop()


# ---------------------------------------------------------------- the service
@dataclass(frozen=True)
class Service:
    process: Process
    url: str  # the public API
    metrics_url: str  # the gunicorn master's /metrics
    metrics_target: str  # host:port as Prometheus scrapes it
    model: str  # WHISPER_MODEL, which becomes the `model` label


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    from tools.checkpoints import build_checkpoint

    return build_checkpoint(tmp_path_factory.mktemp("model") / "test.pt")


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> Path:
    """A few seconds of real synthetic speech (espeak-ng), as a client would upload it."""
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    text = "The quick brown fox jumps over the lazy dog. Prometheus is watching."
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, timeout=60)
    return path


@contextlib.contextmanager
def running_service(checkpoint: Path, tmp: Path, workers: int) -> Iterator[Service]:
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "WHISPER_MODEL": str(checkpoint),
        "WHISPER_DEVICE": "cpu",
        "WHISPER_ENGINE": "openai-whisper",
        "WORKERS": str(workers),
        "PORT": str(port),
        "METRICS_PORT": str(metrics_port),
        "METRICS_HOST": "127.0.0.1",
        "API_KEYS": "",
        # One torch thread per worker: on 2 shared CI cores, torch's default of a thread per core in every
        # worker thrashes (a 1 s transcription took 90 s with two workers).
        "OMP_NUM_THREADS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus-multiproc"),
        "JOBS_DIR": str(tmp / "jobs"),  # background jobs: a store of its own, not the checkout's data/
        # The config binds 0.0.0.0 for the container; command-line settings win, so tests stay on loopback.
        "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port}",
    }
    cmd = [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "service:create_app()"]
    with started(cmd, tmp / "gunicorn.log", env) as process:
        service = Service(
            process=process,
            url=f"http://127.0.0.1:{port}",
            metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
            metrics_target=f"127.0.0.1:{metrics_port}",
            model=str(checkpoint),
        )

        def ready() -> bool:
            if not process.alive():
                pytest.fail(f"gunicorn exited early:\n{process.log_text()[-4000:]}")
            return requests.get(f"{service.url}/readyz", timeout=5).status_code == 200

        wait_until(ready, SERVICE_START_S, "the service's /readyz", 0.5, process.log_text)
        yield service


# The test model has random weights: with the default temperature fallback every window fails the quality
# thresholds and is decoded again at up to five temperatures, five samples each, so one request cost from
# one to ~30 decoder passes at random (over 120 s on a busy machine). These settings make it one greedy pass.
ONE_PASS = {"language": "en", "compression_ratio_threshold": "100", "logprob_threshold": "-100"}


def transcribe(service: Service, wav: Path) -> requests.Response:
    with wav.open("rb") as audio:
        return requests.post(
            f"{service.url}/v1/audio/transcriptions",
            files={"file": (wav.name, audio, "audio/wav")},
            data={"model": "whisper-1", "response_format": "json", **ONE_PASS},
            timeout=120,
        )


# ---------------------------------------------------------------- Prometheus and node-exporter
@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    assert path, "prometheus is missing: run `make system-deps` (Debian package prometheus)"
    return path


@contextlib.contextmanager
def running_node_exporter(tmp: Path, *flags: str) -> Iterator[str]:
    binary = shutil.which("prometheus-node-exporter")
    assert binary, "prometheus-node-exporter is missing: run `make system-deps`"
    target = f"127.0.0.1:{free_port()}"
    with started([binary, f"--web.listen-address={target}", *flags], tmp / "node-exporter.log") as process:
        wait_until(
            lambda: requests.get(f"http://{target}/metrics", timeout=5).ok,
            30,
            f"node-exporter on {target}",
            details=process.log_text,
        )
        yield target
