"""The peer server: an OpenAI-compatible server from PyPI that a user would run instead of the service.

faster-whisper-server 0.0.3 (MIT): with a batch size above 1 it answers each request with faster-whisper's
`BatchedInferencePipeline` (faster_whisper_server/models.py, get_transcriber_for_request), called inside
its `async` FastAPI handler (faster_whisper_server/api.py), so requests run one after another. It gets its
own venv, build/peer-server/, made on first use from the pins in bench/peer-server.txt (faster-whisper and
ctranslate2 at pyproject.toml's versions: the comparison is of servers, not libraries).

Configured through its YAML `--config` (cli.py, config.py): the same model directory as the service, the
same device, compute type and threads (WhisperModel's `device`, `compute_type`, `cpu_threads`), batch 8 as
its README's pipeline example; its other transcribe options stay the pipeline's defaults (beam 5, its VAD,
no timestamps), which is what a user of it gets. Nothing is adapted in the package. The model loads on the
first request, so `PeerServer` sends one warm-up request before it is measured.

    python -m bench.peer_server            # make the venv only (what `make bench-peer` runs)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from .support import free_port

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "bench" / "peer-server.txt"
VENV = ROOT / "build" / "peer-server"
NAME = "faster-whisper-server 0.0.3 (BatchedInferencePipeline, batch 8)"


def ensure_venv(venv: Path = VENV, install: bool = True) -> Path:
    """build/peer-server/ with exactly the pinned packages; made (or remade) when the pins changed.
    With `install` false (no network: bench/gpu.sh), RuntimeError when it is not there already."""
    stamp = venv / "requirements.txt"
    server = venv / "bin" / "faster-whisper-server"
    if server.exists() and stamp.exists() and stamp.read_text() == REQUIREMENTS.read_text():
        return venv
    if not install:
        raise RuntimeError(f"{venv} is missing or stale; make it once with network: make bench-peer")
    print(f"peer server: installing {REQUIREMENTS.name} into {venv} (once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "-r", str(REQUIREMENTS)], check=True
    )
    stamp.write_text(REQUIREMENTS.read_text())
    return venv


def config(model: Path, device: str, compute_type: str, threads: int, batch_size: int, options: dict) -> dict:
    """faster-whisper-server's YAML config (JSON is YAML) for one model named whisper-1, the form default."""
    model_options = {"device": device, "compute_type": compute_type, "cpu_threads": threads}
    return {
        "batch_size": batch_size,
        "models": [
            {
                "name": "whisper-1",
                "path": str(model),
                "model_options": model_options,
                "transcribe_options": options,
            }
        ],
    }


class PeerServer:
    """faster-whisper-server on loopback; `url` takes the same requests as the service's."""

    def __init__(
        self,
        model: Path,
        work: Path,
        warmup: Path,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        threads: int = 2,
        batch_size: int = 8,
        options: dict | None = None,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = work / f"peer-{self.port}.yaml"
        self.config.write_text(
            json.dumps(config(model, device, compute_type, threads, batch_size, options or {}))
        )
        self.log_path = work / f"peer-{self.port}.log"
        self.warmup = warmup
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> PeerServer:
        venv = ensure_venv()
        cmd = [
            str(venv / "bin" / "faster-whisper-server"),
            "--config",
            str(self.config),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}  # nothing from this repository
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready()
        from .service_bench import transcribe

        transcribe(self.url, self.warmup, {"language": "en"})  # loads the model
        return self

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def _wait_ready(self, timeout: float = 120) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"peer server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError("peer server not ready in time")


if __name__ == "__main__":
    print(ensure_venv())
