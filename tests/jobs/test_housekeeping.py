"""Housekeeping on a real SQLite store with a moved clock: the TTL sweep deletes rows, audio and results;
callbacks are signed, retried with backoff until WEBHOOK_RETRY_SECONDS, and refused to private addresses."""

from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from service.jobs import callbacks
from service.jobs.files import DirectoryBlobs
from service.jobs.housekeeping import Housekeeping
from service.jobs.sqlite import SqliteJobStore
from service.jobs.store import JobSpec
from service.settings import from_env
from tests.jobs.store_contract import FakeClock

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def receiver():
    """A loopback receiver that answers 500 to the first `failures[0]` POSTs, then 200."""
    got, failures = [], [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(500 if len(got) <= failures[0] else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", got, failures
    server.shutdown()


def setup(tmp_path, callback_url=None, **env):
    clock = FakeClock()
    store = SqliteJobStore(tmp_path / "jobs.db", DirectoryBlobs(tmp_path / "blobs"), clock)
    settings = from_env({"WEBHOOK_SECRET": SECRET, "JOBS_TTL": "3600", **env})
    job = store.create(
        "k", JobSpec("transcriptions", {}, "text", "a.wav", callback_url), io.BytesIO(b"a"), 1, 0
    )
    store.claim("w", 60, 3)
    store.finish(job.id, "w", b"hello", "text/plain")
    return store, Housekeeping(store, settings, clock), clock, job


def test_ttl_sweep_deletes_the_job_and_its_files(tmp_path):
    store, house, clock, job = setup(tmp_path)
    clock.advance(3599)
    assert house.sweep() == 0 and store.read_result(job.id) == (b"hello", "text/plain")
    clock.advance(2)
    assert house.sweep() == 1
    assert store.get(None, job.id) is None and store.usage() == 0
    assert not list((tmp_path / "blobs").rglob("job_*"))


def test_callback_is_signed_retried_with_backoff_then_delivered(tmp_path, receiver):
    url, got, failures = receiver
    failures[0] = 2
    store, house, clock, job = setup(tmp_path, url, WEBHOOK_ALLOW_PRIVATE="true")
    house.deliver_due()
    assert len(got) == 1 and store.pending_callbacks(10)  # 500: still pending
    house.deliver_due()
    assert len(got) == 1  # not before its backoff
    clock.advance(callbacks.backoff(1))
    house.deliver_due()
    clock.advance(callbacks.backoff(2))
    house.deliver_due()
    assert len(got) == 3 and not store.pending_callbacks(10)
    for headers, body in got:
        event = Webhook(SECRET).verify(body, headers)
        assert event["data"]["id"] == job.id and event["data"]["status"] == "completed"
    assert {h["webhook-id"] for h, _ in got} == {f"msg_{job.id}_completed"}  # one message, retried


def test_callback_is_given_up_after_the_retry_time(tmp_path, receiver):
    url, got, failures = receiver
    failures[0] = 1000
    store, house, clock, _ = setup(tmp_path, url, WEBHOOK_ALLOW_PRIVATE="true", WEBHOOK_RETRY_SECONDS="100")
    for attempt in range(1, 30):
        house.deliver_due()
        clock.advance(callbacks.backoff(attempt))
    # tried at 0, 2, 6, 14, 30, 62 s; at 126 s (past 100) given up without another POST
    assert not store.pending_callbacks(10) and len(got) == 6


def test_a_private_callback_is_refused_at_delivery(tmp_path, receiver):
    url, got, _ = receiver
    store, house, _, _ = setup(tmp_path, url)  # WEBHOOK_ALLOW_PRIVATE unset
    house.deliver_due()
    assert got == [] and not store.pending_callbacks(10)  # refused once, for good


NOT_GLOBAL = ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "::1", "fe80::1",
              "fc00::1", "100.64.0.1", "0.0.0.0", "::ffff:127.0.0.1", "224.0.0.1"]  # fmt: skip


@given(st.sampled_from(NOT_GLOBAL))
def test_non_global_addresses_are_refused(address):
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(callbacks.Refused):
        callbacks.check_destination(f"http://{host}/hook", allow_private=False)
    assert callbacks.check_destination(f"http://{host}/hook", allow_private=True)


def test_a_global_address_is_allowed():
    assert callbacks.check_destination("https://8.8.8.8/hook", allow_private=False) == "8.8.8.8"


def test_backoff_doubles_up_to_its_bound():
    assert [callbacks.backoff(n) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert callbacks.backoff(30) == callbacks.BACKOFF_MAX
