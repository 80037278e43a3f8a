"""A request's work as the scheduler sees it: what it asks (`JobOptions`) and how far it got (`Job`).

A job owns its audio, the windows intake planned for it, and each window's segments as they come back.
A window may be decoded in several pieces: when a decode stops before the speech in the window does (the
model emitted end-of-text early, or an unfinished segment was dropped), the rest of the window, from the
last timestamp on, is decoded again, as openai-whisper's transcribe() moves `seek`.

Whisper usually stops a few seconds early in a full window: it leaves a last sentence for the next window,
as it was trained to. Decoding each such rest alone would cost a whole 30 s encoder pass for 3-5 s of
speech, so the rests of a job's windows are packed, in order, into shared pieces of at most 30 s (`Part`,
`pack`). A segment's text goes to the window whose rest it overlaps most; one that runs more than
SEAM_SLACK_SECONDS into another rest cannot be placed, so the piece counts as covered up to its start only.
A rest that makes no progress while packed is decoded alone next, so packing never ends a window early.
"""

from __future__ import annotations

import bisect
import itertools
import queue
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np

from ..audio import HOP_LENGTH, SAMPLE_RATE, WINDOW_SECONDS
from ..engines.base import DecodeOptions, Thresholds, WindowResult
from ..errors import APIError
from ..intake.vad import Region, VadParams
from ..intake.windows import Window, plan
from ..settings import Settings
from ..transcript import Segment, Transcript

FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # openai-whisper's ladder for temperature=0
MIN_PROGRESS_SECONDS = 1.0  # a piece that covered less than this is final (no endless re-decoding)
MIN_SPEECH_LEFT_SECONDS = (
    1.0  # speech (VAD) left after a piece's last timestamp worth another decode: less is
)
# usually the tail of the same words (Silero ends regions late, Whisper's last stamp is early), and decoding
# a tail alone invents words ("you")
SEAM_SLACK_SECONDS = 0.5  # how far a segment may run into the next rest of a packed piece


@dataclass(frozen=True)
class Part:
    """A window's audio from `offset` seconds to its end; a piece the model decodes is one or more parts."""

    window: int
    offset: float = 0.0
    alone: bool = False  # decode it as a piece of its own (it made no progress packed with others)


@dataclass(frozen=True)
class JobOptions:
    """Everything a request asks of the decoder; `decode_options()` gives one model call's share."""

    task: str = "transcribe"
    language: str | None = None  # None: detect on the first window
    temperatures: tuple[float, ...] = FALLBACK_TEMPERATURES
    prompt: str | None = None
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

    def decode_options(self, step: int, language: str | None, window: int = 0) -> DecodeOptions:
        prompt = None if self.prompt_first_window_only and window > 0 else self.prompt
        return DecodeOptions(
            task=self.task, language=language, temperature=self.temperatures[step], prompt=prompt,
            beam_size=self.beam_size, best_of=self.best_of, word_timestamps=self.word_timestamps,
            logprobs=self.logprobs,
        )  # fmt: skip


def with_server_defaults(options: JobOptions, settings: Settings, multilingual: bool = True) -> JobOptions:
    """What the request left open, from the server's settings: sequential decoding (DECODE_MODE), VAD (VAD,
    VAD_*), the beam width (BEAM_SIZE); and English for an English-only model. Every API face's requests
    pass through here (service.api.jobs.submit), and only here are server settings applied to a request."""
    vad = settings.vad if options.vad is None else options.vad
    if vad is True:
        vad = VadParams(settings.vad_threshold, settings.vad_min_silence_ms, settings.vad_speech_pad_ms)
    beam_size = options.beam_size
    if beam_size is None and settings.beam_size > 1:
        beam_size = settings.beam_size
    sequential = options.sequential
    if sequential is None:
        sequential = settings.decode_mode == "sequential"
    language = options.language or (None if multilingual else "en")  # an English-only model speaks English
    return replace(options, vad=vad, beam_size=beam_size, sequential=sequential, language=language)


_ids = itertools.count(1)


def _owner(bounds: list[float], start: float, end: float) -> int:
    """The part (between consecutive `bounds`) a segment from `start` to `end` overlaps most."""
    if end <= start:
        return min(max(bisect.bisect_right(bounds, start) - 1, 0), len(bounds) - 2)
    overlaps = [min(end, b) - max(start, a) for a, b in zip(bounds, bounds[1:])]
    return overlaps.index(max(overlaps))


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
    leftovers: list[Part] = field(default_factory=list)  # rests of windows waiting to be packed into pieces
    _next_event: int = 0

    def __post_init__(self):
        self.segments = [[] for _ in self.windows]
        self.complete = [False] * len(self.windows)

    @classmethod
    def planned(cls, audio: np.ndarray, options: JobOptions, deadline: float, **fields) -> Job:
        """A job whose windows intake planned: speech regions (VAD) packed into windows."""
        vad = options.vad if isinstance(options.vad, VadParams) and not options.sequential else None
        windows, speech = plan(audio, vad)
        return cls(audio=audio, options=options, deadline=deadline, windows=windows, speech=speech, **fields)

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    @property
    def queue_wait(self) -> float:
        return (self.started_at or time.monotonic()) - self.accepted_at

    def detection_audio(self) -> np.ndarray:
        """What language detection listens to: the first window's speech, else the first 30 s."""
        return self.piece_audio((Part(0),)) if self.windows else self.audio[: 30 * SAMPLE_RATE]

    def piece(self, parts: tuple[Part, ...]) -> Window:
        """The parts' file spans, concatenated in order: what one model input holds."""
        return Window(tuple(span for p in parts for span in self.windows[p.window].after(p.offset).spans))

    def piece_audio(self, parts: tuple[Part, ...]) -> np.ndarray:
        return self.piece(parts).audio(self.audio)

    def part_seconds(self, part: Part) -> float:
        return max(0.0, self.windows[part.window].seconds - part.offset)

    # -- results -------------------------------------------------------------------------------------------
    def deliver(self, parts: tuple[Part, ...], result: WindowResult) -> None:
        """Take one piece's result. What the decode did not cover and still holds speech goes to
        `leftovers`; a window with nothing left is complete, and windows complete in order are announced on
        `events`."""
        silent = result.is_silence(self.options.thresholds)
        if len(parts) > 1 and (silent or not result.segments):
            # One verdict on the whole piece would end every rest in it: the first rest is judged alone next,
            # the others keep their place.
            self.leftovers += [replace(parts[0], alone=True), *parts[1:]]
            return
        if silent:
            self._complete(parts[0].window)
            return
        piece = self.piece(parts)
        bounds = list(itertools.accumulate((self.part_seconds(p) for p in parts), initial=0.0))
        cut = result.consumed
        reach = bounds[:-1]  # per part: how far its placed segments go
        for segment in result.segments:
            owner = _owner(bounds, segment.start, segment.end)
            lo, hi = bounds[owner], bounds[owner + 1]
            if segment.start < lo - SEAM_SLACK_SECONDS or segment.end > hi + SEAM_SLACK_SECONDS:
                cut = min(cut, segment.start)  # its text holds words of two windows: decode it again
                break
            self.segments[parts[owner].window].append(self._to_file(piece, lo, hi, segment))
            reach[owner] = max(reach[owner], min(segment.end, hi))
        for index, part in enumerate(parts):
            if cut >= bounds[index + 1]:
                self._complete(part.window)
                continue
            reached = index == 0 or cut >= bounds[index] + SEAM_SLACK_SECONDS
            # What the decode covered: its last timestamp when it got this far (word alignment may end a
            # segment before it), else the end of this part's placed segments
            progress = max(reach[index], min(cut, bounds[index + 1]) if reached else 0.0) - bounds[index]
            rest = Part(part.window, part.offset + max(0.0, progress))
            if not self._speech_after(rest.window, rest.offset):
                self._complete(part.window)
            elif not reached or progress >= MIN_PROGRESS_SECONDS:
                self.leftovers.append(rest)  # not reached because of the parts before it, or progress
            elif len(parts) > 1:
                # Reached but no progress while packed with others (the model stopped, or a segment ran
                # into the next rest): decode it alone next, where the single-window rule below applies.
                self.leftovers.append(replace(rest, alone=True))
            else:
                self._complete(part.window)  # alone and no progress: final, as transcribe() ends a window

    def pack(self) -> list[tuple[Part, ...]]:
        """Take the leftovers, packed in window order into pieces of at most 30 s."""
        pieces: list[list[Part]] = []
        seconds = 0.0
        for part in sorted(self.leftovers, key=lambda p: p.window):
            length = self.part_seconds(part)
            if not pieces or part.alone or pieces[-1][-1].alone or seconds + length > WINDOW_SECONDS:
                pieces.append([])
                seconds = 0.0
            pieces[-1].append(part)
            seconds += length
        self.leftovers = []
        return [tuple(p) for p in pieces]

    def leftover_seconds(self) -> float:
        return sum(self.part_seconds(p) for p in self.leftovers)

    def _complete(self, window: int) -> None:
        self.complete[window] = True
        while self._next_event < len(self.windows) and self.complete[self._next_event]:
            self.events.put(("window", self._next_event))
            self._next_event += 1

    def finished_windows(self) -> bool:
        return all(self.complete)

    def _speech_after(self, window: int, cut: float) -> bool:
        """Whether the window still holds at least MIN_SPEECH_LEFT_SECONDS of speech after `cut` seconds."""
        left = 0
        for span in self.windows[window].after(cut).spans:
            left += sum(max(0, min(span.end, r.end) - max(span.start, r.start)) for r in self.speech)
        return left >= MIN_SPEECH_LEFT_SECONDS * SAMPLE_RATE

    def _to_file(self, piece: Window, part_start: float, part_end: float, s: Segment) -> Segment:
        """A segment with piece times -> file times, kept within its part; `seek` is where the part starts."""

        def span(start: float, end: float) -> tuple[float, float]:
            start = min(max(start, part_start), part_end)  # the part's end is a seam: map it as an end
            first = piece.to_file_time(start, is_end=start >= part_end)
            return first, max(first, piece.to_file_time(min(max(end, part_start), part_end), is_end=True))

        words = None
        if s.words is not None:
            words = tuple(replace(x, **dict(zip(("start", "end"), span(x.start, x.end)))) for x in s.words)
        start, end = span(s.start, s.end)
        seek = round(piece.to_file_time(part_start) * SAMPLE_RATE) // HOP_LENGTH
        return replace(s, start=start, end=end, words=words, seek=seek)

    def window_text(self, index: int) -> str:
        return "".join(s.text for s in self.window_segments(index))

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
