"""The one inference thread that owns the model, and the bounded queue in front of it.

Request threads decode audio, then `submit()` a Job and wait on it; they never touch the model. The inference
thread loads the engine, then loops: detect languages for new jobs (batched), then build a batch of windows
that share decoding options, taking one window per job in turn so a long file cannot starve a short one,
decode it in one model call, and hand each job its results. Windows that fail openai-whisper's quality
thresholds are queued again at the next temperature. A job finishes when every window has a result.

Admission is bounded by audio seconds and by job count (QUEUE_MAX_SECONDS, QUEUE_MAX_REQUESTS); a job that
does not fit is refused at once with 429 and a Retry-After estimated from measured throughput. Once accepted,
a job is only dropped when its client disconnects or its deadline passes.
"""

from __future__ import annotations

import enum
import itertools
import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from . import metrics
from .audio import split_windows
from .engines.base import (
    SAMPLE_RATE,
    DecodeOptions,
    Engine,
    Segment,
    Thresholds,
    Transcript,
    WindowResult,
)
from .errors import APIError, ClientClosed, DeadlineExceeded, InternalError, QueueFull, Unavailable
from .intake.vad import VadParams

log = logging.getLogger(__name__)

HOP_LENGTH = 160  # samples per mel frame; `seek` in verbose_json counts these frames
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # openai-whisper's ladder for temperature=0


class Health(enum.Enum):
    STARTING = "starting"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    STOPPING = "stopping"


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
    sequential: bool = False  # openai-whisper's transcribe(): each window conditioned on the last
    condition_on_previous_text: bool = False
    force_tokens: int = 0
    detect_only: bool = False  # /detect-language: stop after language detection
    vad: VadParams | None = None  # chunking_strategy / vad_filter; None: decode everything, silence included
    prompt_first_window_only: bool = False  # whisper-asr-webservice's initial_prompt: the first window only
    logprobs: bool = False  # include[]=logprobs: keep each text token's log-probability

    def decode_options(self, step: int, language: str | None) -> DecodeOptions:
        return DecodeOptions(
            task=self.task, language=language, temperature=self.temperatures[step], prompt=self.prompt,
            beam_size=self.beam_size, best_of=self.best_of, word_timestamps=self.word_timestamps,
            force_tokens=self.force_tokens,
        )  # fmt: skip


@dataclass
class Transcription:
    language: str
    duration: float
    segments: list[dict]

    @property
    def text(self) -> str:
        return "".join(s["text"] for s in self.segments).strip()


_ids = itertools.count(1)


@dataclass(eq=False)
class Job:
    audio: np.ndarray
    options: JobOptions
    deadline: float  # time.monotonic() after which the job is abandoned
    id: int = field(default_factory=lambda: next(_ids))
    windows: list[tuple[int, int]] = field(default_factory=list)
    results: list[WindowResult | None] = field(default_factory=list)
    language: str | None = None
    language_probs: dict[str, float] | None = None
    arrived_at: float | None = None  # when its HTTP request arrived (time.monotonic())
    accepted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None  # first model call that included this job
    inference_seconds: float = 0.0  # model time of the batches this job took part in
    transcript: Transcript | None = None  # sequential mode: the whole file's segments
    error: APIError | None = None
    cancelled: str | None = None  # reason, once cancelled
    done: threading.Event = field(default_factory=threading.Event)
    events: queue.Queue = field(default_factory=queue.Queue)  # ("window", i) in order, then ("done", None)
    _next_event: int = 0

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    @property
    def queue_wait(self) -> float:
        return (self.started_at or time.monotonic()) - self.accepted_at

    def window_text(self, index: int) -> str:
        if self.transcript is not None:
            return "".join(segment.text for segment, _ in self.transcript.segments)
        result = self.results[index]
        silent = result is None or result.is_silence(self.options.thresholds)
        return "" if silent else "".join(s.text for s in result.segments)

    def transcription(self) -> Transcription:
        return Transcription(self.language or "", self.duration, list(self._segments()))

    def _segments(self) -> Iterator[dict]:
        ids = itertools.count()
        if self.transcript is not None:
            for segment, stats in self.transcript.segments:
                yield segment_dict(next(ids), round(segment.start * SAMPLE_RATE) // HOP_LENGTH, 0.0,
                                   segment, stats)  # fmt: skip
            return
        for (start, _), result in zip(self.windows, self.results):
            if result is None or result.is_silence(self.options.thresholds):
                continue
            offset = start / SAMPLE_RATE
            for segment in result.segments:
                yield segment_dict(next(ids), start // HOP_LENGTH, offset, segment, result)


def segment_dict(index: int, seek: int, offset: float, segment: Segment, stats: WindowResult) -> dict:
    """A segment in OpenAI's verbose_json shape, times made absolute by `offset` seconds."""
    out = {
        "id": index,
        "seek": seek,
        "start": round(offset + segment.start, 3),
        "end": round(offset + segment.end, 3),
        "text": segment.text,
        "tokens": list(segment.tokens),
        "temperature": float(stats.temperature),
        "avg_logprob": float(stats.avg_logprob),
        "compression_ratio": float(stats.compression_ratio),
        "no_speech_prob": float(stats.no_speech_prob),
    }
    if segment.words is not None:
        out["words"] = [
            {"word": w.word, "start": round(offset + w.start, 3), "end": round(offset + w.end, 3),
             "probability": round(float(w.probability), 4)}
            for w in segment.words
        ]  # fmt: skip
    return out


@dataclass
class _Item:
    """One window of one job at one step of the temperature ladder."""

    job: Job
    index: int
    step: int = 0

    def options(self) -> DecodeOptions:
        return self.job.options.decode_options(self.step, self.job.language)

    def audio(self) -> np.ndarray:
        start, end = self.job.windows[self.index]
        return self.job.audio[start:end]


class Scheduler:
    def __init__(self, engine: Engine, *, batch_size: int = 0, queue_max_seconds: float = 4 * 3600,
                 queue_max_requests: int = 256, warmup: bool = True):  # fmt: skip
        self.engine = engine
        self.batch_size = batch_size
        self.queue_max_seconds = queue_max_seconds
        self.queue_max_requests = queue_max_requests
        self.warmup = warmup
        self.health = Health.STARTING
        self.reason = "the model is not loaded yet"
        self.labels = {"model": engine.model_name, "engine": engine.name}
        self._lock = threading.Condition()
        self._detect: deque[Job] = deque()  # jobs waiting for language detection
        self._pending: OrderedDict[int, deque[_Item]] = OrderedDict()  # job id -> its windows, in order
        self._sequential: deque[Job] = deque()
        self._accepted: dict[int, Job] = {}  # accepted and not finished: what admission counts
        self._stopping_since = float("inf")
        self._throughput = 0.0  # audio seconds per wall second, smoothed; for Retry-After
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    @property
    def ready(self) -> bool:
        return self.health is Health.READY

    def begin_shutdown(self) -> None:
        """Refuse new work from now on; what was accepted still finishes."""
        with self._lock:
            if self.health is Health.READY:
                self.health, self.reason = Health.STOPPING, "the server is shutting down"
                self._stopping_since = time.monotonic()
            self._lock.notify_all()

    def _run(self) -> None:
        if not self._load():
            return
        while True:
            with self._lock:
                while not (self._detect or self._pending or self._sequential):
                    self._lock.wait(1.0)
            try:
                self._step()
            except Exception:  # never let one bad batch take the worker down
                log.exception("inference step failed")

    def _load(self) -> bool:
        self.health, self.reason = Health.LOADING, "loading the model"
        began = time.monotonic()
        try:
            self.engine.load()
            if self.warmup:
                self.engine.warmup()
        except Exception as error:
            self.health = Health.FAILED
            self.reason = f"model failed to load: {type(error).__name__}: {error}"
            log.error("%s (WHISPER_MODEL=%s)", self.reason, getattr(self.engine, "source", "?"))
            return False
        if not self.batch_size:
            self.batch_size = self.engine.batch_size
        seconds = time.monotonic() - began
        metrics.MODEL_LOAD.set(seconds)
        metrics.MODEL_READY.set(1)
        with self._lock:
            if self.health is Health.LOADING:
                self.health, self.reason = Health.READY, "ready"
        log.info("model %s ready on %s in %.1f s", self.engine.model_name, self.engine.device, seconds)
        return True

    # -- admission -----------------------------------------------------------------------------------------
    def check_admission(self, arrived: float | None = None) -> None:
        """Refuse before the upload is decoded what submit() would refuse anyway: under overload, ffmpeg
        decoding requests only to refuse them would take the CPU that inference needs."""
        with self._lock:
            self._refuse_if_full(0.0, arrived)

    def _refuse_if_full(self, duration: float, arrived: float | None = None) -> None:
        """Called with the lock held: raise 503 when not serving, 429 when a job this long does not fit.

        A request that arrived before shutdown began (`arrived`, monotonic) is still served: its client
        sent it to a live server, and the drain gives it time to finish."""
        arrived_in_time = (
            self.health is Health.STOPPING and arrived is not None and arrived < self._stopping_since
        )
        if self.health is not Health.READY and not arrived_in_time:
            metrics.REJECTED.labels("shutting_down" if self.health is Health.STOPPING else "not_ready").inc()
            raise Unavailable(f"The server is not ready: {self.reason}.", retry_after=10)
        queued = sum(j.duration for j in self._accepted.values())
        full = len(self._accepted) >= self.queue_max_requests or (
            self._accepted and queued + duration > self.queue_max_seconds
        )
        if full:
            metrics.REJECTED.labels("queue_full").inc()
            raise QueueFull(
                f"The server is busy: {queued:.0f} s of audio are queued. Retry later.",
                retry_after=self._retry_after(queued),
            )

    def submit(self, job: Job) -> None:
        """Accept a job or refuse it at once (429 when full, 503 when not serving)."""
        with self._lock:
            self._refuse_if_full(job.duration, job.arrived_at)
            self._accepted[job.id] = job
            metrics.QUEUE_AUDIO.inc(job.duration)
            job.accepted_at = time.monotonic()
            if job.options.sequential and not job.options.detect_only:
                self._sequential.append(job)
            else:
                job.windows = split_windows(job.audio)
                job.results = [None] * len(job.windows)
                job.language = job.options.language
                if job.language is None and self.engine.is_multilingual:
                    self._detect.append(job)
                elif job.options.detect_only:
                    job.language = "en"  # an English-only model
                    self._finish(job)
                else:
                    job.language = job.language or "en"
                    self._enqueue_windows(job)
            self._lock.notify_all()

    def _retry_after(self, queued_seconds: float) -> float:
        if self._throughput <= 0:
            return 5.0
        return min(600.0, max(1.0, queued_seconds / self._throughput))

    def _enqueue_windows(self, job: Job) -> None:
        self._pending[job.id] = deque(_Item(job, i) for i in range(len(job.windows)))
        metrics.QUEUE_DEPTH.inc(len(job.windows))

    def cancel(self, job: Job, reason: str) -> None:
        """Abandon a job (client gone, deadline passed): its queued windows are never decoded."""
        with self._lock:
            if job.done.is_set() or job.cancelled:
                return
            job.cancelled = reason
            dropped = self._pending.pop(job.id, ())
            metrics.QUEUE_DEPTH.dec(len(dropped))
            metrics.CANCELLED_WINDOWS.inc(len(dropped))
            metrics.CANCELLED.labels(reason).inc()
            if job in self._detect:
                self._detect.remove(job)
                metrics.CANCELLED_WINDOWS.inc(len(job.windows))
            if job in self._sequential:
                self._sequential.remove(job)
            if reason == "timeout":
                self._finish(job, DeadlineExceeded("The request did not finish within its deadline."))
            else:
                self._finish(job, ClientClosed("The client disconnected."))

    def wait(self, job: Job, poll: float = 0.25, disconnected=lambda: False) -> None:
        """Block the request thread until the job is done; cancel it on disconnect or deadline."""
        while not job.done.wait(poll):
            if disconnected():
                self.cancel(job, "disconnect")
            elif time.monotonic() > job.deadline:
                self.cancel(job, "timeout")
        if job.error:
            raise job.error

    # -- the inference thread ------------------------------------------------------------------------------
    def _step(self) -> None:
        with self._lock:
            detect = self._take_detect()
            batch = [] if detect else self._take_batch()
            sequential = (
                None if detect or batch else (self._sequential.popleft() if self._sequential else None)
            )
        if detect:
            self._detect_languages(detect)
        elif batch:
            self._decode(batch)
        elif sequential:
            self._transcribe(sequential)

    def _take_detect(self) -> list[Job]:
        jobs = []
        while self._detect and len(jobs) < self.batch_size:
            jobs.append(self._detect.popleft())
        return jobs

    def _take_batch(self) -> list[_Item]:
        """Up to batch_size windows with equal options, one per job per round, oldest job first."""
        if not self._pending:
            return []
        key = next(iter(self._pending.values()))[0].options()
        batch: list[_Item] = []
        while len(batch) < self.batch_size:
            taken = 0
            for job_id, items in list(self._pending.items()):
                if len(batch) >= self.batch_size:
                    break
                if items and items[0].options() == key:
                    batch.append(items.popleft())
                    taken += 1
                if not items:
                    del self._pending[job_id]
            if not taken:
                break
        metrics.QUEUE_DEPTH.dec(len(batch))
        return batch

    def _detect_languages(self, jobs: list[Job]) -> None:
        began = time.monotonic()
        try:
            probs = self.engine.detect_language([j.audio[slice(*j.windows[0])] for j in jobs])
        except Exception as error:
            log.exception("language detection failed")
            for job in jobs:
                self._fail(job, self._as_api_error(error))
            return
        self._record_batch("detect_language", jobs, began, 0.0)
        with self._lock:
            for job, p in zip(jobs, probs):
                if job.cancelled:
                    continue
                job.language = max(p, key=p.get)
                job.language_probs = p
                if job.options.detect_only:
                    self._finish(job)
                else:
                    self._enqueue_windows(job)

    def _decode(self, batch: list[_Item]) -> None:
        options = batch[0].options()
        began = time.monotonic()
        try:
            results = self._decode_splitting(batch, options)
        except Exception as error:
            log.exception("decoding a batch of %d windows failed", len(batch))
            for job in {item.job for item in batch}:
                self._fail(job, self._as_api_error(error))
            return
        seconds = sum(len(item.audio()) for item in batch) / SAMPLE_RATE
        self._record_batch("decode", [item.job for item in batch], began, seconds)
        with self._lock:
            for item, result in zip(batch, results):
                self._deliver(item, result)

    def _decode_splitting(self, batch: list[_Item], options: DecodeOptions) -> list[WindowResult]:
        """One model call; on out-of-memory, halve the batch and retry each half."""
        try:
            return self.engine.decode([item.audio() for item in batch], options)
        except Exception as error:
            if not self.engine.is_out_of_memory(error):
                raise
            self.engine.release_cache()
            if len(batch) == 1:
                raise Unavailable(
                    "One 30 s window does not fit in GPU memory; try again later.", retry_after=30
                ) from error
            half = len(batch) // 2
            self.batch_size = max(1, min(self.batch_size, half))
            log.warning("out of GPU memory on %d windows; batch size now %d", len(batch), self.batch_size)
            return self._decode_splitting(batch[:half], options) + self._decode_splitting(
                batch[half:], options
            )

    def _deliver(self, item: _Item, result: WindowResult) -> None:
        job = item.job
        if job.cancelled or job.done.is_set():
            return
        if result.needs_fallback(job.options.thresholds) and item.step + 1 < len(job.options.temperatures):
            retry = replace(item, step=item.step + 1)
            self._pending.setdefault(job.id, deque()).appendleft(retry)
            self._pending.move_to_end(job.id, last=False)  # retries go first: the job is already waiting
            metrics.QUEUE_DEPTH.inc()
            return
        job.results[item.index] = result
        while job._next_event < len(job.results) and job.results[job._next_event] is not None:
            job.events.put(("window", job._next_event))
            job._next_event += 1
        if job._next_event == len(job.results):
            self._finish(job)

    def _transcribe(self, job: Job) -> None:
        if job.cancelled:
            return
        began = time.monotonic()
        options = job.options
        try:
            transcript = self.engine.transcribe(
                job.audio, options.decode_options(0, options.language), options.temperatures,
                options.thresholds, options.condition_on_previous_text,
            )  # fmt: skip
        except Exception as error:
            log.exception("sequential transcription failed")
            self._fail(job, self._as_api_error(error))
            return
        self._record_batch("decode", [job], began, job.duration)
        with self._lock:
            job.language = transcript.language
            job.transcript = transcript
            job.windows, job.results = [(0, len(job.audio))], [None]
            job.events.put(("window", 0))
            self._finish(job)

    def _record_batch(self, kind: str, jobs: list[Job], began: float, audio_seconds: float) -> None:
        elapsed = time.monotonic() - began
        metrics.BATCH_DURATION.labels(kind=kind, **self.labels).observe(elapsed)
        if kind == "decode":
            metrics.BATCH_SIZE.labels(**self.labels).observe(len(jobs))
            metrics.BATCH_REQUESTS.labels(**self.labels).observe(len({job.id for job in jobs}))
            rate = audio_seconds / max(elapsed, 1e-6)
            self._throughput = rate if self._throughput == 0 else 0.8 * self._throughput + 0.2 * rate
        for job in set(jobs):
            job.started_at = job.started_at or began
            job.inference_seconds += elapsed
        for device, (allocated, reserved) in self.engine.memory().items():
            metrics.GPU_ALLOCATED.labels(device).set(allocated)
            metrics.GPU_RESERVED.labels(device).set(reserved)

    # -- completion ----------------------------------------------------------------------------------------
    def _fail(self, job: Job, error: APIError) -> None:
        with self._lock:
            dropped = self._pending.pop(job.id, ())
            metrics.QUEUE_DEPTH.dec(len(dropped))
            self._finish(job, error)

    def _finish(self, job: Job, error: APIError | None = None) -> None:
        """Called with the lock held: release the job's admission budget and wake its request thread."""
        if job.done.is_set():
            return
        job.error = error
        if self._accepted.pop(job.id, None) is not None:
            metrics.QUEUE_AUDIO.dec(job.duration)
        job.events.put(("done", None))
        job.done.set()
        self._lock.notify_all()

    @staticmethod
    def _as_api_error(error: Exception) -> APIError:
        if isinstance(error, APIError):
            return error
        return InternalError("Inference failed on the server.")
