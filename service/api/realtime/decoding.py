"""A live item's decodes, through the same model loop as files, first in line (Job.live).

While a person speaks, the item so far is decoded every DELTA_STEP_SECONDS of new audio (one decode in
flight per item; none queued while a turn's final decode, or on a CPU any live decode, waits); two
successive decodes' common words go out as deltas (agreement.py). When the turn ends, the partial decode in
flight is dropped and the whole item is decoded once more, with the options a file's decode of the same
audio gets (the server's VAD included): that text is `completed`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ...audio import SAMPLE_RATE
from ...batching.job import FALLBACK_TEMPERATURES, Job, JobOptions, with_server_defaults
from ...batching.scheduler import Scheduler
from ...settings import Settings
from .agreement import LocalAgreement
from .config import SessionConfig

DELTA_STEP_SECONDS = 0.5  # new audio between two partial decodes of a turn
MIN_PARTIAL_SECONDS = 0.5  # a turn shorter than this is not decoded before it ends
MAX_PARTIAL_SECONDS = 30.0  # one model input: a longer turn (turn detection switched off mid-turn, say) waits
# for its final decode, so a partial never costs more than one window however long the client lets it grow
PARTIAL, FINAL = 1, 2  # Job.live: the scheduler serves a turn's final decode before partial ones


@dataclass
class Item:
    """One committed (or, while someone speaks, growing) user audio item."""

    id: str
    previous_id: str | None
    start: int  # session samples
    end: int | None = None  # once committed
    agreement: LocalAgreement = field(default_factory=LocalAgreement)
    partial: Job | None = None  # the partial decode in flight
    partial_until: int = 0  # buffer end the last partial decode saw
    partial_sent: float = 0.0  # time.monotonic() when it was queued
    final: Job | None = None
    stopped_at: float = 0.0  # time.monotonic() when the turn ended: finalisation latency starts here

    def seconds(self) -> float:
        return ((self.end or self.start) - self.start) / SAMPLE_RATE

    def wants_partial(self, buffer_end: int) -> bool:
        step = DELTA_STEP_SECONDS * SAMPLE_RATE
        held = buffer_end - self.start
        fits = MIN_PARTIAL_SECONDS * SAMPLE_RATE <= held <= MAX_PARTIAL_SECONDS * SAMPLE_RATE
        return self.partial is None and fits and buffer_end - self.partial_until >= step


class Decoder:
    """Submits a session's decodes to the scheduler as live jobs, and cancels them."""

    def __init__(self, scheduler: Scheduler, settings: Settings, key_id: str | None):
        self.scheduler, self.settings, self.key_id = scheduler, settings, key_id
        self.arrived_at = time.monotonic()  # a session open before a shutdown began is still served

    def submit(self, audio: np.ndarray, config: SessionConfig, final: bool, server_vad: bool) -> Job:
        """Queue one decode; APIError (429, 503) when the scheduler refuses it."""
        options = JobOptions(
            language=config.transcription.language,
            prompt=config.transcription.prompt,
            logprobs=final and config.logprobs,
            # a partial decode once, at temperature 0: a turn cut mid-word often fails the fallback checks,
            # and its retries at higher temperatures made one partial 5x slower (docs/performance.md)
            temperatures=FALLBACK_TEMPERATURES if final else (0.0,),
            timestamps=False,
            # a partial decode is of speech (server_vad found it) cut mid-word: decoded as it is; a final one
            # as the same audio sent as a file (VAD trims the turn's padding), so both give the same text
            vad=False if server_vad and not final else None,
        )
        options = with_server_defaults(options, self.settings, self.scheduler.engine.is_multilingual)
        seconds = len(audio) / SAMPLE_RATE
        timeout = self.settings.request_timeout + self.settings.request_timeout_per_audio_second * seconds
        job = Job.planned(
            audio,
            options,
            time.monotonic() + timeout,
            arrived_at=self.arrived_at,
            key_id=self.key_id,
            live=FINAL if final else PARTIAL,
        )
        self.scheduler.submit(job)
        return job

    def holds_partials(self) -> bool:
        """No partial decode is queued while a turn's final decode (any session's) waits for the model; on a
        CPU, while any live decode waits either. A GPU's call costs about one input's time, so there the
        partials of all sessions go in one call; a CPU's call costs each input's time, and one-input calls
        in turn decode fresher audio (docs/performance.md, live audio)."""
        work, batching = self.scheduler.work, self.scheduler.loop.free_batching
        with work.lock:
            live = [inputs[0].job.live for inputs in work.pending.values() if inputs]
        return FINAL in live or (not batching and PARTIAL in live)

    def cancel(self, job: Job | None, reason: str = "disconnect") -> None:
        """Drop a queued decode: the client is gone ("disconnect"), or a newer decode replaces it."""
        if job is not None and not job.done.is_set():
            self.scheduler.cancel(job, reason)


def text(job: Job) -> str:
    return job.transcript().text


def logprobs(job: Job) -> list[dict]:
    """The item's text tokens as OpenAI's LogProbProperties."""
    pairs = [p for s in job.transcript().segments for p in (s.logprobs or ())]
    return [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in pairs]
