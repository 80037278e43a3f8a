"""A job's checkpoint (service/jobs/checkpoint.py): the windows finished in order come back exactly, and
only into a job whose audio planned the same windows; the model loop then queues only the others."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from service.batching.work import Work
from service.jobs import checkpoint
from service.transcript import Segment, Word
from tests.batching.test_work import job

finite = st.floats(-1e6, 1e6, allow_nan=False)
words = st.lists(
    st.builds(Word, st.text(max_size=8), finite, finite, finite, st.none() | st.text(max_size=3))
)
segments = st.builds(
    Segment, finite, finite, st.text(max_size=30), st.lists(st.integers(0, 51865)).map(tuple),
    st.none() | words.map(tuple), finite, finite, finite, finite, st.integers(0, 10**6),
    st.none() | st.lists(st.tuples(st.text(max_size=5), finite)).map(tuple), st.none() | st.text(max_size=3),
)  # fmt: skip


@given(st.lists(st.lists(segments, max_size=3), min_size=4, max_size=4), st.integers(1, 4))
@settings(max_examples=40, deadline=None)
def test_finished_windows_come_back_exactly(per_window, done):
    running = job(4)
    running.segments = [list(s) for s in per_window]
    running.language = "en"
    for i in range(done):
        running._complete(i)
    count, text = checkpoint.saved(running)
    assert count == done
    fresh = job(4)
    assert checkpoint.restore(fresh, text)
    assert fresh.segments[:done] == running.segments[:done] and fresh.complete == running.complete
    assert fresh.options.language == "en" and fresh._next_event == done


def test_nothing_to_save_before_the_first_window_and_no_restore_into_other_windows():
    running = job(3)
    assert checkpoint.saved(running) is None
    running._complete(0)
    _, text = checkpoint.saved(running)
    other = job(2)  # the audio planned into other windows: start over
    assert not checkpoint.restore(other, text) and not any(other.complete)
    assert not checkpoint.restore(job(3), None)


def test_the_model_loop_queues_only_the_windows_after_the_checkpoint():
    from service.batching.model_loop import ModelLoop

    resumed = job(4)
    resumed._complete(0)
    resumed._complete(1)
    work, finished = Work(), []
    loop = ModelLoop.__new__(ModelLoop)  # only its queueing, no engine
    loop.work, loop._finish = work, lambda j, error: finished.append(j)
    loop.enqueue_windows(resumed)
    assert [m.rests[0].window for m in work.pending[resumed.id]] == [2, 3] and not finished
    done = job(1)
    done._complete(0)
    loop.enqueue_windows(done)
    assert finished == [done] and done.id not in work.pending
