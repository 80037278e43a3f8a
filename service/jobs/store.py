"""The job store's one interface: `JobStore` (job rows) and `Blobs` (audio and results), kept by SQLite +
a directory on one VM (sqlite.py, files.py) and by PostgreSQL + Cloud Storage on the fleet (postgres.py,
gcs.py).

A job's life: `create` (audio durable before it returns) -> queued -> `claim` (a worker takes a lease) ->
in_progress, `heartbeat` renews the lease and saves progress and a checkpoint -> `finish` (completed with a
result, or failed with an error). A lease that expires (a worker died) lets another worker `claim` the job
again and resume from its checkpoint; `release` hands it back at once (SIGTERM). `cancel` ends a queued job,
or marks a running one cancelled so its worker's next `heartbeat` returns False. `sweep` deletes what is
older than the TTL. Owners are API key ids: `get`, `list_jobs` and `cancel` never show one owner another
owner's job.

Every time is Unix seconds from the store's clock (a constructor argument, so tests can move it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, Protocol

Status = Literal["queued", "in_progress", "completed", "failed", "cancelled"]
STATUSES: tuple[Status, ...] = ("queued", "in_progress", "completed", "failed", "cancelled")
TERMINAL: tuple[Status, ...] = ("completed", "failed", "cancelled")
Clock = Callable[[], float]


class JobStoreError(Exception):
    """Anything the store refuses."""


class BudgetExceeded(JobStoreError):
    """The upload would take the store past its disk budget (HTTP 507); nothing was kept."""

    def __init__(self, needed: int, available: int):
        super().__init__(f"the job needs {needed} bytes; the job store has {max(available, 0)} left")
        self.needed, self.available = needed, available


@dataclass(frozen=True)
class JobSpec:
    """What a request asks of a job: everything the runner needs to produce the synchronous call's body."""

    endpoint: str  # "transcriptions" | "translations" | "asr": which face renders the result
    params: Mapping[str, Any]  # the request's validated fields, JSON-serialisable
    response_format: str
    filename: str = ""
    callback_url: str | None = None


@dataclass(frozen=True)
class JobRecord:
    id: str  # "job_" + 24 hex digits
    owner: str  # the API key's id ("" when the service has no keys)
    status: Status
    spec: JobSpec
    created_at: float
    audio_bytes: int
    progress: float = 0.0  # windows done / windows, 0-1
    duration: float | None = None  # audio seconds, once decoded
    started_at: float | None = None  # first claim
    completed_at: float | None = None  # when it reached a terminal status
    error: Mapping[str, Any] | None = None  # OpenAI error object {"message", "type", "code"} when failed
    worker_id: str | None = None  # holder of the lease while in_progress
    lease_until: float | None = None
    attempts: int = 0  # claims so far (a resume after a crash is one more)
    checkpoint: str | None = None  # the runner's opaque resume state (JSON text)
    result_type: str | None = None  # content type of the stored result
    result_bytes: int = 0
    notified_at: float | None = None  # when its callback was delivered or given up on

    def to_object(self) -> dict[str, Any]:
        """The job as the API and its callback show it (OpenAI's `object` naming; Unix seconds)."""
        return {
            "id": self.id,
            "object": "audio.job",
            "status": self.status,
            "progress": round(self.progress, 4),
            "created_at": int(self.created_at),
            "completed_at": None if self.completed_at is None else int(self.completed_at),
            "error": dict(self.error) if self.error else None,
            "response_format": self.spec.response_format,
            "duration": self.duration,
        }


class Blobs(Protocol):
    """Bytes by key: a directory on one VM (files.py), a Cloud Storage bucket on the fleet (gcs.py)."""

    def put(self, key: str, stream: BinaryIO) -> int:
        """Store the stream under key, durably (fsynced / uploaded) before returning its size in bytes."""

    def open(self, key: str) -> BinaryIO:
        """A readable binary stream of the blob; FileNotFoundError when absent."""

    def read(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None:
        """Remove the blob; absent is fine."""


class JobStore(Protocol):
    blobs: Blobs

    def create(self, owner: str, spec: JobSpec, audio: BinaryIO, size: int, budget: int) -> JobRecord:
        """Keep the audio (`size` bytes) and a queued row, both durable before returning. Raises
        BudgetExceeded, keeping nothing, when usage() + size > budget (budget 0: no limit)."""

    def get(self, owner: str | None, job_id: str) -> JobRecord | None:
        """The job, or None when absent or another owner's. owner None: any owner (the runner)."""

    def list_jobs(self, owner: str, after: str | None, limit: int) -> tuple[list[JobRecord], bool]:
        """The owner's jobs newest first, starting after the job id `after`; and whether more follow."""

    def cancel(self, owner: str, job_id: str) -> JobRecord | None:
        """Queued or in_progress -> cancelled (completed_at set); a terminal job is returned unchanged.
        None when absent or another owner's."""

    def claim(self, worker_id: str, lease_seconds: float, max_attempts: int) -> JobRecord | None:
        """Take one job, oldest first: queued, or in_progress with an expired lease. Exactly one of any
        number of concurrent claimers gets a given job. A job whose lease expired after max_attempts claims is
        failed (code "too_many_attempts") instead of claimed. The record comes back in_progress, leased."""

    def heartbeat(
        self,
        job_id: str,
        worker_id: str,
        lease_seconds: float,
        progress: float | None = None,
        checkpoint: str | None = None,
        duration: float | None = None,
    ) -> bool:
        """Renew the lease, saving what is given. False when the worker no longer holds the job (its lease
        was taken over, or the job was cancelled): the worker stops."""

    def finish(
        self,
        job_id: str,
        worker_id: str,
        result: bytes | None = None,
        content_type: str | None = None,
        error: Mapping[str, Any] | None = None,
    ) -> bool:
        """completed (result, content_type) or failed (error); deletes the audio. False, storing nothing,
        when the worker no longer holds the job."""

    def release(self, job_id: str, worker_id: str) -> bool:
        """Hand a held job back to queued at once (keeping its checkpoint); False when not held."""

    def open_audio(self, job_id: str) -> BinaryIO: ...

    def read_result(self, job_id: str) -> tuple[bytes, str] | None:
        """The completed job's body and content type; None otherwise."""

    def pending_callbacks(self, limit: int) -> list[JobRecord]:
        """Terminal jobs with a callback_url and no notified_at, oldest completed first."""

    def mark_notified(self, job_id: str) -> None: ...

    def sweep(self, ttl: float) -> int:
        """Delete jobs (rows, audio, results) that ended more than ttl seconds ago, and queued jobs created
        more than ttl ago; returns how many."""

    def usage(self) -> int:
        """Bytes held: the audio and results of every job still stored."""

    def counts(self) -> dict[str, int]:
        """Jobs by status (every status present, 0 included)."""

    def oldest_queued(self) -> float | None:
        """created_at of the oldest queued job; None when none."""


def new_job_id() -> str:
    import secrets

    return "job_" + secrets.token_hex(12)


def audio_key(job_id: str) -> str:
    return f"audio/{job_id}"


def result_key(job_id: str) -> str:
    return f"results/{job_id}"


class BlobsBackedStore:
    """What a store does the same whatever holds its rows: audio and results live in `self.blobs`, a row's
    lookup is `self.get` (both backends, sqlite.py and postgres.py, inherit it)."""

    blobs: Blobs

    def open_audio(self, job_id: str) -> BinaryIO:
        return self.blobs.open(audio_key(job_id))

    def read_result(self, job_id: str) -> tuple[bytes, str] | None:
        job = self.get(None, job_id)
        if job is None or job.status != "completed" or job.result_type is None:
            return None
        return self.blobs.read(result_key(job_id)), job.result_type
