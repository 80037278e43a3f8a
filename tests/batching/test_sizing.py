"""What one CPU model call holds (batching/sizing.py), as properties over generated queues: while a short
request is queued a call holds at most INTERACTIVE_BATCH_SIZE long inputs; with only long work and no short
request lately, calls are full; long work is never starved by a stream of clips."""

from __future__ import annotations

import time
from collections import OrderedDict, deque

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from service.batching.job import Job, JobOptions
from service.batching.placement import Rest
from service.batching.sizing import SHORT_SECONDS, Sizing, is_short
from service.batching.work import MAX_PASSED_OVER, ModelInput
from service.intake.vad import Region
from service.intake.windows import Window

SR = 16000
JSON = JobOptions(language="en", timestamps=False)
HOLD = 10.0


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def job(seconds: float, live: int = 0) -> Job:
    """A job of `seconds` of audio in 30 s windows, every window queued."""
    count = max(1, int(np.ceil(seconds / 30)))
    bounds = [(i * 30 * SR, min((i + 1) * 30, seconds) * SR) for i in range(count)]
    windows = [Window((Region(int(a), int(b)),)) for a, b in bounds]
    audio = np.zeros(int(seconds * SR), dtype=np.float32)
    return Job(audio=audio, options=JSON, deadline=time.monotonic() + 60, windows=windows, live=live)


def queue(pending: OrderedDict[int, deque[ModelInput]], *jobs: Job) -> None:
    for j in jobs:
        pending[j.id] = deque(ModelInput(j, (Rest(i),)) for i in range(len(j.windows)))


def long_inputs(batch: list[ModelInput]) -> int:
    return sum(not is_short(m.job) for m in batch)


clip_seconds = st.floats(1.0, SHORT_SECONDS)
long_seconds = st.floats(SHORT_SECONDS + 1, 600.0)
sizes = st.integers(2, 16)
small_sizes = st.integers(1, 4)


@settings(max_examples=200, deadline=None)
@given(
    longs=st.lists(long_seconds, min_size=1, max_size=5),
    clips=st.lists(clip_seconds, min_size=1, max_size=12),
    passed_over=st.lists(st.integers(0, MAX_PASSED_OVER + 2), min_size=5, max_size=5),
    size=sizes,
    small=small_sizes,
)
def test_while_a_short_request_is_queued_a_call_holds_at_most_the_small_number_of_long_inputs(
    longs, clips, passed_over, size, small
):
    clock = Clock()
    sizing = Sizing(small, HOLD, clock)
    pending: OrderedDict[int, deque[ModelInput]] = OrderedDict()
    long_jobs = [job(s) for s in longs]
    for j, p in zip(long_jobs, passed_over):
        j.passed_over = p
    clip_jobs = [job(s) for s in clips]
    queue(pending, *long_jobs, *clip_jobs)
    for clip in clip_jobs:
        sizing.submitted(clip)
    batch = sizing.take(pending, size, free_batching=False)
    assert 0 < len(batch) <= size
    assert long_inputs(batch) <= min(small, size)
    starved = any(p >= MAX_PASSED_OVER for p in passed_over[: len(longs)])
    if not starved:  # the short jobs' own call: no long input at all, and as many clips as fit
        assert long_inputs(batch) == 0 and len(batch) == min(size, len(clips))


@settings(max_examples=200, deadline=None)
@given(longs=st.lists(long_seconds, min_size=1, max_size=5), size=sizes, small=small_sizes)
def test_with_only_long_work_and_no_short_request_lately_every_call_is_full(longs, size, small):
    clock = Clock()
    sizing = Sizing(small, HOLD, clock)
    sizing.submitted(job(10.0))  # a clip long ago: its hold has passed
    clock.now += HOLD
    pending: OrderedDict[int, deque[ModelInput]] = OrderedDict()
    queue(pending, *(job(s) for s in longs))
    while pending:
        left = sum(len(q) for q in pending.values())
        assert len(sizing.take(pending, size, free_batching=False)) == min(size, left)


@settings(max_examples=200, deadline=None)
@given(
    longs=st.lists(long_seconds, min_size=1, max_size=3),
    size=sizes,
    small=small_sizes,
    waited=st.floats(0.0, HOLD * 0.99),
)
def test_after_a_short_request_calls_stay_small_for_the_hold_then_fill(longs, size, small, waited):
    clock = Clock()
    sizing = Sizing(small, HOLD, clock)
    pending: OrderedDict[int, deque[ModelInput]] = OrderedDict()
    queue(pending, *(job(s) for s in longs))
    sizing.submitted(job(16.0))  # answered already: nothing short is queued
    clock.now += waited
    assert 0 < len(sizing.take(pending, size, free_batching=False)) <= min(size, small)
    clock.now = sizing.last_short + HOLD
    left = sum(len(q) for q in pending.values())
    assert len(sizing.take(pending, size, free_batching=False)) == min(size, left)


@settings(max_examples=100, deadline=None)
@given(longs=st.lists(long_seconds, min_size=1, max_size=4), size=sizes, small=small_sizes)
def test_a_stream_of_clips_never_starves_long_work(longs, size, small):
    """A clip arrives before every call; each long job is still served every MAX_PASSED_OVER + n calls."""
    clock = Clock()
    sizing = Sizing(small, HOLD, clock)
    pending: OrderedDict[int, deque[ModelInput]] = OrderedDict()
    long_jobs = [job(s) for s in longs]
    queue(pending, *long_jobs)
    last_served = {j.id: 0 for j in long_jobs}
    bound = MAX_PASSED_OVER + len(long_jobs)
    for call in range(1, 6 * bound):
        clip = job(16.0)
        queue(pending, clip)
        pending.move_to_end(clip.id, last=False)
        sizing.submitted(clip)
        clock.now += 1.0
        batch = sizing.take(pending, size, free_batching=False)
        assert long_inputs(batch) <= min(small, size)
        for m in batch:
            last_served[m.job.id] = call
        for j in long_jobs:
            if j.id in pending:
                assert call - last_served[j.id] <= bound


def test_a_live_decode_counts_as_short_whatever_its_length_and_a_gpu_fills_every_call():
    clock = Clock()
    sizing = Sizing(1, HOLD, clock)
    pending: OrderedDict[int, deque[ModelInput]] = OrderedDict()
    long, live = job(600.0), job(60.0, live=2)
    queue(pending, long, live)
    assert is_short(live) and not is_short(job(60.0))
    assert [m.job for m in sizing.take(pending, 8, free_batching=False)] == [live, live]
    sizing.submitted(live)
    assert len(sizing.take(pending, 8, free_batching=False)) == 1  # live work likely: small calls
    assert len(sizing.take(pending, 8, free_batching=True)) == 8  # a GPU's call costs about one input


def test_interactive_batch_size_0_always_fills_calls():
    sizing = Sizing(0, HOLD, Clock())
    pending: OrderedDict[int, deque[ModelInput]] = OrderedDict()
    long, clip = job(600.0), job(16.0)
    queue(pending, long, clip)
    sizing.submitted(clip)
    assert [m.job for m in sizing.take(pending, 8, free_batching=False)] == [clip]  # take_batch's CPU rule
    assert len(sizing.take(pending, 8, free_batching=False)) == 8
