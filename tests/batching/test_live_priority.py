"""Live items (api/realtime) go first in take_batch, yet a file passed over MAX_PASSED_OVER calls in a row
still goes before them, so live sessions never starve files."""

from __future__ import annotations

import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from service.api.realtime.decoding import FINAL, FIRST, PARTIAL
from service.batching.job import Job
from service.batching.work import MAX_PASSED_OVER, take_batch
from tests.batching.test_work import JSON, job, queued

SR = 16000


def live_item(seconds: float = 2.0) -> Job:
    audio = np.zeros(int(seconds * SR), np.float32)
    return Job.planned(audio, JSON, time.monotonic() + 60, live=1)


def test_a_live_item_goes_before_a_shorter_file():
    clip, item = job(1), live_item()
    batch = take_batch(queued(clip, item), 1)
    assert [m.job for m in batch] == [item]


@given(files=st.lists(st.integers(1, 40), min_size=1, max_size=6), size=st.sampled_from([1, 2, 8]))
@settings(max_examples=80, deadline=None)
def test_live_items_go_first_but_never_before_an_overdue_file(files, size):
    """With a new live item arriving before every call: the call serves it, unless a file has been passed
    over MAX_PASSED_OVER calls, and then the call serves such a file. So live items keep the files' own
    guard against starvation intact."""
    jobs = [job(n) for n in files]
    pending = queued(*jobs)
    for call in range(4 * (MAX_PASSED_OVER + 1)):
        item = live_item()
        pending.update(queued(item))
        overdue = {j.id for j in jobs if j.passed_over >= MAX_PASSED_OVER and j.id in pending}
        taken = {m.job.id for m in take_batch(pending, size)}
        if overdue:
            assert overdue & taken, f"call {call}: an overdue file waited for a live item"
        else:
            assert item.id in taken, f"call {call}: the new live item waited"
        pending = type(pending)((k, v) for k, v in pending.items() if not v[0].job.live)  # a new one comes


def test_live_decodes_go_in_order_of_their_level_first_words_final_later_words():
    """Job.live's levels (api/realtime/decoding.py): a turn's first words, then a turn's final decode, then
    the later partials, whatever order they were queued in."""
    later, final, first = (live_item() for _ in range(3))
    later.live, final.live, first.live = PARTIAL, FINAL, FIRST
    pending = queued(later, final, first)
    assert [take_batch(pending, 1, free_batching=False)[0].job for _ in range(3)] == [first, final, later]
