"""The one-VM job store: SQLite (WAL) in JOBS_DIR, shared by every gunicorn worker and by both colours of a
blue/green deploy; audio and results are blobs (files.py). A claim is one `BEGIN IMMEDIATE` transaction, so of
any number of claimers (threads or processes) exactly one takes a job."""

from __future__ import annotations

import io
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

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
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, owner TEXT NOT NULL,
    status TEXT NOT NULL, endpoint TEXT NOT NULL, params TEXT NOT NULL, response_format TEXT NOT NULL,
    filename TEXT NOT NULL, callback_url TEXT, created_at REAL NOT NULL, audio_bytes INTEGER NOT NULL,
    progress REAL NOT NULL DEFAULT 0, duration REAL, started_at REAL, completed_at REAL, error TEXT,
    worker_id TEXT, lease_until REAL, attempts INTEGER NOT NULL DEFAULT 0, checkpoint TEXT,
    result_type TEXT, result_bytes INTEGER NOT NULL DEFAULT 0, notified_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, seq);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
"""
SPEC_FIELDS = ("endpoint", "params", "response_format", "filename", "callback_url")


def _record(row: sqlite3.Row) -> JobRecord:
    spec = JobSpec(row["endpoint"], json.loads(row["params"]), row["response_format"], row["filename"],
                   row["callback_url"])  # fmt: skip
    skip = {*SPEC_FIELDS, "seq", "error"}
    values = {k: row[k] for k in row.keys() if k not in skip}
    return JobRecord(spec=spec, error=json.loads(row["error"]) if row["error"] else None, **values)


class SqliteJobStore(BlobsBackedStore):
    def __init__(self, path: str | Path, blobs: Blobs, clock: Clock = time.time):
        self.path, self.blobs, self.clock = str(path), blobs, clock
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:  # WAL: readers never wait for the writer; the mode stays with the file
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
        finally:
            db.close()

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One connection per transaction (threads and processes each get their own); `write` takes the
        database's write lock up front, so a read-then-update cannot interleave with another writer."""
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def _usage(self, db: sqlite3.Connection) -> int:
        return db.execute("SELECT COALESCE(SUM(audio_bytes + result_bytes), 0) FROM jobs").fetchone()[0]

    def create(self, owner: str, spec: JobSpec, audio: BinaryIO, size: int, budget: int) -> JobRecord:
        with self._tx() as db:
            _check_budget(self._usage(db), size, budget)
        job_id = new_job_id()
        size = self.blobs.put(audio_key(job_id), audio)
        try:
            with self._tx(write=True) as db:  # again under the write lock: another upload may have won
                _check_budget(self._usage(db), size, budget)
                db.execute(
                    "INSERT INTO jobs (id, owner, status, endpoint, params, response_format, filename, "
                    "callback_url, created_at, audio_bytes) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
                    (job_id, owner, spec.endpoint, json.dumps(dict(spec.params)), spec.response_format,
                     spec.filename, spec.callback_url, self.clock(), size),
                )  # fmt: skip
        except BaseException:
            self.blobs.delete(audio_key(job_id))
            raise
        return self.get(None, job_id)

    def get(self, owner: str | None, job_id: str) -> JobRecord | None:
        with self._tx() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _record(row) if row and owner in (None, row["owner"]) else None

    def list_jobs(self, owner: str, after: str | None, limit: int) -> tuple[list[JobRecord], bool]:
        with self._tx() as db:
            start = db.execute("SELECT seq FROM jobs WHERE id = ? AND owner = ?", (after, owner)).fetchone()
            rows = db.execute(
                "SELECT * FROM jobs WHERE owner = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                (owner, start["seq"] if start else 2**62, limit + 1),
            ).fetchall()
        return [_record(r) for r in rows[:limit]], len(rows) > limit

    def cancel(self, owner: str, job_id: str) -> JobRecord | None:
        with self._tx(write=True) as db:
            db.execute(
                "UPDATE jobs SET status = 'cancelled', completed_at = ?, worker_id = NULL, "
                "lease_until = NULL WHERE id = ? AND owner = ? AND status IN ('queued', 'in_progress')",
                (self.clock(), job_id, owner),
            )
        return self.get(owner, job_id)

    def claim(self, worker_id: str, lease_seconds: float, max_attempts: int) -> JobRecord | None:
        now = self.clock()
        with self._tx(write=True) as db:
            error = {
                "message": f"The job stopped {max_attempts} times before it ended (its worker died or was "
                "stopped each time).",
                "type": "server_error",
                "code": "too_many_attempts",
            }
            db.execute(
                "UPDATE jobs SET status = 'failed', completed_at = ?, error = ?, worker_id = NULL, "
                "lease_until = NULL WHERE status = 'in_progress' AND lease_until < ? AND attempts >= ?",
                (now, json.dumps(error), now, max_attempts),
            )
            row = db.execute(
                "SELECT id FROM jobs WHERE status = 'queued' OR (status = 'in_progress' AND lease_until < ?) "
                "ORDER BY seq LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = 'in_progress', worker_id = ?, lease_until = ?, "
                "attempts = attempts + 1, started_at = COALESCE(started_at, ?) WHERE id = ?",
                (worker_id, now + lease_seconds, now, row["id"]),
            )
        return self.get(None, row["id"])

    def heartbeat(self, job_id, worker_id, lease_seconds, progress=None, checkpoint=None, duration=None):
        with self._tx(write=True) as db:
            return db.execute(
                "UPDATE jobs SET lease_until = ?, progress = COALESCE(?, progress), "
                "checkpoint = COALESCE(?, checkpoint), duration = COALESCE(?, duration) "
                "WHERE id = ? AND worker_id = ? AND status = 'in_progress'",
                (self.clock() + lease_seconds, progress, checkpoint, duration, job_id, worker_id),
            ).rowcount == 1  # fmt: skip

    def finish(self, job_id, worker_id, result=None, content_type=None, error=None) -> bool:
        with self._tx(write=True) as db:  # the result is written under the lock: a worker that lost the job
            if (
                db.execute(
                    "SELECT 1 FROM jobs WHERE id = ? AND worker_id = ? AND status = 'in_progress'",
                    (job_id, worker_id),
                ).fetchone()
                is None
            ):
                return False  # never overwrites the holder's
            size = 0 if result is None else self.blobs.put(result_key(job_id), io.BytesIO(result))
            db.execute(
                "UPDATE jobs SET status = ?, completed_at = ?, result_type = ?, result_bytes = ?, error = ?, "
                "progress = CASE WHEN ? THEN 1.0 ELSE progress END, worker_id = NULL, lease_until = NULL, "
                "audio_bytes = 0, checkpoint = NULL WHERE id = ?",
                ("failed" if error else "completed", self.clock(), content_type, size,
                 json.dumps(dict(error)) if error else None, error is None, job_id),
            )  # fmt: skip
        self.blobs.delete(audio_key(job_id))
        return True

    def release(self, job_id: str, worker_id: str) -> bool:
        with self._tx(write=True) as db:
            return db.execute(
                "UPDATE jobs SET status = 'queued', worker_id = NULL, lease_until = NULL "
                "WHERE id = ? AND worker_id = ? AND status = 'in_progress'",
                (job_id, worker_id),
            ).rowcount == 1  # fmt: skip

    def pending_callbacks(self, limit: int) -> list[JobRecord]:
        with self._tx() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE status IN ('completed', 'failed', 'cancelled') "
                "AND callback_url IS NOT NULL AND notified_at IS NULL ORDER BY completed_at, seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [_record(r) for r in rows]

    def mark_notified(self, job_id: str) -> None:
        with self._tx(write=True) as db:
            db.execute("UPDATE jobs SET notified_at = ? WHERE id = ?", (self.clock(), job_id))

    def sweep(self, ttl: float) -> int:
        cutoff = self.clock() - ttl
        with self._tx(write=True) as db:
            old = db.execute(
                "SELECT id FROM jobs WHERE (status IN ('completed', 'failed', 'cancelled') "
                "AND completed_at < ?) OR (status = 'queued' AND created_at < ?)",
                (cutoff, cutoff),
            )
            ids = [r["id"] for r in old]
            db.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in ids])
        for job_id in ids:
            self.blobs.delete(audio_key(job_id))
            self.blobs.delete(result_key(job_id))
        return len(ids)

    def usage(self) -> int:
        with self._tx() as db:
            return self._usage(db)

    def counts(self) -> dict[str, int]:
        with self._tx() as db:
            rows = db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {**dict.fromkeys(STATUSES, 0), **{status: n for status, n in rows}}

    def oldest_queued(self) -> float | None:
        with self._tx() as db:
            return db.execute("SELECT MIN(created_at) FROM jobs WHERE status = 'queued'").fetchone()[0]


def _check_budget(usage: int, size: int, budget: int) -> None:
    if budget and usage + size > budget:
        raise BudgetExceeded(size, budget - usage)
