"""The diarize stage runs at most DIARIZE_AT_ONCE at a time per worker (service/api/pipeline.py): each holds
its audio's mel windows and embeddings, so 32 request threads must not hold them all at once."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from service.api import pipeline
from tests.helpers import wait_for


def test_at_most_two_diarize_stages_run_at_once(monkeypatch):
    inside, most, lock, release = 0, 0, threading.Lock(), threading.Event()

    def find_turns(audio, hints):  # the stage's part that holds its audio's windows and embeddings
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        release.wait(30)
        with lock:
            inside -= 1
        return [], {}

    monkeypatch.setattr(pipeline.speakers, "find_turns", find_turns)
    monkeypatch.setattr(pipeline.speakers, "label", lambda transcript, found, hints: transcript)
    monkeypatch.setattr(pipeline, "observe_stage", lambda stage, seconds: None)  # needs a request's app
    job = SimpleNamespace(audio=None)
    threads = [threading.Thread(target=pipeline.diarized, args=(job, "t", None)) for _ in range(6)]
    for t in threads:
        t.start()
    wait_for(lambda: inside == 2, timeout=30, what="two stages inside")
    assert most == 2  # the other four wait, held by the semaphore, not by the stage's own speed
    release.set()
    for t in threads:
        t.join(30)
    assert most == 2 and inside == 0
