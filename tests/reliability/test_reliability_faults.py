"""Faults through the real gunicorn: a killed worker, a model that cannot load, a stalled ffmpeg, a full disk,
and a small file that expands to hours of audio."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import requests
from reliability_helpers import FAST, assert_error, in_background, ready, wait_for

ENDPOINT = "/v1/audio/transcriptions"


def transcribe(service, path, headers=None, timeout=120, **data):
    with open(path, "rb") as f:
        return requests.post(
            service.url + ENDPOINT, files={"file": f}, data=data, headers=headers or {}, timeout=timeout
        )


def worker_pids(service) -> list[int]:
    return [p.pid for p in psutil.Process(service.process.pid).children()]


# -- a worker killed mid-request ---------------------------------------------------------------------------
def test_kill_9_of_the_worker_mid_request(start_service, audio_dir):
    service = start_service(BATCH_SIZE="1", WHISPER_FORCE_TOKENS="24")
    (worker,) = worker_pids(service)
    box = in_background(transcribe, service, audio_dir / "long.wav", timeout=60, language="en")
    wait_for(lambda: service.metric("whisper_queue_audio_seconds") >= 75, what="request accepted")
    os.kill(worker, signal.SIGKILL)
    box["thread"].join(30)
    assert not box["thread"].is_alive(), "the client hangs after its worker died"
    assert isinstance(box.get("error"), requests.ConnectionError), box  # an error, not a made-up answer

    wait_for(lambda: worker_pids(service) and worker_pids(service) != [worker], what="a new worker")
    wait_for(lambda: ready(service), timeout=90, what="/readyz 200 again")
    assert transcribe(service, audio_dir / "speech.wav", language="en").status_code == 200
    assert service.process.poll() is None
    assert re.search(rf"\(pid:{worker}\) was sent SIGKILL", service.log())


# -- the model cannot load ---------------------------------------------------------------------------------
@pytest.fixture
def corrupt_checkpoint(checkpoint, tmp_path) -> Path:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(checkpoint.read_bytes()[: 1 << 20])  # a download cut short: a truncated zip
    return path


@pytest.mark.parametrize("model", ["missing", "corrupt"])
def test_a_model_that_cannot_load_leaves_the_process_up_and_not_ready(
    start_service, tmp_path, model, corrupt_checkpoint
):
    path = str(tmp_path / "nowhere" / "model.pt") if model == "missing" else str(corrupt_checkpoint)
    service = start_service(wait_ready=False, WHISPER_MODEL=path)
    failed = "model failed to load"
    wait_for(lambda: failed in service.log(), timeout=90, what="the load error in the log")
    workers = worker_pids(service)
    time.sleep(3)  # a crash loop would restart the worker (new pid) and log the error again
    assert requests.get(service.url + "/healthz", timeout=10).status_code == 200
    resp = requests.get(service.url + "/readyz", timeout=10)
    error = assert_error(resp, 503, "failed")
    assert error["message"].startswith(failed) and "Retry-After" not in resp.headers  # waiting won't help
    assert worker_pids(service) == workers and service.process.poll() is None
    lines = [line for line in service.log().splitlines() if failed in line]
    assert len(lines) == 1 and path in lines[0], lines  # one line naming the cause and WHISPER_MODEL
    assert_error(transcribe(service, Path(__file__)), (400, 503))  # requests are refused, not queued
    assert service.metric("whisper_model_ready") == 0


# -- ffmpeg that never finishes, and a full temp directory (one server for both) -----------------------------
STANDIN_FFMPEG = """#!/bin/bash
# a stand-in ffmpeg or ffprobe: stalls forever on inputs that start with STALL, else runs the real one
# (the input: after -i for ffmpeg, last for ffprobe; the service names it as a file: URL)
args=("$@")
input="${args[-1]}"
for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[i]}" = -i ] && input="${args[i + 1]}"; done
if [ "$(head -c 5 "${input#file:}")" = STALL ]; then exec sleep 3600; fi
exec REAL "$@"
"""


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 2 MiB tmpfs for TMPDIR (the tests run as root, like CI)."""
    mount = tmp_path / "tiny-tmp"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def stalling_ffmpeg(tmp_path) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ffmpeg", "ffprobe"):
        script = bin_dir / tool
        script.write_text(STANDIN_FFMPEG.replace("REAL", shutil.which(tool)))
        script.chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


@pytest.fixture
def fragile(start_service, tiny_tmpfs, stalling_ffmpeg):
    service = start_service(PATH=stalling_ffmpeg, FFMPEG_TIMEOUT="2", TMPDIR=str(tiny_tmpfs), **FAST)
    service.tmp = tiny_tmpfs
    return service


def test_stalled_ffmpeg_times_out_cleanly(fragile, audio_dir, tmp_path):
    stall = tmp_path / "stall.wav"
    stall.write_bytes(b"STALL" + (audio_dir / "speech.wav").read_bytes())
    began = time.monotonic()
    assert_error(transcribe(fragile, stall), 400, "decode_timeout")
    assert time.monotonic() - began < 30
    assert not [
        p
        for p in psutil.process_iter(["name"])
        if p.info["name"] == "sleep" and str(fragile.process.pid) in str(p.parents())
    ]
    assert transcribe(fragile, audio_dir / "speech.wav").status_code == 200
    assert ready(fragile)


@pytest.mark.parametrize("size_kib", [300, 1500], ids=["in-memory-form", "spooled-form"])
def test_a_full_temp_directory_gives_507_and_nothing_else_breaks(fragile, audio_dir, size_kib):
    filler = fragile.tmp / "filler"
    free = shutil.disk_usage(fragile.tmp).free
    filler.write_bytes(b"\0" * (free - 64 * 1024))  # leave 64 KiB: less than any upload below
    try:
        upload = os.urandom(size_kib * 1024)
        resp = requests.post(fragile.url + ENDPOINT, files={"file": ("big.wav", upload)}, timeout=60)
        assert_error(resp, 507, "insufficient_storage")
        assert ready(fragile)
        assert requests.get(fragile.url + "/v1/models", timeout=30).status_code == 200
    finally:
        filler.unlink()
    assert transcribe(fragile, audio_dir / "speech.wav").status_code == 200
    assert not [p for p in fragile.tmp.iterdir()], "an upload was left behind"
