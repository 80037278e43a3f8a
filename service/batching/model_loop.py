"""The one inference thread that owns the model.

It loads the engine, then loops: detect languages for new jobs (batched), then build a batch of inputs that
share decoding options, taking one input per job in turn so a long file cannot starve a short one, decode
it in one model call, and hand each job its results. An input that fails openai-whisper's quality
thresholds is queued again at the next temperature; an input whose decode stopped before the speech in its
windows did is followed by their rests (job.py, placement.py). On out-of-memory the batch is halved, for
good. Sequential jobs (transcribe(), each window conditioned on the last) are decoded whole, one at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from .. import metrics
from ..audio import SAMPLE_RATE, WINDOW_SECONDS
from ..engines.base import DecodeOptions, Engine, WindowResult
from ..errors import APIError, InternalError, Unavailable
from ..settings import Settings
from .job import Job
from .placement import Rest
from .sizing import Sizing
from .work import Health, ModelInput, Work

log = logging.getLogger("service.batching.scheduler")

Finish = Callable[[Job, "APIError | None"], None]


def as_api_error(error: Exception) -> APIError:
    """What the client is told: the engine's own APIError (e.g. 503 out of memory), else a 500."""
    return error if isinstance(error, APIError) else InternalError("Inference failed on the server.")


class ModelLoop:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        work: Work,
        finish: Finish,
        measured: Callable[[float, float], None],
    ):
        self.engine = engine
        self.settings = settings
        self.work = work
        self.batch_size = settings.batch_size or engine.default_batch_size()  # halved for good on OOM
        self.free_batching = engine.device.startswith("cuda")  # a GPU's call costs about one input's time
        self.batch_wait = settings.batch_wait_ms / 1000
        self.sizing = Sizing(settings.interactive_batch_size, settings.interactive_hold_seconds)  # CPU calls
        self.labels = {"model": engine.model_name, "engine": engine.name}
        self._finish = finish  # with the lock held: the job is done (error: failed); wake its request thread
        self._measured = measured  # (audio seconds, wall seconds) of a decode: for Retry-After
        self.thread = threading.Thread(target=self._run, name="inference", daemon=True)

    # -- the loop ------------------------------------------------------------------------------------------
    def _run(self) -> None:
        if not self._load():
            return
        while True:
            with self.work.lock:
                if not self.work.wait_for_work():  # False: the model is unloaded (registry.py)
                    return
                self._gather()
            try:
                self._step()
            except Exception:  # never let one bad batch take the worker down
                log.exception("inference step failed")

    def _load(self) -> bool:
        work = self.work
        work.health, work.reason = Health.LOADING, "loading the model"
        began = time.monotonic()
        try:
            self.engine.load()
            if self.settings.warmup:
                self.engine.warmup()
        except Exception as error:
            work.health = Health.FAILED
            work.reason = f"model failed to load: {type(error).__name__}: {error}"
            log.error("%s (WHISPER_MODEL=%s)", work.reason, getattr(self.engine, "source", "?"))
            return False
        metrics.MODEL_LOAD.set(seconds := time.monotonic() - began)
        metrics.MODEL_READY.set(1)
        with work.lock:
            if work.health is Health.LOADING:
                work.health, work.reason = Health.READY, "ready"
        log.info("model %s ready on %s in %.1f s", self.engine.model_name, self.engine.device, seconds)
        return True

    def _gather(self) -> None:
        """Hold a batch smaller than batch_size for at most batch_wait while admitted requests are still
        decoding their audio: requests sent together are decoded together (docs/performance.md), instead of
        the first alone and the rest after it."""
        deadline = time.monotonic() + self.batch_wait
        while self.work.arriving and not (self.work.detect or self.work.sequential):
            left = deadline - time.monotonic()
            if left <= 0 or self.work.queued_inputs() >= self.batch_size:
                return
            self.work.lock.wait(left)

    def _step(self) -> None:
        work = self.work
        with work.lock:
            detect = [work.detect.popleft() for _ in range(min(len(work.detect), self.batch_size))]
            batch = [] if detect else self.sizing.take(work.pending, self.batch_size, self.free_batching)
            metrics.QUEUE_DEPTH.dec(len(batch))
            sequential = work.sequential.popleft() if not (detect or batch) and work.sequential else None
        if detect:
            self._detect_languages(detect)
        elif batch:
            self._decode(batch)
        elif sequential:
            self._transcribe(sequential)

    # -- queueing a job's inputs (with the lock held) --------------------------------------------------------
    def enqueue_windows(self, job: Job) -> None:
        """Queue the job's windows; a job with nothing to decode (no speech, or detection only) is done."""
        if job.options.detect_only or not (todo := job.undone_windows()):
            self._finish(job, None)
            return
        self.work.pending[job.id] = deque(ModelInput(job, (Rest(i),)) for i in todo)
        metrics.QUEUE_DEPTH.inc(len(todo))

    def _deliver(self, model_input: ModelInput, result: WindowResult) -> None:
        job = model_input.job
        if job.cancelled or job.done.is_set():
            return
        if result.needs_fallback(job.options.thresholds):
            if model_input.step + 1 < len(job.options.temperatures):  # retries go first: the job is waiting
                return self.work.first(job, [model_input.retry(result)])
            result = model_input.settle(result, self.engine.best_after_ladder)  # the ladder is exhausted
        job.deliver(model_input.rests, result)
        if job.finished_windows():
            self._finish(job, None)

    def _queue_rests(self, job: Job) -> None:
        """Queue the rests of windows the model stopped early in, packed into shared inputs, once they fill a
        window or the job has nothing else queued (see job.py); a streamed job's at once, since each window
        is sent only when its rest is decoded."""
        if job.done.is_set() or not job.rests:
            return
        hold = job.id in self.work.pending and not job.options.streamed
        if hold and job.rests_seconds() < WINDOW_SECONDS:
            return
        inputs = job.pack()
        if hold and len(inputs) > 1:  # the last, partly filled input waits for more
            job.rests = list(inputs.pop())
        self.work.first(job, [ModelInput(job, rests) for rests in inputs])
        metrics.REDECODED_RESTS.labels(**self.labels).inc(sum(len(rests) for rests in inputs))
        metrics.REST_INPUTS.labels(**self.labels).inc(len(inputs))

    def _fail(self, job: Job, error: Exception) -> None:
        with self.work.lock:
            self.work.drop(job)
            self._finish(job, as_api_error(error))

    # -- model calls -----------------------------------------------------------------------------------------
    def _detect_languages(self, jobs: list[Job]) -> None:
        began = time.monotonic()
        try:
            probs = self.engine.detect_language([j.detection_audio() for j in jobs])
        except Exception as error:
            log.exception("language detection failed")
            for job in jobs:
                self._fail(job, error)
            return
        record_batch("detect_language", jobs, began, self.engine, self.labels)
        with self.work.lock:
            for job, p in zip(jobs, probs):
                if job.cancelled:
                    continue
                job.language = max(p, key=p.get)
                job.language_probs = p
                self.enqueue_windows(job)

    def _decode(self, batch: list[ModelInput]) -> None:
        began = time.monotonic()
        try:
            results = self._decode_splitting(batch, batch[0].options())
        except Exception as error:
            log.exception("decoding a batch of %d inputs failed", len(batch))
            for job in {model_input.job for model_input in batch}:
                self._fail(job, error)
            return
        seconds = sum(len(model_input.audio()) for model_input in batch) / SAMPLE_RATE
        jobs = [model_input.job for model_input in batch]
        self._measured(seconds, record_batch("decode", jobs, began, self.engine, self.labels))
        with self.work.lock:
            for model_input, result in zip(batch, results):
                self._deliver(model_input, result)
            for job in dict.fromkeys(model_input.job for model_input in batch):
                self._queue_rests(job)

    def _decode_splitting(self, batch: list[ModelInput], options: DecodeOptions) -> list[WindowResult]:
        """One model call; on out-of-memory, halve the batch and retry each half."""
        try:
            return self.engine.decode([model_input.audio() for model_input in batch], options)
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
            log.warning("out of GPU memory on %d inputs; batch size now %d", len(batch), self.batch_size)
            first = self._decode_splitting(batch[:half], options)
            return first + self._decode_splitting(batch[half:], options)

    def _transcribe(self, job: Job) -> None:
        if job.cancelled:
            return
        began = time.monotonic()
        options = job.options
        try:
            language, segments = self.engine.transcribe(
                job.audio,
                options.decode_options(0, options.language),
                options.temperatures,
                options.thresholds,
                options.condition_on_previous_text,
            )
        except Exception as error:
            log.exception("sequential transcription failed")
            self._fail(job, error)
            return
        self._measured(job.duration, record_batch("decode", [job], began, self.engine, self.labels))
        with self.work.lock:
            job.language, job.sequential_segments = language, segments
            job.events.put(("window", 0))
            self._finish(job, None)


def record_batch(kind: str, jobs: list[Job], began: float, engine: Engine, labels: dict[str, str]) -> float:
    """A model call's metrics, and its time on each of its jobs; its wall seconds."""
    elapsed = time.monotonic() - began
    metrics.BATCH_DURATION.labels(kind=kind, **labels).observe(elapsed)
    if kind == "decode":
        metrics.BATCH_SIZE.labels(**labels).observe(len(jobs))
        metrics.BATCH_REQUESTS.labels(**labels).observe(len({job.id for job in jobs}))
    for job in set(jobs):
        job.started_at = job.started_at or began
        job.inference_seconds += elapsed
    for device, (allocated, reserved) in engine.memory().items():
        metrics.GPU_ALLOCATED.labels(device).set(allocated)
        metrics.GPU_RESERVED.labels(device).set(reserved)
    return elapsed
