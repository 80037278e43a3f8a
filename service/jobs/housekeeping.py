"""Each worker's housekeeping thread: delivers due callbacks (callbacks.py, with backoff), deletes what is
older than JOBS_TTL, and sets the job metrics from the store."""

from __future__ import annotations

import logging
import threading
import time

from .. import metrics
from . import callbacks
from .store import JobRecord, JobStore

log = logging.getLogger("service.jobs.housekeeping")
TICK_SECONDS = 1.0  # callbacks are looked for this often
SWEEP_SECONDS = 60.0  # expired jobs are deleted this often
METRICS_SECONDS = 5.0


class Housekeeping:
    def __init__(self, store: JobStore, settings, clock=time.time):
        self.store, self.settings, self.clock = store, settings, clock
        self.tries: dict[str, tuple[int, float]] = {}  # job id -> (failed attempts, next attempt at)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="jobs-housekeeping", daemon=True)
        self._last = {"sweep": 0.0, "metrics": 0.0}

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _loop(self) -> None:
        while not self.stopping.wait(TICK_SECONDS):
            for task, every, run in (
                ("callbacks", 0.0, self.deliver_due),
                ("sweep", SWEEP_SECONDS, self.sweep),
                ("metrics", METRICS_SECONDS, self.update_metrics),
            ):
                if self.clock() - self._last.get(task, 0.0) < every:
                    continue
                self._last[task] = self.clock()
                try:
                    run()
                except Exception:
                    log.exception("jobs housekeeping: %s failed", task)

    def sweep(self) -> int:
        removed = self.store.sweep(self.settings.jobs_ttl)
        if removed:
            log.info("deleted %d jobs older than JOBS_TTL", removed)
        return removed

    def update_metrics(self) -> None:
        for status, n in self.store.counts().items():
            metrics.JOBS.labels(status).set(n)
        oldest = self.store.oldest_queued()
        metrics.JOBS_OLDEST_QUEUED.set(0 if oldest is None else max(0.0, self.clock() - oldest))

    def deliver_due(self) -> None:
        now = self.clock()
        for job in self.store.pending_callbacks(20):
            failed, next_at = self.tries.get(job.id, (0, 0.0))
            if now >= next_at:
                self._deliver(job, failed, now)

    def _deliver(self, job: JobRecord, failed: int, now: float) -> None:
        cfg = self.settings
        if failed and now > (job.completed_at or now) + cfg.webhook_retry_seconds:
            self._done(job, "given_up")
            log.warning("callback of job %s given up after %d attempts", job.id, failed)
            return
        body = callbacks.payload(job.to_object())
        try:
            secret = cfg.webhook_secret.get_secret_value()
            status = callbacks.send(
                job.spec.callback_url, body, secret, f"msg_{job.id}_{job.status}", cfg.webhook_timeout,
                cfg.webhook_allow_private,
            )  # fmt: skip
        except callbacks.Refused as refused:
            self._done(job, "refused")
            log.warning("callback of job %s refused: %s", job.id, refused.message)
            return
        except OSError as error:
            status = f"{type(error).__name__}"
        if isinstance(status, int) and 200 <= status < 300:
            self._done(job, "delivered")
            return
        metrics.JOBS_CALLBACKS.labels("failed").inc()
        self.tries[job.id] = (failed + 1, now + callbacks.backoff(failed + 1))
        log.info(
            "callback of job %s failed (%s); next in %.0f s", job.id, status, callbacks.backoff(failed + 1)
        )

    def _done(self, job: JobRecord, outcome: str) -> None:
        self.store.mark_notified(job.id)
        self.tries.pop(job.id, None)
        metrics.JOBS_CALLBACKS.labels(outcome).inc()
