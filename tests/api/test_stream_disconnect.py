"""A stream whose client hangs up is cancelled while it waits for its next window, not at the next write.

The next write may be a window or more away (a long window, a busy model, a job queued behind others): the
page's Cancel must stop the work at once. pipeline.stream_events is driven here with a job that never
finishes a window and a socket whose peer has closed, as gunicorn hands it to the app."""

from __future__ import annotations

import queue
import socket
import threading
import time
from types import SimpleNamespace

import pytest
from flask import Flask

from service.api import pipeline
from service.errors import ClientClosed


class Scheduler:
    """What stream_events asks of the scheduler: cancel(job, reason) ends the job with its error."""

    def __init__(self):
        self.reasons = []

    def cancel(self, job, reason: str) -> None:
        self.reasons.append(reason)
        job.error = ClientClosed("The client disconnected.")
        job.events.put(("done", None))
        job.done.set()


def waiting_job(deadline_seconds: float) -> SimpleNamespace:
    return SimpleNamespace(
        events=queue.Queue(), done=threading.Event(), error=None, deadline=time.monotonic() + deadline_seconds
    )


def test_a_hung_up_stream_is_cancelled_before_its_next_window():
    app = Flask(__name__)
    app.extensions["scheduler"] = scheduler = Scheduler()
    server_side, client_side = socket.socketpair()
    client_side.close()  # the browser's Cancel: the connection is gone, no window has finished since
    job = waiting_job(deadline_seconds=20)
    with server_side, app.test_request_context(environ_base={"gunicorn.socket": server_side}):
        with pytest.raises(ClientClosed):
            list(pipeline.stream_events(job))
    assert scheduler.reasons == [
        "disconnect"
    ]  # not "timeout": cancelled for the hang-up, not at the deadline


def test_a_listening_stream_waits_and_times_out_at_its_deadline():
    app = Flask(__name__)
    app.extensions["scheduler"] = scheduler = Scheduler()
    server_side, client_side = socket.socketpair()
    job = waiting_job(deadline_seconds=1)
    with server_side, client_side, app.test_request_context(environ_base={"gunicorn.socket": server_side}):
        with pytest.raises(ClientClosed):  # the fake scheduler ends every cancellation the same way
            list(pipeline.stream_events(job))
    assert scheduler.reasons == ["timeout"]
