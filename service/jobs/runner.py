"""The runner: threads in each API worker that claim stored jobs and run them through the same pipeline as
a synchronous request, at background priority (batching/work.py), so a job's result is byte for byte what
the synchronous call would have returned.

A job is replayed: its stored fields and audio go to the face's own view in a request context of their own
(`replay`); `pipeline.submit` marks the scheduler's Job background and hands it to the `Run`, whose
heartbeat thread renews the lease and saves progress (windows done / windows) every 2 s. The pipeline's wait
asks `Run.stopped()` between windows: a cancelled job, a lease lost to another worker, or the runner
stopping (SIGTERM: the job is handed back at once, `release`) cancels the scheduler's Job at its next
window. Each heartbeat also saves a checkpoint, the segments of the windows finished in order (checkpoint.py).
A worker that dies (SIGKILL) holds its lease no longer than JOBS_LEASE_SECONDS; then any worker claims the
job again and decodes only the windows after its checkpoint (the store counts attempts: JOBS_MAX_ATTEMPTS).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field

from werkzeug.datastructures import MultiDict

from ..errors import APIError, InternalError
from . import checkpoint
from .store import JobRecord, JobStore

log = logging.getLogger("service.jobs.runner")
POLL_SECONDS = 1.0  # an idle runner looks for a job this often
RELEASE_WAIT_SECONDS = 10.0  # on SIGTERM, how long a running job gets to stop at its next window
HEARTBEAT_SECONDS = 2.0  # how often a running job saves progress (and learns it was cancelled)


@dataclass
class Run:
    """One job being run: what the pipeline and the heartbeat share."""

    record: JobRecord
    worker_id: str
    job: object | None = None  # the scheduler's Job, once pipeline.submit has made it
    stop: str | None = None  # why it stops early: "cancelled", "lost", "released"
    done: threading.Event = field(default_factory=threading.Event)

    saved: int = 0  # windows done in order that the store's checkpoint holds

    def stopped(self) -> bool:
        return self.stop is not None

    def attach(self, job) -> None:
        """The scheduler's Job, planned and not yet submitted: the checkpoint's windows are marked done."""
        if checkpoint.restore(job, self.record.checkpoint):
            self.saved = job._next_event
            log.info("job %s resumes after window %d of %d", self.record.id, self.saved, len(job.windows))
        self.job = job

    def checkpoint(self) -> str | None:
        """A new checkpoint's text when more windows are done than the last one saved; else None."""
        state = checkpoint.saved(self.job) if self.job is not None else None
        if state is None or state[0] <= self.saved:
            return None
        self.saved = state[0]
        return state[1]

    def progress(self) -> float:
        complete = getattr(self.job, "complete", None)
        return sum(complete) / len(complete) if complete else 0.0


def replay(app, store: JobStore, run: Run) -> tuple[bytes, str]:
    """Run the stored request through its face's view; its body and content type (APIError on failure)."""
    from ..api.jobs import ENDPOINTS

    spec = run.record.spec
    path, view, file_field = ENDPOINTS[spec.endpoint]
    with store.open_audio(run.record.id) as audio:
        data = MultiDict([*map(tuple, spec.params.get("form", [])), (file_field, (audio, spec.filename))])
        query = MultiDict([tuple(pair) for pair in spec.params.get("query", [])])
        with app.test_request_context(path, method="POST", query_string=query, data=data):
            from flask import g

            g.key_id, g.background = run.record.owner or None, run
            response = app.make_response(app.view_functions[view]())
            return response.get_data(), response.content_type


class Runner:
    def __init__(self, app, store: JobStore, settings):
        self.app, self.store, self.settings = app, store, settings
        self.stopping = threading.Event()
        self.runs: dict[str, Run] = {}
        self.threads = [
            threading.Thread(target=self._work, args=(n,), name=f"jobs-{n}", daemon=True)
            for n in range(settings.jobs_workers)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self, wait: float = RELEASE_WAIT_SECONDS) -> None:
        """SIGTERM: claim nothing more; running jobs stop at their next window and go back to the queue. Waits
        for that (the worker exits once its requests are done, and takes these daemon threads with it); a job
        still running after `wait` seconds is handed back here."""
        self.stopping.set()
        runs = list(self.runs.values())
        for run in runs:
            run.stop = run.stop or "released"
        for run in runs:
            if not run.done.wait(wait) and self.store.release(run.record.id, run.worker_id):
                log.info("job %s handed back (still in its window after %.0f s)", run.record.id, wait)

    def _work(self, n: int) -> None:
        worker_id = f"{socket.gethostname()}:{os.getpid()}:{n}"
        scheduler = self.app.extensions["scheduler"]
        while not self.stopping.is_set():
            record = None
            if scheduler.ready:
                try:
                    record = self.store.claim(
                        worker_id, self.settings.jobs_lease_seconds, self.settings.jobs_max_attempts
                    )
                except Exception:
                    log.exception("claiming a job failed")
            if record is None:
                self.stopping.wait(POLL_SECONDS)
                continue
            try:
                self._run(Run(record, worker_id))
            except Exception:  # the store failed while ending it: its lease runs out, another takes it
                log.exception("job %s: recording its end failed", record.id)

    def _run(self, run: Run) -> None:
        self.runs[run.record.id] = run
        if self.stopping.is_set():
            run.stop = "released"
        beat = threading.Thread(target=self._heartbeat, args=(run,), name="jobs-heartbeat", daemon=True)
        beat.start()
        log.info("job %s started (attempt %d)", run.record.id, run.record.attempts)
        try:
            self._finish(run, *self._outcome(run))
        finally:
            run.done.set()
            beat.join()
            self.runs.pop(run.record.id, None)

    def _outcome(self, run: Run) -> tuple[tuple[bytes, str] | None, APIError | None]:
        try:
            return replay(self.app, self.store, run), None
        except APIError as error:
            return None, error
        except Exception:
            log.exception("job %s failed", run.record.id)
            return None, InternalError("The job failed on the server.")

    def _finish(self, run: Run, result: tuple[bytes, str] | None, error: APIError | None) -> None:
        job_id, worker_id = run.record.id, run.worker_id
        if run.stop == "released" or (error is not None and error.status == 503):
            self.store.release(job_id, worker_id)  # another worker (or this one, later) runs it again
            log.info("job %s handed back (%s)", job_id, run.stop or error.message)
        elif run.stop:  # cancelled, or another worker holds it now
            log.info("job %s stopped: %s", job_id, run.stop)
        elif result is not None:
            duration = getattr(run.job, "duration", None)  # the audio's, now known
            self.store.heartbeat(job_id, worker_id, self.settings.jobs_lease_seconds, 1.0, duration=duration)
            self.store.finish(job_id, worker_id, result[0], result[1])
            log.info("job %s completed", job_id)
        else:
            self.store.finish(job_id, worker_id, error=error.body()["error"])
            log.info("job %s failed: %s", job_id, error.message)

    def _heartbeat(self, run: Run) -> None:
        """Renew the lease and save progress (every HEARTBEAT_SECONDS, at most a quarter lease); a refusal
        (cancelled, taken over) stops the run at its next window."""
        lease = self.settings.jobs_lease_seconds
        while not run.done.wait(min(HEARTBEAT_SECONDS, lease / 4)):
            duration = getattr(run.job, "duration", None)
            try:
                held = self.store.heartbeat(
                    run.record.id, run.worker_id, lease, run.progress(), run.checkpoint(), duration
                )
            except Exception:
                log.exception("heartbeat of job %s failed", run.record.id)
                continue
            if not held and not run.stop:
                current = self.store.get(None, run.record.id)
                run.stop = "cancelled" if current is None or current.status == "cancelled" else "lost"
