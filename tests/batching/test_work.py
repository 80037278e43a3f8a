"""Which inputs one model call takes (work.take_batch): shortest job first, nobody passed over for long,
equal options only, and a streamed job's first text after one input's decode."""

from __future__ import annotations

import time
from collections import OrderedDict, deque

import numpy as np

from service.batching.job import Job, JobOptions
from service.batching.placement import Rest
from service.batching.work import MAX_PASSED_OVER, ModelInput, take_batch
from service.intake.vad import Region
from service.intake.windows import Window

SR = 16000
JSON = JobOptions(language="en", timestamps=False)  # what a json response asks
VERBOSE = JobOptions(language="en")  # what a verbose_json response asks: timestamps


def job(windows: int, options: JobOptions = JSON) -> Job:
    planned = [Window((Region(i * 30 * SR, (i + 1) * 30 * SR),)) for i in range(windows)]
    audio = np.zeros(windows * 30 * SR, dtype=np.float32)
    return Job(audio=audio, options=options, deadline=time.monotonic() + 60, windows=planned)


def queued(*jobs: Job) -> OrderedDict[int, deque[ModelInput]]:
    """The jobs' windows queued in arrival order, as ModelLoop.enqueue_windows queues them."""
    return OrderedDict((j.id, deque(ModelInput(j, (Rest(i),)) for i in range(len(j.windows)))) for j in jobs)


def served(batch: list[ModelInput]) -> list[tuple[int, int]]:
    return [(m.job.id, m.rests[0].window) for m in batch]


def test_a_clip_that_arrives_behind_a_long_file_goes_in_the_next_call():
    long, clip = job(240), job(1)
    pending = queued(long, clip)
    batch = take_batch(pending, 8)
    assert served(batch)[0] == (clip.id, 0)  # the shortest job first ...
    assert served(batch)[1:] == [(long.id, i) for i in range(7)]  # ... and the long file fills the call
    assert clip.id not in pending and len(pending[long.id]) == 233


def test_on_a_cpu_a_clip_is_not_decoded_together_with_a_long_files_windows():
    """A CPU call's time grows with its inputs: the clip's call carries the clips, not 7 long windows."""
    long, clip, other = job(240), job(1), job(2)
    pending = queued(long, clip, other)
    assert served(take_batch(pending, 8, free_batching=False)) == [(clip.id, 0), (other.id, 0), (other.id, 1)]
    assert served(take_batch(pending, 8, free_batching=False)) == [(long.id, i) for i in range(8)]


def test_on_a_cpu_a_long_file_is_still_not_starved_by_clips():
    long = job(40)
    pending = queued(long)
    calls = []
    for _ in range(MAX_PASSED_OVER + 2):  # a new clip arrives before every call
        clip = job(1)
        pending[clip.id] = deque([ModelInput(clip, (Rest(0),))])
        pending.move_to_end(clip.id, last=False)
        calls.append([m.job.id for m in take_batch(pending, 8, free_batching=False)])
    assert [long.id in ids for ids in calls] == [False] * MAX_PASSED_OVER + [True, False]
    assert (
        calls[MAX_PASSED_OVER][0] == long.id and len(calls[MAX_PASSED_OVER]) == 8
    )  # it leads, the clip rides


def test_a_clip_with_other_options_is_not_stuck_behind_a_long_file():
    """The shortest job chooses the options: before, the oldest job did, and a two-hour file kept the model
    for every call of its 240 windows while a verbose_json clip waited."""
    long, clip = job(240, JSON), job(1, VERBOSE)
    pending = queued(long, clip)
    assert served(take_batch(pending, 8)) == [(clip.id, 0)]
    assert served(take_batch(pending, 8)) == [(long.id, i) for i in range(8)]


def test_a_long_job_passed_over_too_often_goes_first():
    long = job(40, VERBOSE)
    pending = queued(long)
    calls = []
    for _ in range(MAX_PASSED_OVER + 2):  # a new clip with other options arrives before every call
        clip = job(1, JSON)
        pending[clip.id] = deque([ModelInput(clip, (Rest(0),))])
        pending.move_to_end(clip.id, last=False)
        calls.append({m.job.id for m in take_batch(pending, 8)})
    long_calls = [i for i, ids in enumerate(calls) if long.id in ids]
    assert long_calls and long_calls[0] == MAX_PASSED_OVER  # left out MAX_PASSED_OVER calls, then served


def test_a_streamed_job_starts_with_one_input_and_grows_as_its_windows_are_sent():
    stream = job(8, JobOptions(language="en", timestamps=False, streamed=True))
    pending = queued(stream)
    sizes = []
    while pending and len(sizes) < 10:
        batch = take_batch(pending, 8)
        sizes.append(len(batch))
        for model_input in batch:  # each input decoded whole: its window is complete and sent
            stream._complete(model_input.rests[0].window)
    assert sizes == [1, 1, 2, 4]


def test_a_streamed_job_shares_its_call_with_other_requests():
    stream = job(6, JobOptions(language="en", timestamps=False, streamed=True))
    others = [job(3), job(3)]
    batch = take_batch(queued(stream, *others), 8)
    assert sum(m.job is stream for m in batch) == 1 and len(batch) == 7
