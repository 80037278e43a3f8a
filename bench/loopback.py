"""A real server on loopback for the overload benchmarks (bench/loadtest.py, bench/slowloris.py,
bench/bombs.py): gunicorn exactly as `make run` starts it, the short clip they send it, its workers' memory,
and the machine the figures come from."""

from __future__ import annotations

import contextlib
import io
import math
import os
import platform
import struct
import tempfile
import wave
from collections.abc import Iterator
from pathlib import Path

import psutil

from bench.support import free_port, start_gunicorn, stop, wait_ready

SAMPLE_RATE = 16_000


def clip(seconds: float) -> bytes:
    """A mono 16-bit WAV: a tone with a slow tremolo (any audio exercises the path; text is not checked)."""
    n = int(seconds * SAMPLE_RATE)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(b"".join(struct.pack("<h", sample(i)) for i in range(n)))
    return buffer.getvalue()


def sample(i: int) -> int:
    tremolo = (1 + math.sin(i / 2000)) / 2
    return int(9000 * tremolo * math.sin(2 * math.pi * 300 * i / SAMPLE_RATE))


@contextlib.contextmanager
def local_server(model: str | None, env: dict[str, str], log_path: Path) -> Iterator[tuple[str, int]]:
    """gunicorn on 127.0.0.1 exactly as `make run` starts it; yields (url, master pid); SIGTERM at the end."""
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        if model is None:
            from tools.checkpoints import build_checkpoint

            model = str(build_checkpoint(Path(tmp) / "test.pt"))
        port = free_port()
        full_env = {
            **os.environ,
            "WHISPER_MODEL": model,
            "WHISPER_DEVICE": "cpu",
            "PORT": str(port),
            "METRICS_PORT": str(free_port()),
            "METRICS_HOST": "127.0.0.1",
            "PROMETHEUS_MULTIPROC_DIR": os.path.join(tmp, "prom"),
            "WHISPER_FORCE_TOKENS": "8",
            "GRACEFUL_TIMEOUT": "30",
            "VAD": "false",
            **env,
        }
        server = start_gunicorn(full_env, log_path, port)
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_ready(url, lambda: server.poll() is None)
            except RuntimeError as error:
                raise SystemExit(f"{error}; see its log") from None
            yield url, server.pid
        finally:
            stop(server)


def worker_rss(master_pid: int) -> float:
    """Resident memory of the server's workers, MiB."""
    return sum(p.memory_info().rss for p in psutil.Process(master_pid).children()) / 2**20


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} x {cpu}, {memory:.0f} GiB, {platform.system()} {platform.release()}"
