"""A request's work as the scheduler sees it: what it asks (`JobOptions`) and how far it got (`Job`).

A job owns its audio, the windows intake planned for it, and each window's segments as they come back.
A window may take several decodes: when one stops before the speech in the window does (the model emitted
end-of-text early, or an unfinished segment was dropped), the window's rest, from the last timestamp on, is
decoded again, as openai-whisper's transcribe() moves `seek`.

Whisper usually stops a few seconds early in a full window: it leaves a last sentence for the next window,
as it was trained to. Decoding each such rest alone would cost a whole 30 s encoder pass for 3-5 s of
speech, so the rests of a job's windows are packed, in order, into shared inputs of at most 30 s; where
their segments go is decided in placement.py.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np

from ..audio import HOP_LENGTH, SAMPLE_RATE
from ..engines.base import DecodeOptions, Engine, Thresholds, WindowResult
from ..errors import APIError
from ..intake.vad import Region, VadParams
from ..intake.windows import SPEECH_LEAD_SECONDS, Window, plan
from ..settings import Settings
from ..transcript import Segment, Transcript
from .placement import MIN_SPEECH_LEFT_SECONDS, Rest, pack, settle
from .speech_map import held_to_speech

FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # openai-whisper's ladder for temperature=0


@dataclass(frozen=True)
class JobOptions:
    """Everything a request asks of the decoder; `decode_options()` gives one model call's share."""

    task: str = "transcribe"
    language: str | None = None  # None: detect on the first window
    temperatures: tuple[float, ...] = FALLBACK_TEMPERATURES
    prompt: str | None = None
    hotwords: str | None = None  # every window's, whatever prompt_first_window_only says
    beam_size: int | None = None
    best_of: int | None = None
    word_timestamps: bool = False
    thresholds: Thresholds = Thresholds()
    sequential: bool | None = None  # transcribe(): each window conditioned on the last; None: DECODE_MODE
    condition_on_previous_text: bool = False
    detect_only: bool = False  # /detect-language: stop after language detection
    # VadParams: these; True: the server's VAD_* params; False: decode everything, silence included; None: VAD
    vad: VadParams | bool | None = None
    prompt_first_window_only: bool = False  # whisper-asr-webservice's initial_prompt: the first window only
    logprobs: bool = False  # include[]=logprobs: each text token's log-probability
    streamed: bool = False  # stream=true: windows are sent as they finish, so rests are not held back
    timestamps: bool = True  # False: the response has no times; decoded untimed (UNTIMED_DECODING)
    context_seconds: float = 30.0  # the model input's length (a live turn's decodes: api/realtime/decoding)

    def decode_options(self, step: int, language: str | None, window: int = 0) -> DecodeOptions:
        prompt = None if self.prompt_first_window_only and window > 0 else self.prompt
        return DecodeOptions(
            task=self.task,
            language=language,
            temperature=self.temperatures[step],
            prompt=prompt,
            hotwords=self.hotwords,
            beam_size=self.beam_size,
            best_of=self.best_of,
            word_timestamps=self.word_timestamps,
            logprobs=self.logprobs,
            timestamps=self.timestamps,
            context_seconds=self.context_seconds,
        )


def with_server_defaults(options: JobOptions, settings: Settings, engine: Engine) -> JobOptions:
    """What the request left open, from the server's settings: sequential decoding (DECODE_MODE), VAD (VAD,
    VAD_*), untimed decoding and the beam width (UNTIMED_DECODING, UNTIMED_BEAM_SIZE, BEAM_SIZE, else the
    model's engine's own); and English for an English-only model. Every API face's requests pass through
    here (service.api.pipeline.submit), and only here are server settings applied to a request."""
    vad = settings.vad if options.vad is None else options.vad
    if vad is True:
        vad = VadParams(settings.vad_threshold, settings.vad_min_silence_ms, settings.vad_speech_pad_ms)
    sequential = options.sequential
    if sequential is None:
        sequential = settings.decode_mode == "sequential"
    # timed for transcribe(), words, and greedy (untimed greedy loses words on clips: docs/performance.md)
    timestamps = options.timestamps or options.word_timestamps or sequential or not settings.untimed_decoding
    timestamps = timestamps or (options.beam_size or untimed_beam(settings, engine)) <= 1
    beam_size = options.beam_size
    if beam_size is None:
        default = settings.beam_size if timestamps else untimed_beam(settings, engine)
        beam_size = default if default > 1 else None
    language = options.language or (None if engine.is_multilingual else "en")  # English-only: English
    return replace(
        options, vad=vad, beam_size=beam_size, sequential=sequential, language=language, timestamps=timestamps
    )


def untimed_beam(settings: Settings, engine: Engine) -> int:
    """UNTIMED_BEAM_SIZE, or the engine class's own (Engine.untimed_beam_size), else BEAM_SIZE."""
    return settings.untimed_beam_size or engine.untimed_beam_size or settings.beam_size


_ids = itertools.count(1)


@dataclass(eq=False)
class Job:
    audio: np.ndarray
    options: JobOptions
    deadline: float  # time.monotonic() after which the job is abandoned
    windows: list[Window] = field(default_factory=list)
    speech: list[Region] = field(default_factory=list)  # unpadded speech regions; everything without VAD
    id: int = field(default_factory=lambda: next(_ids))
    key_id: str | None = None  # its API key's id (never the key), for the per-key share of the queue
    language: str | None = None
    language_probs: dict[str, float] | None = None
    arrived_at: float | None = None  # when its HTTP request arrived (time.monotonic())
    accepted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None  # first model call that included this job
    inference_seconds: float = 0.0  # model time of the batches this job took part in
    sequential_segments: list[Segment] | None = None  # sequential mode: the whole file's segments
    error: APIError | None = None
    cancelled: str | None = None  # reason, once cancelled
    done: threading.Event = field(default_factory=threading.Event)
    events: queue.Queue = field(default_factory=queue.Queue)  # ("window", i) in order, then ("done", None)
    segments: list[list[Segment]] = field(default_factory=list)  # per window, file times
    complete: list[bool] = field(default_factory=list)  # per window
    rests: list[Rest] = field(default_factory=list)  # rests of windows waiting to be packed into inputs
    passed_over: int = 0  # model calls in a row that left this job's queued inputs out (work.take_batch)
    live: int = 0  # a live session's decode (api/realtime/decoding.py's levels), first in line, highest first
    background: bool = False  # a stored job's (service/jobs): after interactive requests, outside admission
    max_passed_over: int | None = None  # calls it may be left out of in a row; None: work.MAX_PASSED_OVER
    _next_event: int = 0

    def __post_init__(self):
        self.segments = [[] for _ in self.windows]
        self.complete = [False] * len(self.windows)

    @classmethod
    def planned(cls, audio: np.ndarray, options: JobOptions, deadline: float, **fields) -> Job:
        """A job whose windows intake planned: speech regions (VAD) packed into windows."""
        vad = options.vad if isinstance(options.vad, VadParams) and not options.sequential else None
        windows, speech = plan(audio, vad, map_speech=not options.sequential)
        return cls(audio=audio, options=options, deadline=deadline, windows=windows, speech=speech, **fields)

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    @property
    def queue_wait(self) -> float:
        return (self.started_at or time.monotonic()) - self.accepted_at

    def detection_audio(self) -> np.ndarray:
        """What language detection listens to: the first window's speech, else the first 30 s."""
        return self.input_audio((Rest(0),)) if self.windows else self.audio[: 30 * SAMPLE_RATE]

    def input_window(self, rests: tuple[Rest, ...]) -> Window:
        """The rests' regions of the file, concatenated in order: what one model input holds."""
        return Window(
            tuple(r for rest in rests for r in self.windows[rest.window].after(rest.offset).regions)
        )

    def input_audio(self, rests: tuple[Rest, ...]) -> np.ndarray:
        return self.input_window(rests).audio(self.audio)

    def input_cap(self) -> int | None:
        """Inputs of this job one model call may take: a streamed job's first call decodes one input, then
        as many as it has windows sent (1, 1, 2, 4, ...), so its first text comes after one input's decode
        and the rest still share batches; None (no cap) for the others."""
        return max(1, self._next_event) if self.options.streamed else None

    def rest_seconds(self, rest: Rest) -> float:
        return max(0.0, self.windows[rest.window].seconds - rest.offset)

    # -- results -------------------------------------------------------------------------------------------
    def deliver(self, rests: tuple[Rest, ...], result: WindowResult) -> None:
        """Take one input's result (placement.settle): segments go to their windows in file times, what the
        decode did not cover and still holds speech goes to `rests`; a window with nothing left is
        complete, and windows complete in order are announced on `events`."""
        bounds = list(itertools.accumulate((self.rest_seconds(r) for r in rests), initial=0.0))
        silent = result.is_silence(self.options.thresholds)
        # The model's end of text does not end a rest: Whisper ends a window early before a sentence that
        # follows a long silence in it (the sentence was lost, issue #30); what is left is decoded again when
        # it holds speech (`_speech_after`, VAD's map, also made without VAD), not when it is silence
        # (decoding silence again invented words: ' you', ' ...', issue #27)
        settled = settle(rests, bounds, result.segments, result.consumed, silent, self._speech_after)
        window = self.input_window(rests)
        for index, segment in settled.placed:
            where = self._to_file(window, bounds[index], bounds[index + 1], segment)
            self.segments[rests[index].window].append(where)
        self.rests += [self._at_speech(rest) for rest in settled.rests]
        for done in settled.complete:
            self._complete(done)

    def pack(self) -> list[tuple[Rest, ...]]:
        """Take the rests, packed in window order into inputs of at most 30 s."""
        inputs = pack(self.rests, self.rest_seconds)
        self.rests = []
        return inputs

    def rests_seconds(self) -> float:
        return sum(self.rest_seconds(r) for r in self.rests)

    def _complete(self, window: int) -> None:
        self.complete[window] = True
        while self._next_event < len(self.windows) and self.complete[self._next_event]:
            self.events.put(("window", self._next_event))
            self._next_event += 1

    def finished_windows(self) -> bool:
        return all(self.complete)

    def undone_windows(self) -> list[int]:
        """Windows not complete: all of them, but a job resumed from a checkpoint (service/jobs/)."""
        return [i for i, done in enumerate(self.complete) if not done]

    def _speech_after(self, rest: Rest) -> bool:
        """Whether the rest holds at least MIN_SPEECH_LEFT_SECONDS of speech."""
        left = 0
        for region in self.windows[rest.window].after(rest.offset).regions:
            left += sum(max(0, min(region.end, r.end) - max(region.start, r.start)) for r in self.speech)
        return left >= MIN_SPEECH_LEFT_SECONDS * SAMPLE_RATE

    def _at_speech(self, rest: Rest) -> Rest:
        """The rest from its first speech on (less SPEECH_LEAD_SECONDS): the silence before it is not decoded
        again, as Whisper writes ' .' or ' you' into a long silence and may never reach the speech after it
        (issue #30: a sentence 18 s after the model stopped, in the same window, was lost)."""
        position = 0
        for region in self.windows[rest.window].after(rest.offset).regions:
            starts = [
                max(region.start, r.start)
                for r in self.speech
                if r.end > region.start and r.start < region.end
            ]
            if starts:
                lead = (position + min(starts) - region.start) / SAMPLE_RATE - SPEECH_LEAD_SECONDS
                return replace(rest, offset=rest.offset + max(0.0, lead))
            position += region.end - region.start
        return rest

    def _to_file(self, window: Window, rest_start: float, rest_end: float, s: Segment) -> Segment:
        """A segment with input times -> file times, kept within its rest; `seek` is where the rest starts."""

        def times(start: float, end: float) -> tuple[float, float]:
            start = min(max(start, rest_start), rest_end)  # the rest's end is a seam: map it as an end
            first = window.to_file_time(start, is_end=start >= rest_end)
            return first, max(first, window.to_file_time(min(max(end, rest_start), rest_end), is_end=True))

        words = None
        if s.words is not None:
            words = tuple(replace(x, **dict(zip(("start", "end"), times(x.start, x.end)))) for x in s.words)
        start, end = times(s.start, s.end)
        seek = round(window.to_file_time(rest_start) * SAMPLE_RATE) // HOP_LENGTH
        return held_to_speech(replace(s, start=start, end=end, words=words, seek=seek), self.speech)

    def window_segments(self, index: int) -> list[Segment]:
        if self.sequential_segments is not None:
            return self.sequential_segments
        return self.segments[index]

    def transcript(self) -> Transcript:
        if self.sequential_segments is not None:
            segments = self.sequential_segments
        else:
            segments = [s for window in self.segments for s in window]
        return Transcript(self.language or "", self.duration, tuple(segments))
