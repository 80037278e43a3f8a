"""Per-key fair share of the queue: KeyShares alone, then inside the real Scheduler (no inference needed)."""

from __future__ import annotations

import numpy as np
import pytest

from service.batching.fairshare import KeyShares
from service.batching.job import Job, JobOptions
from service.batching.scheduler import Health, Scheduler
from service.engines.openai_whisper import OpenAIWhisperEngine
from service.errors import QueueFull
from service.settings import Settings


def test_a_key_gets_its_share_of_requests_and_no_more():
    shares = KeyShares(0.5, 0.5)
    for _ in range(4):
        assert shares.over_share("a", 10, max_requests=8, max_seconds=1000) is None
        shares.add("a", 10)
    assert "4 requests" in shares.over_share("a", 10, 8, 1000)
    assert shares.over_share("b", 10, 8, 1000) is None  # another key is untouched
    shares.release("a", 10)
    assert shares.over_share("a", 10, 8, 1000) is None
    assert shares.usage("a").requests == 3


def test_a_key_gets_its_share_of_audio_seconds_but_always_one_job():
    shares = KeyShares(1.0, 0.25)
    assert shares.over_share("a", 900, max_requests=8, max_seconds=1000) is None  # nothing queued: any length
    shares.add("a", 900)
    assert "900 s of audio" in shares.over_share("a", 1, 8, 1000)
    shares.release("a", 900)
    assert shares.usage("a").requests == 0 and shares.usage("a").seconds == 0


def test_requests_without_a_key_are_not_shared_out():
    shares = KeyShares(0.1, 0.1)
    for _ in range(10):
        shares.add(None, 100)
    assert shares.over_share(None, 100, 8, 10) is None


def test_check_raises_429_key_share_with_retry_after_from_the_keys_backlog():
    shares = KeyShares(0.5, 1.0)
    shares.add("a", 30)
    with pytest.raises(QueueFull) as caught:
        shares.check("a", 5, 2, 1000, retry_after=lambda queued: queued / 10)
    assert caught.value.status == 429 and caught.value.code == "key_share"
    assert caught.value.retry_after == 3  # the key's own 30 s at 10 audio-s/s


def test_the_share_rounds_down_but_never_below_one_request():
    shares = KeyShares(0.3, 1.0)
    shares.add("a", 1)
    assert shares.over_share("a", 1, max_requests=2, max_seconds=100) is not None  # floor(0.6) -> 1


def job(seconds: float, key: str | None) -> Job:
    audio = np.zeros(int(seconds * 16000), np.float32)  # one window (VAD off): it waits in the queue
    return Job.planned(audio, JobOptions(language="en", vad=False), float("inf"), key_id=key)


def test_the_scheduler_refuses_a_key_over_its_share_and_admits_another(checkpoint):
    engine = OpenAIWhisperEngine(Settings(whisper_model=str(checkpoint), whisper_device="cpu"))
    scheduler = Scheduler(engine, engine.settings.replace(queue_max_requests=8, key_max_share=0.5))
    scheduler.health = Health.READY  # admission only: the inference thread never starts
    flooded = [job(1, "aaaa") for _ in range(4)]
    for j in flooded:
        scheduler.submit(j)
    with pytest.raises(QueueFull) as caught:
        scheduler.submit(job(1, "aaaa"))
    assert caught.value.code == "key_share"
    with pytest.raises(QueueFull):
        scheduler.check_admission(key_id="aaaa")  # refused before decoding, too
    other = job(1, "bbbb")
    scheduler.submit(other)  # the other key still gets in
    scheduler.cancel(flooded[0], "disconnect")  # a finished job gives its key's share back
    scheduler.submit(job(1, "aaaa"))
    shares = scheduler.admission.shares
    assert shares.usage("aaaa").requests == 4 and shares.usage("bbbb").requests == 1
