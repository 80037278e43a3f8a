"""The one inference thread that owns the model, and the bounded queue in front of it.

Request threads decode audio and plan its windows, then `submit()` a Job and wait on it; they never touch the
model. The inference thread loads the engine, then loops: detect languages for new jobs (batched), then build
a batch of window pieces that share decoding options, taking one piece per job in turn so a long file cannot
starve a short one, decode it in one model call, and hand each job its results. A piece that fails
openai-whisper's quality thresholds is queued again at the next temperature; a piece whose decode stopped
before the speech in its window did is followed by the rest of that window (see service.job).

Admission is bounded by audio seconds and by job count (QUEUE_MAX_SECONDS, QUEUE_MAX_REQUESTS); a job that
does not fit is refused at once with 429 and a Retry-After estimated from measured throughput. Once accepted,
a job is only dropped when its client disconnects or its deadline passes.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, replace

import numpy as np

from .. import metrics
from ..audio import SAMPLE_RATE, WINDOW_SECONDS
from ..engines.base import DecodeOptions, Engine, WindowResult
from ..errors import APIError, ClientClosed, DeadlineExceeded, InternalError, QueueFull, Unavailable
from ..settings import Settings
from .fairshare import KeyShares
from .job import Job, Part

log = logging.getLogger(__name__)


class Health(enum.Enum):
    STARTING = "starting"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    STOPPING = "stopping"


@dataclass
class _Item:
    """One piece of a job's audio (a window, or the packed rests of several) at one step of the temperature
    ladder."""

    job: Job
    parts: tuple[Part, ...]
    step: int = 0

    def options(self) -> DecodeOptions:
        return self.job.options.decode_options(self.step, self.job.language, self.parts[0].window)

    def audio(self) -> np.ndarray:
        return self.job.piece_audio(self.parts)


class Scheduler:
    def __init__(self, engine: Engine, settings: Settings):
        """Every knob from `settings` (BATCH_SIZE, BATCH_WAIT_MS, QUEUE_MAX_*, KEY_MAX_SHARE, WARMUP)."""
        self.engine = engine
        self.settings = settings
        self.batch_size = settings.batch_size_on(engine.device)  # halved for good on out-of-memory
        self.batch_wait = settings.batch_wait_ms / 1000
        self.queue_max_seconds = settings.queue_max_seconds
        self.queue_max_requests = settings.queue_max_requests
        self.health = Health.STARTING
        self.reason = "the model is not loaded yet"
        self.labels = {"model": engine.model_name, "engine": engine.name}
        self._lock = threading.Condition()
        self._detect: deque[Job] = deque()  # jobs waiting for language detection
        self._pending: OrderedDict[int, deque[_Item]] = OrderedDict()  # job id -> its windows, in order
        self._sequential: deque[Job] = deque()
        self._accepted: dict[int, Job] = {}  # accepted and not finished: what admission counts
        self._arriving = 0  # requests admitted whose audio is still being decoded or planned
        self._shares = KeyShares(settings.key_max_share, settings.key_max_share)
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
                self._gather()
            try:
                self._step()
            except Exception:  # never let one bad batch take the worker down
                log.exception("inference step failed")

    def _load(self) -> bool:
        self.health, self.reason = Health.LOADING, "loading the model"
        began = time.monotonic()
        try:
            self.engine.load()
            if self.settings.warmup:
                self.engine.warmup()
        except Exception as error:
            self.health = Health.FAILED
            self.reason = f"model failed to load: {type(error).__name__}: {error}"
            log.error("%s (WHISPER_MODEL=%s)", self.reason, getattr(self.engine, "source", "?"))
            return False
        seconds = time.monotonic() - began
        metrics.MODEL_LOAD.set(seconds)
        metrics.MODEL_READY.set(1)
        with self._lock:
            if self.health is Health.LOADING:
                self.health, self.reason = Health.READY, "ready"
        log.info("model %s ready on %s in %.1f s", self.engine.model_name, self.engine.device, seconds)
        return True

    def _gather(self) -> None:
        """Hold a batch smaller than batch_size for at most batch_wait while admitted requests are still
        decoding their audio: requests sent together are decoded together (docs/performance.md), instead of
        the first alone and the rest after it."""
        deadline = time.monotonic() + self.batch_wait
        while self._arriving and not (self._detect or self._sequential):
            left = deadline - time.monotonic()
            if left <= 0 or sum(len(items) for items in self._pending.values()) >= self.batch_size:
                return
            self._lock.wait(left)

    def arrival(self, change: int) -> None:
        """+1 when a request is admitted and starts decoding its audio, -1 when it is queued or gone."""
        with self._lock:
            self._arriving = max(0, self._arriving + change)
            metrics.INTAKE.set(self._arriving)
            self._lock.notify_all()

    # -- admission -----------------------------------------------------------------------------------------
    def check_admission(self, arrived: float | None = None, key_id: str | None = None) -> None:
        """Refuse before the upload is decoded what submit() would refuse anyway: under overload, ffmpeg
        decoding requests only to refuse them would take the CPU that inference needs."""
        with self._lock:
            self._refuse_if_full(0.0, arrived, key_id)

    def _refuse_if_full(self, duration: float, arrived: float | None = None,
                        key_id: str | None = None) -> None:  # fmt: skip
        """Called with the lock held: raise 503 when not serving, 429 when a job this long does not fit.

        A request that arrived before shutdown began (`arrived`, monotonic) is still served: its client
        sent it to a live server, and the drain gives it time to finish."""
        arrived_in_time = (
            self.health is Health.STOPPING and arrived is not None and arrived < self._stopping_since
        )
        if self.health is not Health.READY and not arrived_in_time:
            metrics.REJECTED.labels("shutting_down" if self.health is Health.STOPPING else "not_ready").inc()
            raise Unavailable(f"The server is not ready: {self.reason}.", retry_after=10)
        self._shares.check(key_id, duration, self.queue_max_requests, self.queue_max_seconds,
                           self._retry_after)  # fmt: skip
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
            self._refuse_if_full(job.duration, job.arrived_at, job.key_id)
            self._accepted[job.id] = job
            self._shares.add(job.key_id, job.duration)
            metrics.QUEUE_AUDIO.inc(job.duration)
            job.accepted_at = time.monotonic()
            job.language = job.options.language
            if job.options.sequential and not job.options.detect_only:
                self._sequential.append(job)
            elif job.language is None:
                self._detect.append(job)
            else:
                self._enqueue_windows(job)
            self._lock.notify_all()

    def _retry_after(self, queued_seconds: float) -> float:
        if self._throughput <= 0:
            return 5.0
        return min(600.0, max(1.0, queued_seconds / self._throughput))

    def _enqueue_windows(self, job: Job) -> None:
        """Queue the job's windows; a job with nothing to decode (no speech, or detection only) is done."""
        if job.options.detect_only or not job.windows:
            self._finish(job)
            return
        self._pending[job.id] = deque(_Item(job, (Part(i),)) for i in range(len(job.windows)))
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
            probs = self.engine.detect_language([j.detection_audio() for j in jobs])
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
            for job in dict.fromkeys(item.job for item in batch):
                self._queue_leftovers(job)

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
        job.deliver(item.parts, result)
        if job.finished_windows():
            self._finish(job)

    def _queue_leftovers(self, job: Job) -> None:
        """Queue the rests of windows the model stopped early in, packed into shared pieces, once they fill a
        window or the job has nothing else queued (see service.job); a streamed job's at once, since each
        window is sent only when its rest is decoded."""
        if job.done.is_set() or not job.leftovers:
            return
        hold = job.id in self._pending and not job.options.streamed
        if hold and job.leftover_seconds() < WINDOW_SECONDS:
            return
        pieces = job.pack()
        if hold and len(pieces) > 1:  # the last, partly filled piece waits for more
            job.leftovers = list(pieces.pop())
        queued = self._pending.setdefault(job.id, deque())
        for parts in reversed(pieces):
            queued.appendleft(_Item(job, parts))
            metrics.QUEUE_DEPTH.inc()
            metrics.REDECODED_PIECES.labels(**self.labels).inc(len(parts))
            metrics.REST_INPUTS.labels(**self.labels).inc()
        self._pending.move_to_end(job.id, last=False)  # the job is already being decoded: finish it first

    def _transcribe(self, job: Job) -> None:
        if job.cancelled:
            return
        began = time.monotonic()
        options = job.options
        try:
            language, segments = self.engine.transcribe(
                job.audio, options.decode_options(0, options.language), options.temperatures,
                options.thresholds, options.condition_on_previous_text,
            )  # fmt: skip
        except Exception as error:
            log.exception("sequential transcription failed")
            self._fail(job, self._as_api_error(error))
            return
        self._record_batch("decode", [job], began, job.duration)
        with self._lock:
            job.language, job.sequential_segments = language, segments
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
            self._shares.release(job.key_id, job.duration)
        job.events.put(("done", None))
        job.done.set()
        self._lock.notify_all()

    @staticmethod
    def _as_api_error(error: Exception) -> APIError:
        if isinstance(error, APIError):
            return error
        return InternalError("Inference failed on the server.")
