"""The fleet's job store (service/jobs/postgres.py, gcs.py): job rows in PostgreSQL, audio and results in a
Cloud Storage bucket, so that any VM answers for any job. Unset, jobs stay in SQLite and files under JOBS_DIR
(one VM). The fleet's startup script writes both from the stack (docs/provisioning.md), the database password
read from Secret Manager at boot.

JOBS_DATABASE_URL carries a password: it is a pydantic `SecretStr`, whose repr and str hide it, so it shows in
no log line, traceback, /metrics label or error message (its parser's errors never quote the value).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import SecretStr, model_validator

from .knobs import Knobs, knob
from .parse import SettingsError, number

# https://cloud.google.com/storage/docs/buckets#naming: 3-63 characters of lowercase letters, digits, - _ .,
# starting and ending with a letter or digit (names with dots may reach 222; this stack's have none).
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
POSTGRES_SCHEMES = ("postgresql", "postgres")  # libpq's connection URI schemes


def database_url(name: str, raw: str) -> SecretStr:
    """postgresql://user:password@host[:port]/db[?sslmode=...]; errors name the part, never the value."""
    value = raw.strip()
    if not value:  # unset: the one-VM store
        return SecretStr(value)
    example = f"{name}=postgresql://whisper:PASSWORD@10.20.0.3:5432/whisper_jobs?sslmode=require"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError:
        raise SettingsError(f"{name} is not a URL, e.g. {example}") from None
    if parts.scheme not in POSTGRES_SCHEMES:
        raise SettingsError(f"{name} must start with postgresql://, e.g. {example}")
    if not parts.hostname or not parts.path.strip("/"):
        raise SettingsError(f"{name} needs a host and a database name, e.g. {example}")
    return SecretStr(value)


def bucket(name: str, raw: str) -> str:
    """gs://bucket or gs://bucket/prefix (the prefix without a trailing slash)."""
    value = raw.strip().rstrip("/")
    if not value:  # unset: blobs under JOBS_DIR
        return value
    example = f"{name}=gs://whisper-dev-jobs"
    if not value.startswith("gs://"):
        raise SettingsError(f"{name}={raw!r} must start with gs://, e.g. {example}")
    bucket_name = value[len("gs://") :].split("/", 1)[0]
    if not BUCKET_RE.match(bucket_name):
        raise SettingsError(f"{name}={raw!r}: {bucket_name!r} is not a bucket name, e.g. {example}")
    return value


class JobsFleetSettings(Knobs):
    jobs_database_url: SecretStr = knob(
        "JOBS_DATABASE_URL",
        SecretStr(""),
        database_url,
        "The fleet's job store: postgresql://user:password@host:port/db (a secret: never logged). "
        "Empty: SQLite under JOBS_DIR.",
        "(empty)",
    )
    jobs_bucket: str = knob(
        "JOBS_BUCKET",
        "",
        bucket,
        "With JOBS_DATABASE_URL: gs://bucket[/prefix] holding the jobs' audio and results.",
        "(empty)",
    )
    jobs_database_pool: int = knob(
        "JOBS_DATABASE_POOL",
        4,
        number(int, 1, "4"),
        "Connections to the job database per worker process (the fleet's tier caps their sum).",
    )
    jobs_database_timeout: float = knob(
        "JOBS_DATABASE_TIMEOUT",
        10.0,
        number(float, 1, "10"),
        "Seconds to connect to the job database, and to wait for a free pooled connection.",
    )

    @model_validator(mode="after")
    def _fleet_store_together(self) -> JobsFleetSettings:
        """The two go together: rows in PostgreSQL with audio on one VM's disk strand other VMs' jobs."""
        if bool(self.jobs_database_url) != bool(self.jobs_bucket):
            raise SettingsError(
                "JOBS_DATABASE_URL and JOBS_BUCKET go together (the fleet's job store), "
                "e.g. JOBS_BUCKET=gs://whisper-dev-jobs; set neither for SQLite under JOBS_DIR"
            )
        return self
