"""The request threads' side of the model: admission, submit, cancel, wait.

Request threads decode audio and plan its windows, then `submit()` a Job and wait on it; they never touch the
model, which the inference thread owns (model_loop.py). Admission (admission.py) is bounded by audio seconds
and by job count; a job that does not fit is refused at once with 429 and a Retry-After, and before the
server is ready or once it is shutting down, with 503. Once accepted, a job is only dropped when its client
disconnects or its deadline passes.
"""

from __future__ import annotations

import time

from .. import metrics
from ..engines.base import Engine
from ..errors import APIError, ClientClosed, DeadlineExceeded, Unavailable
from ..settings import Settings
from .admission import Admission
from .job import Job
from .model_loop import ModelLoop
from .work import Health, Work

__all__ = ["Health", "Scheduler"]


class Scheduler:
    def __init__(self, engine: Engine, settings: Settings):
        """Every knob from `settings` (BATCH_SIZE, BATCH_WAIT_MS, QUEUE_MAX_*, KEY_MAX_SHARE, WARMUP)."""
        self.engine = engine
        self.work = Work()
        self.admission = Admission(settings)
        self.loop = ModelLoop(engine, settings, self.work, self._finish, self.admission.measured)
        self.labels = self.loop.labels
        self._stopping_since = float("inf")

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        self.loop.thread.start()

    @property
    def health(self) -> Health:
        return self.work.health

    @health.setter
    def health(self, health: Health) -> None:
        self.work.health = health

    @property
    def reason(self) -> str:
        return self.work.reason

    @property
    def ready(self) -> bool:
        return self.health is Health.READY

    @property
    def batch_size(self) -> int:
        return self.loop.batch_size

    def begin_shutdown(self) -> None:
        """Refuse new work from now on; what was accepted still finishes."""
        with self.work.lock:
            if self.work.health is Health.READY:
                self.work.health, self.work.reason = Health.STOPPING, "the server is shutting down"
                self._stopping_since = time.monotonic()
            self.work.lock.notify_all()

    def arrival(self, change: int) -> None:
        """+1 when a request is admitted and starts decoding its audio, -1 when it is queued or gone."""
        with self.work.lock:
            self.work.arriving = max(0, self.work.arriving + change)
            metrics.INTAKE.set(self.work.arriving)
            self.work.lock.notify_all()

    # -- admission -----------------------------------------------------------------------------------------
    def check_admission(self, arrived: float | None = None, key_id: str | None = None) -> None:
        """Refuse before the upload is decoded what submit() would refuse anyway: under overload, ffmpeg
        decoding requests only to refuse them would take the CPU that inference needs."""
        with self.work.lock:
            self._refuse(0.0, arrived, key_id)

    def _refuse(self, duration: float, arrived: float | None, key_id: str | None) -> None:
        """Called with the lock held: raise 503 when not serving, 429 when a job this long does not fit.

        A request that arrived before shutdown began (`arrived`, monotonic) is still served: its client
        sent it to a live server, and the drain gives it time to finish."""
        health = self.work.health
        arrived_in_time = health is Health.STOPPING and arrived is not None and arrived < self._stopping_since
        if health is not Health.READY and not arrived_in_time:
            metrics.REJECTED.labels("shutting_down" if health is Health.STOPPING else "not_ready").inc()
            raise Unavailable(f"The server is not ready: {self.work.reason}.", retry_after=10)
        self.admission.refuse_if_full(duration, key_id)

    def submit(self, job: Job) -> None:
        """Accept a job or refuse it at once (429 when full, 503 when not serving)."""
        with self.work.lock:
            self._refuse(job.duration, job.arrived_at, job.key_id)
            self.admission.accept(job)
            job.accepted_at = time.monotonic()
            job.language = job.options.language
            self.loop.sizing.submitted(job)
            if job.options.sequential and not job.options.detect_only:
                self.work.sequential.append(job)
            elif job.language is None:
                self.work.detect.append(job)
            else:
                self.loop.enqueue_windows(job)
            self.work.lock.notify_all()

    # -- the request thread's wait -------------------------------------------------------------------------
    def cancel(self, job: Job, reason: str) -> None:
        """Abandon a job (client gone, deadline passed): its queued windows are never decoded."""
        with self.work.lock:
            if job.done.is_set() or job.cancelled:
                return
            job.cancelled = reason
            metrics.CANCELLED_WINDOWS.inc(self.work.drop(job))
            metrics.CANCELLED.labels(reason).inc()
            if job in self.work.detect:
                self.work.detect.remove(job)
                metrics.CANCELLED_WINDOWS.inc(len(job.windows))
            if job in self.work.sequential:
                self.work.sequential.remove(job)
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

    def _finish(self, job: Job, error: APIError | None = None) -> None:
        """Called with the lock held: release the job's admission budget and wake its request thread."""
        if job.done.is_set():
            return
        job.error = error
        self.admission.release(job)
        job.events.put(("done", None))
        job.done.set()
        self.work.lock.notify_all()
