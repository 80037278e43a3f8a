"""The fleet's job store: job rows in PostgreSQL (Cloud SQL, infra/jobs_store.py), audio and results as blobs
(gcs.py), so that any VM answers for any job and a VM that dies mid-job has it taken over by another.

A claim is one statement: the oldest claimable row, chosen with `FOR UPDATE SKIP LOCKED`, so of any number of
claimers on any number of VMs exactly one takes a job and none waits for another's lock
(https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE). A running job holds a lease
(`lease_until`, renewed by `heartbeat`); once it lapses the job is claimable again and the next claim resumes
it from its checkpoint. Every time is the store's clock (the API's contract, service/jobs/store.py), not the
database server's. Connections come from a psycopg pool per worker process, opened at first use (after
gunicorn forks), JOBS_DATABASE_POOL of them at most.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, BinaryIO

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from .store import (
    STATUSES,
    Blobs,
    BlobsBackedStore,
    BudgetExceeded,
    Clock,
    JobRecord,
    JobSpec,
    audio_key,
    new_job_id,
    result_key,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, owner TEXT NOT NULL, status TEXT NOT NULL,
    endpoint TEXT NOT NULL, params JSONB NOT NULL, response_format TEXT NOT NULL, filename TEXT NOT NULL,
    callback_url TEXT, created_at DOUBLE PRECISION NOT NULL, audio_bytes BIGINT NOT NULL,
    progress DOUBLE PRECISION NOT NULL DEFAULT 0, duration DOUBLE PRECISION, started_at DOUBLE PRECISION,
    completed_at DOUBLE PRECISION, error JSONB, worker_id TEXT, lease_until DOUBLE PRECISION,
    attempts INTEGER NOT NULL DEFAULT 0, checkpoint TEXT, result_type TEXT,
    result_bytes BIGINT NOT NULL DEFAULT 0, notified_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, seq);
CREATE INDEX IF NOT EXISTS jobs_claimable ON jobs (seq) WHERE status IN ('queued', 'in_progress');
CREATE INDEX IF NOT EXISTS jobs_ended ON jobs (completed_at) WHERE completed_at IS NOT NULL;
"""
# Advisory lock keys (any 64-bit numbers, one per purpose): the schema is created by one worker at a time
# (CREATE ... IF NOT EXISTS races with itself), and the budget is checked and spent by one create at a time.
SCHEMA_LOCK, BUDGET_LOCK = 0x7768_6973_7065_7201, 0x7768_6973_7065_7202
SPEC_FIELDS = ("endpoint", "params", "response_format", "filename", "callback_url")
CLAIM = """
UPDATE jobs SET status = 'in_progress', worker_id = %(worker)s, lease_until = %(lease)s,
    attempts = attempts + 1, started_at = COALESCE(started_at, %(now)s)
WHERE id = (
    SELECT id FROM jobs
    WHERE status = 'queued' OR (status = 'in_progress' AND lease_until < %(now)s)
    ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED
) RETURNING *
"""
GIVE_UP = """
UPDATE jobs SET status = 'failed', completed_at = %(now)s, error = %(error)s,
    worker_id = NULL, lease_until = NULL
WHERE id IN (
    SELECT id FROM jobs WHERE status = 'in_progress' AND lease_until < %(now)s AND attempts >= %(max)s
    FOR UPDATE SKIP LOCKED
)
"""


def _record(row: Mapping[str, Any]) -> JobRecord:
    spec = JobSpec(*(row[f] for f in SPEC_FIELDS))
    values = {k: v for k, v in row.items() if k not in {*SPEC_FIELDS, "seq"}}
    return JobRecord(spec=spec, **values)


def _too_many_attempts(max_attempts: int) -> Jsonb:
    return Jsonb(
        {
            "message": f"The job stopped {max_attempts} times before it ended (its worker died or was "
            "stopped each time).",
            "type": "server_error",
            "code": "too_many_attempts",
        }
    )


class PostgresJobStore(BlobsBackedStore):
    def __init__(
        self,
        url: str,
        blobs: Blobs,
        clock: Clock = time.time,
        pool_size: int = 4,
        timeout: float = 10.0,
    ):
        self.blobs, self.clock = blobs, clock
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            timeout=timeout,  # waiting for a free connection
            kwargs={"row_factory": dict_row, "connect_timeout": max(1, round(timeout))},
            check=ConnectionPool.check_connection,  # one the server dropped (maintenance) is replaced
            open=False,  # at first use: gunicorn forks after create_app, and a pool's threads do not fork
            name="jobs",
        )
        self._opened = threading.Lock()

    def _open(self) -> None:
        with self._opened:
            if self.pool.closed:
                self.pool.open(wait=True, timeout=self.pool.timeout)
                with self.pool.connection() as db:
                    db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                    db.execute(SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection]:
        """One transaction on a pooled connection: committed on leaving, rolled back on an exception."""
        if self.pool.closed:
            self._open()
        with self.pool.connection() as db:
            yield db

    def close(self) -> None:
        self.pool.close()

    def _usage(self, db: psycopg.Connection) -> int:
        row = db.execute("SELECT COALESCE(SUM(audio_bytes + result_bytes), 0) AS n FROM jobs").fetchone()
        return row["n"]

    def create(self, owner: str, spec: JobSpec, audio: BinaryIO, size: int, budget: int) -> JobRecord:
        if budget:
            _check_budget(self.usage(), size, budget)  # refuse a large upload before sending it
        job_id = new_job_id()
        size = self.blobs.put(audio_key(job_id), audio)
        try:
            with self._tx() as db:
                if budget:  # again, one create at a time: another upload may have spent it meanwhile
                    db.execute("SELECT pg_advisory_xact_lock(%s)", (BUDGET_LOCK,))
                    _check_budget(self._usage(db), size, budget)
                row = db.execute(
                    "INSERT INTO jobs (id, owner, status, endpoint, params, response_format, filename, "
                    "callback_url, created_at, audio_bytes) "
                    "VALUES (%s, %s, 'queued', %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                    (job_id, owner, spec.endpoint, Jsonb(dict(spec.params)), spec.response_format,
                     spec.filename, spec.callback_url, self.clock(), size),
                ).fetchone()  # fmt: skip
        except BaseException:
            self.blobs.delete(audio_key(job_id))
            raise
        return _record(row)

    def get(self, owner: str | None, job_id: str) -> JobRecord | None:
        with self._tx() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = %s", (job_id,)).fetchone()
        return _record(row) if row and owner in (None, row["owner"]) else None

    def list_jobs(self, owner: str, after: str | None, limit: int) -> tuple[list[JobRecord], bool]:
        with self._tx() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE owner = %(owner)s AND seq < COALESCE("
                "(SELECT seq FROM jobs WHERE id = %(after)s AND owner = %(owner)s), 9223372036854775807) "
                "ORDER BY seq DESC LIMIT %(limit)s",
                {"owner": owner, "after": after, "limit": limit + 1},
            ).fetchall()
        return [_record(r) for r in rows[:limit]], len(rows) > limit

    def cancel(self, owner: str, job_id: str) -> JobRecord | None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = 'cancelled', completed_at = %s, worker_id = NULL, "
                "lease_until = NULL WHERE id = %s AND owner = %s AND status IN ('queued', 'in_progress')",
                (self.clock(), job_id, owner),
            )
        return self.get(owner, job_id)

    def claim(self, worker_id: str, lease_seconds: float, max_attempts: int) -> JobRecord | None:
        now = self.clock()
        with self._tx() as db:
            db.execute(GIVE_UP, {"now": now, "max": max_attempts, "error": _too_many_attempts(max_attempts)})
            lease = {"worker": worker_id, "lease": now + lease_seconds, "now": now}
            row = db.execute(CLAIM, lease).fetchone()
        return _record(row) if row else None

    def heartbeat(self, job_id, worker_id, lease_seconds, progress=None, checkpoint=None, duration=None):
        with self._tx() as db:
            return db.execute(
                "UPDATE jobs SET lease_until = %s, progress = COALESCE(%s, progress), "
                "checkpoint = COALESCE(%s, checkpoint), duration = COALESCE(%s, duration) "
                "WHERE id = %s AND worker_id = %s AND status = 'in_progress'",
                (self.clock() + lease_seconds, progress, checkpoint, duration, job_id, worker_id),
            ).rowcount == 1  # fmt: skip

    def finish(self, job_id, worker_id, result=None, content_type=None, error=None) -> bool:
        with self._tx() as db:  # the row stays locked while the result is stored: a claimer skips it
            held = db.execute(
                "SELECT 1 FROM jobs WHERE id = %s AND worker_id = %s AND status = 'in_progress' FOR UPDATE",
                (job_id, worker_id),
            ).fetchone()
            if held is None:
                return False  # another worker holds it now, or it was cancelled: store nothing
            size = 0 if result is None else self.blobs.put(result_key(job_id), io.BytesIO(result))
            db.execute(
                "UPDATE jobs SET status = %s, completed_at = %s, result_type = %s, result_bytes = %s, "
                "error = %s, progress = CASE WHEN %s THEN 1.0 ELSE progress END, worker_id = NULL, "
                "lease_until = NULL, audio_bytes = 0, checkpoint = NULL WHERE id = %s",
                ("failed" if error else "completed", self.clock(), content_type, size,
                 Jsonb(dict(error)) if error else None, error is None, job_id),
            )  # fmt: skip
        self.blobs.delete(audio_key(job_id))
        return True

    def release(self, job_id: str, worker_id: str) -> bool:
        with self._tx() as db:
            return db.execute(
                "UPDATE jobs SET status = 'queued', worker_id = NULL, lease_until = NULL "
                "WHERE id = %s AND worker_id = %s AND status = 'in_progress'",
                (job_id, worker_id),
            ).rowcount == 1  # fmt: skip

    def pending_callbacks(self, limit: int) -> list[JobRecord]:
        with self._tx() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE status IN ('completed', 'failed', 'cancelled') "
                "AND callback_url IS NOT NULL AND notified_at IS NULL ORDER BY completed_at, seq LIMIT %s",
                (limit,),
            ).fetchall()
        return [_record(r) for r in rows]

    def mark_notified(self, job_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET notified_at = %s WHERE id = %s", (self.clock(), job_id))

    def sweep(self, ttl: float) -> int:
        cutoff = self.clock() - ttl
        with self._tx() as db:
            rows = db.execute(
                "DELETE FROM jobs WHERE (status IN ('completed', 'failed', 'cancelled') "
                "AND completed_at < %(cutoff)s) OR (status = 'queued' AND created_at < %(cutoff)s) "
                "RETURNING id",
                {"cutoff": cutoff},
            ).fetchall()
        for row in rows:  # after the commit: a blob outlives its row only if this worker dies here
            self.blobs.delete(audio_key(row["id"]))
            self.blobs.delete(result_key(row["id"]))
        return len(rows)

    def usage(self) -> int:
        with self._tx() as db:
            return self._usage(db)

    def counts(self) -> dict[str, int]:
        with self._tx() as db:
            rows = db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        return {**dict.fromkeys(STATUSES, 0), **{r["status"]: r["n"] for r in rows}}

    def oldest_queued(self) -> float | None:
        with self._tx() as db:
            return db.execute("SELECT MIN(created_at) AS t FROM jobs WHERE status = 'queued'").fetchone()["t"]


def _check_budget(usage: int, size: int, budget: int) -> None:
    if budget and usage + size > budget:
        raise BudgetExceeded(size, budget - usage)
