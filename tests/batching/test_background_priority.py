"""Background jobs (service/jobs) go after interactive requests in take_batch, yet get their share of the
calls (JOBS_BACKGROUND_SHARE): neither side starves the other."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from service.batching.work import background_passed_over, take_batch
from tests.batching.test_work import job, queued


def background(windows: int, share: float = 0.2):
    made = job(windows)
    made.background, made.max_passed_over = True, background_passed_over(share)
    return made


def test_share_to_calls_left_out():
    assert [background_passed_over(s) for s in (1.0, 0.5, 0.2, 0.1, 0.01)] == [0, 1, 4, 9, 99]


def test_an_interactive_request_goes_before_a_shorter_background_job():
    bg, clip = background(1), job(3)
    assert [m.job for m in take_batch(queued(bg, clip), 1)] == [clip]


@given(
    share=st.sampled_from([0.5, 0.25, 0.2, 0.1]),
    clips=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    size=st.sampled_from([1, 2]),
    free=st.booleans(),
)
@settings(max_examples=80, deadline=None)
def test_neither_side_starves(share, clips, size, free):
    """A new interactive clip arrives before every call. Each call serves an interactive job unless the
    background job has been left out of its limit of calls; so the background job gets at least one call in
    every limit + 1, and interactive jobs get every other call."""
    bg = background(200, share)
    limit = background_passed_over(share)
    pending = queued(bg, *(job(n) for n in clips))
    since_bg, interactive_calls, calls = 0, 0, 6 * (limit + 1)
    for _ in range(calls):
        pending.update(queued(job(1)))
        taken = {m.job.id for m in take_batch(pending, size, free)}
        since_bg = 0 if bg.id in taken else since_bg + 1
        assert since_bg <= limit, "the background job starved"
        interactive_calls += bool(taken - {bg.id})
        assert bg.id in pending, "the long background job ran out"
    assert interactive_calls >= calls - calls // (limit + 1) - 1, "interactive requests starved"
