"""The background-job knobs (service/jobs/): where jobs live, how long, how much disk, and their callbacks.

Jobs live in JOBS_DIR (SQLite + files; on a VM the persistent disk, mounted into both colours' containers);
on the fleet JOBS_DATABASE_URL and JOBS_BUCKET (declared with the fleet's settings) move them to PostgreSQL
and Cloud Storage. WEBHOOK_SECRET is a SecretStr: its repr and str never show the value, so it stays out of
logs and tracebacks.
"""

from __future__ import annotations

import base64
import binascii

from pydantic import SecretStr

from .knobs import Knobs, knob
from .parse import SettingsError, boolean, number, text


def webhook_secret(name: str, raw: str) -> SecretStr:
    """A Standard Webhooks secret: `whsec_` and the base64 of at least 24 random bytes."""
    example = f"{name}=whsec_$(openssl rand -base64 32)"
    value = raw.strip()
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not value.startswith("whsec_") or len(key) < 24:
        raise SettingsError(f"{name} is not a whsec_ secret of at least 24 bytes, e.g. {example}")
    return SecretStr(value)


DAY = 86400.0
GIB = 1 << 30


class JobsSettings(Knobs):
    jobs_dir: str = knob(
        "JOBS_DIR",
        "data/jobs",
        text,
        "Data directory of background jobs (SQLite + audio + results); the image: /data/jobs, a volume.",
    )
    jobs_workers: int = knob(
        "JOBS_WORKERS",
        1,
        number(int, 0, "1"),
        "Jobs each API worker runs at once, beside its requests; 0: it only accepts and serves jobs.",
    )
    jobs_ttl: float = knob(
        "JOBS_TTL",
        DAY,
        number(float, 60, "86400"),
        "Seconds a finished job (its result) and a job still queued are kept, then deleted.",
    )
    jobs_max_bytes: int = knob(
        "JOBS_MAX_BYTES",
        10 * GIB,
        number(int, 0, "10737418240"),
        "Disk budget of the job store (audio + results), in bytes; a job over it is refused (507). 0: none.",
    )
    jobs_lease_seconds: float = knob(
        "JOBS_LEASE_SECONDS",
        60.0,
        number(float, 5, "60"),
        "A running job's lease: a worker silent this long (it died) loses the job to another.",
    )
    jobs_max_attempts: int = knob(
        "JOBS_MAX_ATTEMPTS",
        3,
        number(int, 1, "3"),
        "Times a job may be started (a crash mid-job is one) before it is failed.",
    )
    jobs_background_share: float = knob(
        "JOBS_BACKGROUND_SHARE",
        0.2,
        number(float, 0.01, "0.2"),
        "Share of model calls a background job gets while interactive requests wait (0.01-1).",
    )
    webhook_secret: SecretStr = knob(
        "WEBHOOK_SECRET",
        SecretStr(""),
        webhook_secret,
        "Standard Webhooks signing secret (whsec_...) for callbacks; unset: callback_url is refused.",
        "(unset)",
    )
    webhook_allow_private: bool = knob(
        "WEBHOOK_ALLOW_PRIVATE",
        False,
        boolean,
        "Allow callbacks to private, loopback and link-local addresses (refused by default: SSRF).",
    )
    webhook_retry_seconds: float = knob(
        "WEBHOOK_RETRY_SECONDS",
        3600.0,
        number(float, 0, "3600"),
        "How long a failing callback is retried, with exponential backoff, before it is given up.",
    )
    webhook_timeout: float = knob(
        "WEBHOOK_TIMEOUT", 10.0, number(float, 1, "10"), "Seconds one callback attempt may take."
    )
