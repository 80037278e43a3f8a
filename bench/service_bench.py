"""Side (2) and (3): the real service under gunicorn, driven over HTTP on loopback.

`Server` starts `gunicorn -c gunicorn.conf.py` with the benchmark's checkpoint and forced token count, and
samples the peak RSS of its processes. `drive()` sends a fixed number of requests at a fixed concurrency
and returns per-request latencies; every request must succeed (a benchmark that drops work measures nothing).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

from bench.support import free_port, start_gunicorn, stop, wait_ready


class Server:
    def __init__(self, model: Path, device: str, force_tokens: int, log_dir: Path, **env: str):
        self.port, self.metrics_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "WHISPER_MODEL": str(model),
            "WHISPER_DEVICE": device,
            "PORT": str(self.port),
            "METRICS_PORT": str(self.metrics_port),
            "METRICS_HOST": "127.0.0.1",
            "WHISPER_FORCE_TOKENS": str(force_tokens),
            "REQUEST_TIMEOUT": "3600",
            "VAD": "false",
            "QUEUE_MAX_REQUESTS": "1024",
            "THREADS": "1040",  # above QUEUE_MAX_REQUESTS (checked): every request is taken, none refused
            "QUEUE_MAX_SECONDS": "360000",
            "PROMETHEUS_MULTIPROC_DIR": str(log_dir / f"prom-{self.port}"),
            **env,
        }
        self.log_path = log_dir / f"server-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self.peak_rss = 0
        self._sampling = False

    def __enter__(self) -> Server:
        self.process = start_gunicorn(self.env, self.log_path, self.port)
        try:
            wait_ready(self.url, lambda: self.process.poll() is None, timeout=600, interval=0.5)
        except RuntimeError as error:
            raise RuntimeError(f"{error}: {self.log_path.read_text()[-2000:]}") from None
        self._sampling = True
        threading.Thread(target=self._sample_rss, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._sampling = False
        if self.process:
            stop(self.process)

    def rss(self) -> int:
        """Resident memory of the master and its workers now (not the short-lived ffmpeg decoders they run,
        whose number at any instant is chance, not growth)."""
        try:
            master = psutil.Process(self.process.pid)
            return sum(p.memory_info().rss for p in [master, *master.children(recursive=False)])
        except psutil.Error:
            return 0

    def _sample_rss(self) -> None:
        while self._sampling:
            self.peak_rss = max(self.peak_rss, self.rss())
            time.sleep(0.2)

    def metric(self, name: str) -> float:
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and not line.startswith("#")
        )


def transcribe(url: str, clip: Path, data: dict) -> tuple[float, str]:
    """(seconds, text) of one request; anything but 200 stops the benchmark."""
    began = time.perf_counter()
    with open(clip, "rb") as f:
        resp = requests.post(url + "/v1/audio/transcriptions", files={"file": f}, data=data, timeout=3600)
    if resp.status_code != 200:
        raise RuntimeError(f"benchmark request failed: {resp.status_code} {resp.text[:300]}")
    return time.perf_counter() - began, resp.json()["text"]


def nearest_rank(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values` by nearest rank; 0 when there are none."""
    data = sorted(values)
    return data[min(len(data) - 1, int(round(q * (len(data) - 1))))] if data else 0.0


def drive(
    url: str, clip: Path, concurrency: int, requests_total: int, data: dict
) -> tuple[list[float], float]:
    """Send `requests_total` requests, `concurrency` at a time; (latencies, wall seconds)."""
    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = [
            seconds for seconds, _ in pool.map(lambda _: transcribe(url, clip, data), range(requests_total))
        ]
    return latencies, time.perf_counter() - began
