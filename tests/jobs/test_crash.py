"""Nothing lost: the whole service (gunicorn, real tiny.en) SIGKILLed mid-job and started again finishes
the job with the right text, and its callback arrives and verifies with `standardwebhooks`; a SIGTERM hands
the running job back to the queue at once."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from service.jobs.files import DirectoryBlobs
from service.jobs.sqlite import SqliteJobStore
from tests.conftest import launch
from tests.jobs.test_jobs_api import SECRET, wait_for
from tools import speech

# BATCH_SIZE=1: one window per model call, so the job is seen with some windows done and others not
ENV = {"VAD": "true", "WORKERS": "1", "WEBHOOK_SECRET": SECRET, "WEBHOOK_ALLOW_PRIVATE": "true",
       "JOBS_LEASE_SECONDS": "5", "BATCH_SIZE": "1"}  # fmt: skip


@pytest.fixture
def receiver():
    """A loopback webhook receiver: every POST's headers and body, answered 204."""
    got: list[tuple[dict, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/whisper", got
    server.shutdown()


def store_at(jobs_dir: Path) -> SqliteJobStore:
    return SqliteJobStore(jobs_dir / "jobs.db", DirectoryBlobs(jobs_dir / "blobs"))


def checkpointed(jobs_dir: Path, job_id: str, timeout: float = 300):
    """The job once the store holds a checkpoint of some of its windows (read straight from SQLite)."""
    store, end = store_at(jobs_dir), time.monotonic() + timeout
    while time.monotonic() < end:
        job = store.get(None, job_id)
        if job is not None and job.checkpoint and job.status == "in_progress":
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never checkpointed mid-job: {store.get(None, job_id)}")


def submit(url: str, audio: Path, callback_url: str) -> str:
    """A background job for `audio` (`text`, with a callback): its id, from the 202."""
    with open(audio, "rb") as f:
        accepted = requests.post(
            url + "/v1/audio/transcriptions", files={"file": (audio.name, f)},
            data={"background": "true", "callback_url": callback_url, "response_format": "text"}, timeout=30,
        )  # fmt: skip
    assert accepted.status_code == 202, accepted.text
    return accepted.json()["id"]


def assert_signed_callback(got: list, job_id: str) -> None:
    """The job's completion callback arrived (within 30 s), signed with WEBHOOK_SECRET and nothing else."""
    end = time.monotonic() + 30
    while not got and time.monotonic() < end:
        time.sleep(0.2)
    assert got, "no callback arrived"
    headers, body = got[0]
    event = Webhook(SECRET).verify(body, headers)  # raises unless signed with WEBHOOK_SECRET
    assert event["type"] == "audio.job.completed" and event["data"]["id"] == job_id
    assert event["data"]["status"] == "completed" and headers["webhook-id"] == f"msg_{job_id}_completed"
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "A" * 32).verify(body, headers)


def test_sigkill_mid_job_then_restart_completes_with_the_right_text_and_a_signed_callback(
    tiny_en, tmp_path, receiver
):
    url, got = receiver
    # different sentences (a looped one is repetitive text, which the compression check sends up the whole
    # temperature ladder window after window): 8-9 windows, decoded one per model call (BATCH_SIZE=1)
    jobs_dir, story = tmp_path / "jobs", speech.story(tmp_path, 240, seed=34)
    audio = story.path
    first = launch(tiny_en, tmp_path, JOBS_DIR=str(jobs_dir), **ENV)
    job_id = submit(first.url, audio, url)
    try:
        checkpointed(jobs_dir, job_id)
    finally:  # also when it fails: no service left decoding after the test
        os.killpg(first.process.pid, signal.SIGKILL)  # the master and its worker, mid-job
    first.process.wait(10)
    killed = store_at(jobs_dir).get(None, job_id)
    assert killed.status == "in_progress" and killed.attempts == 1 and 0 < killed.progress < 1
    done_before = json.loads(killed.checkpoint)["done"]

    second = launch(tiny_en, tmp_path, JOBS_DIR=str(jobs_dir), **ENV)
    try:
        done = wait_for(second, job_id, key=None, timeout=600)  # a bound, not a speed
        assert done["status"] == "completed", done
        result = requests.get(f"{second.url}/v1/audio/jobs/{job_id}/result", timeout=10)
        with open(audio, "rb") as f:
            sync = requests.post(
                second.url + "/v1/audio/transcriptions", files={"file": (audio.name, f)},
                data={"response_format": "text"}, timeout=180,
            )  # fmt: skip
        assert result.text == sync.text and speech.wer(story.text, result.text) < 0.3, result.text
        assert store_at(jobs_dir).get(None, job_id).attempts == 2  # resumed, not redone as a new job
        assert f"job {job_id} resumes after window {done_before} of " in second.log()
        assert_signed_callback(got, job_id)
    finally:
        second.stop()
    assert not second.tracebacks(), second.tracebacks()


def test_sigterm_hands_the_running_job_back(tiny_en, tmp_path, audio_dir):
    jobs_dir = tmp_path / "jobs"
    service = launch(tiny_en, tmp_path, JOBS_DIR=str(jobs_dir), **{**ENV, "JOBS_LEASE_SECONDS": "600"})
    with open(audio_dir / "long.wav", "rb") as f:
        accepted = requests.post(
            service.url + "/v1/audio/transcriptions", files={"file": ("long.wav", f)},
            data={"background": "true"}, timeout=30,
        )  # fmt: skip
    job_id = accepted.json()["id"]
    wait_for(service, job_id, ("in_progress", "completed"), key=None)
    assert service.stop() == 0
    back = store_at(jobs_dir).get(None, job_id)
    # handed back at once: queued with no holder, though its 600 s lease had not run out
    assert (back.status, back.worker_id, back.lease_until) == ("queued", None, None)
    assert not service.tracebacks(), service.tracebacks()
    with store_at(jobs_dir).open_audio(job_id) as kept:  # the upload is still there to run again
        assert kept.read() == (audio_dir / "long.wav").read_bytes()
