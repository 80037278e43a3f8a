"""Which store a worker opens: SQLite + files under JOBS_DIR on one VM (the default), PostgreSQL when
JOBS_DATABASE_URL is set, Cloud Storage blobs when JOBS_BUCKET is (both declared with the fleet's settings;
absent here, the one-VM store is used)."""

from __future__ import annotations

import time
from pathlib import Path

from .files import DirectoryBlobs
from .sqlite import SqliteJobStore
from .store import Blobs, Clock, JobStore

DATABASE_FILE = "jobs.db"  # in JOBS_DIR


def _plain(value: object) -> str:
    """A setting's text, a secret's revealed (the database URL holds a password)."""
    for reveal in ("reveal", "get_secret_value"):
        if hasattr(value, reveal):
            return getattr(value, reveal)()
    return str(value or "")


def open_blobs(settings) -> Blobs:
    bucket = _plain(getattr(settings, "jobs_bucket", ""))
    if bucket:
        from .gcs import GcsBlobs  # the fleet's: google-cloud-storage

        return GcsBlobs(bucket)
    return DirectoryBlobs(Path(settings.jobs_dir) / "blobs")


def open_store(settings, clock: Clock = time.time) -> JobStore:
    blobs = open_blobs(settings)
    url = _plain(getattr(settings, "jobs_database_url", ""))
    if url:
        from .postgres import PostgresJobStore  # the fleet's: psycopg 3

        pool = {"pool_size": settings.jobs_database_pool, "timeout": settings.jobs_database_timeout}
        return PostgresJobStore(url, blobs, clock, **pool)
    return SqliteJobStore(Path(settings.jobs_dir) / DATABASE_FILE, blobs, clock)
