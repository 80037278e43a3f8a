"""The scheduler in-process with the real openai-whisper engine: OOM splitting, fairness, admission."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from service.batching.job import Job, JobOptions
from service.batching.scheduler import Scheduler
from service.engines.openai_whisper import OpenAIWhisperEngine
from service.errors import QueueFull, Unavailable
from service.settings import Settings

GREEDY = JobOptions(language="en", temperatures=(0.0,), vad=False)  # noise input: VAD would drop it all


class OutOfMemoryAbove(OpenAIWhisperEngine):
    """The real engine, except that a batch larger than `fits` raises CUDA's out-of-memory error,
    as a GPU would. (No GPU here: this is the narrowest seam at which OOM can be produced.)"""

    fits = 2
    calls: list[int]

    def decode(self, windows, options):
        self.calls.append(len(windows))
        if len(windows) > self.fits:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().decode(windows, options)


def started(engine, **settings) -> Scheduler:
    """The scheduler with the engine's settings, changed as given (BATCH_SIZE=batch_size, ...)."""
    scheduler = Scheduler(engine, engine.settings.replace(warmup=False, **settings))
    scheduler.start()
    deadline = time.monotonic() + 60
    while not scheduler.ready:
        assert time.monotonic() < deadline and scheduler.health.value != "failed", scheduler.reason
        time.sleep(0.05)
    return scheduler


def job(seconds: float, options: JobOptions = GREEDY) -> Job:
    audio = (np.random.default_rng(0).standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)
    return Job.planned(audio, options, time.monotonic() + 300)


def test_out_of_memory_splits_the_batch_and_every_window_is_decoded(checkpoint):
    engine = OutOfMemoryAbove(Settings(whisper_model=str(checkpoint), whisper_device="cpu"))
    engine.calls = []
    scheduler = started(engine, batch_size=8)
    jobs = [job(60), job(40)]  # 2 + 2 windows of long files (a clip's call holds clips only: sizing.py)
    for j in jobs:
        scheduler.submit(j)
    for j in jobs:
        scheduler.wait(j)
    assert all(all(j.complete) for j in jobs)
    assert engine.calls[0] > 2 and max(engine.calls[1:]) <= 2  # the first, too-big batch was halved
    assert scheduler.batch_size == 2  # and later batches start at the size that fits


def test_a_window_that_alone_does_not_fit_fails_cleanly_and_the_worker_lives_on(checkpoint):
    engine = OutOfMemoryAbove(Settings(whisper_model=str(checkpoint), whisper_device="cpu"))
    engine.calls, engine.fits = [], 0
    scheduler = started(engine, batch_size=4)
    doomed = job(5)
    scheduler.submit(doomed)
    with pytest.raises(Unavailable) as caught:
        scheduler.wait(doomed)
    assert caught.value.status == 503
    engine.fits = 4  # memory is free again: the next request succeeds on the same scheduler
    healthy = job(5)
    scheduler.submit(healthy)
    scheduler.wait(healthy)
    assert all(healthy.complete)


def test_long_file_does_not_starve_a_short_one(checkpoint):
    engine = OpenAIWhisperEngine(Settings(whisper_model=str(checkpoint), whisper_device="cpu"))
    scheduler = started(engine, batch_size=2)
    long_job, short_job = job(300), job(5)  # 10+ windows, then 1
    scheduler.submit(long_job)
    scheduler.submit(short_job)
    scheduler.wait(short_job)
    finished = sum(long_job.complete)
    assert finished < len(long_job.complete) // 2  # the short job did not wait for the whole file
    scheduler.wait(long_job)


def test_admission_is_bounded_by_audio_seconds_but_always_takes_one_job(checkpoint):
    engine = OpenAIWhisperEngine(Settings(whisper_model=str(checkpoint), whisper_device="cpu"))
    scheduler = started(engine, batch_size=1, queue_max_seconds=60)
    big = job(90)  # larger than the bound: accepted because nothing else is queued
    scheduler.submit(big)
    with pytest.raises(QueueFull) as caught:
        scheduler.submit(job(5))
    assert caught.value.status == 429 and caught.value.retry_after >= 1
    scheduler.wait(big)
    after = job(5)
    scheduler.submit(after)  # the budget came back when the big job finished
    scheduler.wait(after)


class Counting(OpenAIWhisperEngine):
    """The real engine, recording the size of each model call."""

    calls: list[int]
    starts: list[float]  # time.monotonic() as each model call begins

    def decode(self, windows, options):
        self.calls.append(len(windows))
        self.starts = [*getattr(self, "starts", []), time.monotonic()]
        return super().decode(windows, options)


def test_a_small_batch_waits_for_requests_still_decoding_their_audio(checkpoint):
    """Requests sent together share one model call although their audio is decoded one after another."""
    engine = Counting(Settings(whisper_model=str(checkpoint), whisper_device="cpu"))
    engine.calls = []
    scheduler = started(engine, batch_size=8, batch_wait_ms=30_000)
    jobs = [job(5) for _ in range(3)]
    for _ in jobs:
        scheduler.arrival(+1)  # all three admitted; their audio is being decoded
    for j in jobs:
        time.sleep(0.3)  # each decode takes a while; the scheduler must not start on the first alone
        scheduler.submit(j)
        scheduler.arrival(-1)
    for j in jobs:
        scheduler.wait(j)
    assert engine.calls == [3]


def test_the_wait_is_bounded_and_nobody_waits_when_nothing_is_arriving(checkpoint):
    engine = Counting(Settings(whisper_model=str(checkpoint), whisper_device="cpu"))
    engine.calls = []
    scheduler = started(engine, batch_size=8, batch_wait_ms=10_000)
    scheduler.arrival(+1)  # admitted, then (say) its ffmpeg hangs: it never arrives
    began = time.monotonic()
    alone = job(5)
    scheduler.submit(alone)
    scheduler.wait(alone)
    waited = time.monotonic() - began
    assert engine.calls == [1] and waited >= 10.0  # held for batch_wait, and not for ever
    scheduler.arrival(-1)  # it failed: nothing arrives any more, so the next request is not held
    began = time.monotonic()
    second = job(5)
    scheduler.submit(second)
    scheduler.wait(second)
    assert engine.calls == [1, 1]
    # not held: its model call began without the 10 s wait (measured to the call's start, so the decode's own
    # speed does not count; half the wait is margin for a busy machine's thread wake-up)
    assert engine.starts[1] - began < waited / 2
