"""A live item's decodes, through the same model loop as files, first in line (Job.live).

While a person speaks, the item so far is decoded every DELTA_STEP_SECONDS of new audio (FIRST_STEP_SECONDS
until two decodes agree on its first words; one decode in flight per item; none queued while a turn's final
decode waits); two successive decodes' common words go out as deltas (agreement.py). When the turn ends, the
partial decode in flight is dropped and the whole item is decoded once more: that text is `completed`.

A turn server_vad found is speech already: its decodes skip the VAD, and its audio is padded with silence, as
whisper.decode's callers pad a clip. The engine, as transcribe(), pads a short window's log-mel with zeros
instead (chosen for noisy clips, engines/openai_whisper.py); for a 4 s turn that is 26 s of an input the
model was not trained on, and the same 22 clean turns scored 13.3% WER that way against 11.7% padded with
silence (docs/performance.md, live audio). On a CPU (REALTIME_SHORT_INPUT) the padding stops at 4 s of
silence or more: a model input of 10 s at least, in steps of 2 s, not 30 s (`shortened`), as whisper.cpp's
audio_ctx; tiny.en decodes 150 whole sentences in half the time that way, at 12.7% WER against 14.2% in
30 s. A buffer the client commits without server_vad (or a turn grown past 30 s) is decoded as the same
audio sent as a file (the server's VAD trims it).

With REALTIME_CONTEXT_CHARS (0, off, by default: with tiny.en it cost accuracy, docs/performance.md), every
decode of a turn is prompted with the end of the session's text so far, after the session's own prompt, as
whisper_streaming prompts with its committed text. On a CPU, where a model call costs each input's time,
one partial waits at a time, and `Line` chooses whose: a turn's first words before later words, then the
longest waiting; a turn's first words go before other turns' final decodes too (but a final waits for one
call of them at most), which go before later words (docs/performance.md, live audio, fourth follow-up).
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from dataclasses import dataclass, field

import numpy as np

from ...audio import SAMPLE_RATE
from ...batching.job import FALLBACK_TEMPERATURES, Job, JobOptions, with_server_defaults
from ...batching.scheduler import Scheduler
from ...settings import Settings
from .agreement import LocalAgreement
from .config import SessionConfig

DELTA_STEP_SECONDS = 0.5  # new audio between two partial decodes of a turn
FIRST_STEP_SECONDS = 0.3  # ... until its first words are sent: the first delta needs two agreeing decodes
MIN_PARTIAL_SECONDS = 0.5  # a turn shorter than this is not decoded before it ends
WINDOW = 30 * SAMPLE_RATE  # one model input
MAX_PARTIAL_SECONDS = 30.0  # one model input: a longer turn (turn detection switched off mid-turn, say) waits
# for its final decode, so a partial never costs more than one window however long the client lets it grow
# Job.live, the scheduler's order (the highest first): partials of turns that have no text yet (the first
# delta needs two agreeing decodes, so each wait counts twice), then a turn's final decode, then the other
# partials; but a final decode passed over once goes first (Job.max_passed_over), so turns' first words delay
# a `completed` by one call at most
PARTIAL, FINAL, FIRST = 1, 2, 3
FINAL_PASSED_OVER = 1
# a turn's shortened model input (REALTIME_SHORT_INPUT): tiny.en looped on 6 s of speech in a 6 s input; with
# 4 s of silence or more it read 1-26 s of speech as in 30 s (docs/performance.md, live audio)
MARGIN_SECONDS, LEAST_INPUT_SECONDS = 4.0, 10
LINE_STALE_SECONDS = 0.5  # a waiting item not seen again for this long has left the line (its session ticks
# every 50 ms: api/realtime/__init__.py's POLL_SECONDS)


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
    created: float = field(default_factory=time.monotonic)

    def seconds(self) -> float:
        return ((self.end or self.start) - self.start) / SAMPLE_RATE

    def level(self) -> int:
        """Its next partial's place in line: FIRST while none of its words has been sent."""
        return PARTIAL if self.agreement.final else FIRST

    def wants_partial(self, buffer_end: int) -> bool:
        step = round((FIRST_STEP_SECONDS if self.level() == FIRST else DELTA_STEP_SECONDS) * SAMPLE_RATE)
        held = buffer_end - self.start
        fits = MIN_PARTIAL_SECONDS * SAMPLE_RATE <= held <= MAX_PARTIAL_SECONDS * SAMPLE_RATE
        return self.partial is None and fits and buffer_end - self.partial_until >= step


class Decoder:
    """Submits a session's decodes to the scheduler as live jobs, and cancels them."""

    def __init__(self, scheduler: Scheduler, settings: Settings, key_id: str | None):
        self.scheduler, self.settings, self.key_id = scheduler, settings, key_id
        self.arrived_at = time.monotonic()  # a session open before a shutdown began is still served
        self.line = line(scheduler)

    def submit(
        self, audio: np.ndarray, config: SessionConfig, live: int, server_vad: bool, context: str = ""
    ) -> Job:
        """Queue one decode (`live`: PARTIAL, FIRST or FINAL), prompted with the session's prompt and then
        `context`; APIError (429, 503) when the scheduler refuses it."""
        final = live == FINAL
        padded = server_vad and len(audio) <= WINDOW  # speech: padded with silence, VAD off (the docstring)
        length = self.input_length(len(audio)) if padded else WINDOW
        if padded:
            audio = np.concatenate([audio, np.zeros(length - len(audio), np.float32)])
        options = JobOptions(
            language=config.transcription.language,
            prompt=" ".join(p for p in (config.transcription.prompt, context) if p) or None,
            logprobs=final and config.logprobs,
            # a partial decode once, at temperature 0: a turn cut mid-word often fails the fallback checks,
            # and its retries at higher temperatures made one partial 5x slower (docs/performance.md)
            temperatures=FALLBACK_TEMPERATURES if final else (0.0,),
            timestamps=False,
            # a client's commit, or a turn over 30 s (detection switched off mid-turn): as a file's audio
            vad=False if padded or (server_vad and not final) else None,
            context_seconds=length / SAMPLE_RATE,
        )
        options = with_server_defaults(options, self.settings, self.scheduler.engine)
        seconds = len(audio) / SAMPLE_RATE
        timeout = self.settings.request_timeout + self.settings.request_timeout_per_audio_second * seconds
        job = Job.planned(
            audio,
            options,
            time.monotonic() + timeout,
            arrived_at=self.arrived_at,
            key_id=self.key_id,
            live=live,
            max_passed_over=FINAL_PASSED_OVER if final else None,
        )
        self.scheduler.submit(job)
        return job

    def input_length(self, samples: int) -> int:
        """A server_vad turn's model input, in samples: shortened() where allowed (REALTIME_SHORT_INPUT, an
        engine that shortens_context, a CPU), else a whole window."""
        batching = self.scheduler.loop.free_batching  # a GPU: the decodes of all sessions share one call
        shortens = self.settings.realtime_short_input and self.scheduler.engine.shortens_context
        return WINDOW if batching or not shortens else shortened(samples)

    def may_queue(self, item: Item) -> bool:
        """Whether the item's partial decode may be queued now. A GPU's call costs about one input's time,
        so there the partials of all sessions go in one call, and none queues while a turn's final decode
        (any session's) waits. A CPU's call costs each input's time, so one partial waits at a time, and
        the Line says whose: a turn's first words may queue beside a final decode or a later partial, and
        go first; a later partial waits until no live decode does (docs/performance.md, live audio)."""
        work, batching = self.scheduler.work, self.scheduler.loop.free_batching
        with work.lock:
            live = [inputs[0].job.live for inputs in work.pending.values() if inputs]
        if batching:
            return FINAL not in live
        level = item.level()
        mine = self.line.first(item.id, level, item.partial_sent or item.created)
        return mine and all(waiting < level for waiting in live)

    def cancel(self, job: Job | None, reason: str = "disconnect") -> None:
        """Drop a queued decode: the client is gone ("disconnect"), or a newer decode replaces it."""
        if job is not None and not job.done.is_set():
            self.scheduler.cancel(job, reason)


class Line:
    """The live items of one worker that wait to queue a partial decode on a CPU, in the order they go: a
    turn's first words before later words (the first delta needs two agreeing decodes), then the item whose
    last decode (or whose turn's start) is oldest, so that sessions take turns fairly."""

    def __init__(self):
        self.lock = threading.Lock()
        self.waiting: dict[str, tuple[int, float, float]] = {}  # item id -> level, since, last seen

    def first(self, item_id: str, level: int, since: float) -> bool:
        """Stand in line (or stay); whether the item is first in it."""
        now = time.monotonic()
        with self.lock:
            self.waiting[item_id] = (level, since, now)
            for other in [k for k, v in self.waiting.items() if now - v[2] > LINE_STALE_SECONDS]:
                del self.waiting[other]
            best = min(self.waiting, key=lambda k: (-self.waiting[k][0], self.waiting[k][1]))
        return best == item_id

    def leave(self, item_id: str) -> None:
        with self.lock:
            self.waiting.pop(item_id, None)


_lines: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lines_lock = threading.Lock()


def line(scheduler) -> Line:
    """The scheduler's one Line, shared by its sessions."""
    with _lines_lock:
        return _lines.setdefault(scheduler, Line())


def shortened(samples: int) -> int:
    """A model input for `samples` of speech: at least MARGIN_SECONDS of silence after it, in steps of 2 s,
    LEAST_INPUT_SECONDS at the least, a whole window at most."""
    seconds = 2 * math.ceil((samples / SAMPLE_RATE + MARGIN_SECONDS) / 2)
    return min(WINDOW, max(LEAST_INPUT_SECONDS, seconds) * SAMPLE_RATE)


def context_tail(text: str, chars: int) -> str:
    """The last `chars` characters of `text`, from a word's start: what a turn's decodes are prompted with."""
    text = text.strip()
    if chars <= 0 or not text:
        return ""
    if len(text) <= chars:
        return text
    cut = text[-chars:]
    if text[-chars - 1] == " ":  # the cut falls between words
        return cut.strip()
    return cut.split(" ", 1)[1].strip() if " " in cut else ""  # a word cut in two is left out


def text(job: Job) -> str:
    return job.transcript().text


def logprobs(job: Job) -> list[dict]:
    """The item's text tokens as OpenAI's LogProbProperties."""
    pairs = [p for s in job.transcript().segments for p in (s.logprobs or ())]
    return [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in pairs]
