"""The fleet store's two services for tests: a real, throwaway PostgreSQL cluster (Debian's `postgresql`
package: initdb + pg_ctl, password authentication over TCP as on Cloud SQL) and the one stand-in, a Cloud
Storage emulator (gcp-storage-emulator from PyPI) that the official google-cloud-storage client talks to.

As root (CI), the cluster runs as Debian's `postgres` user: PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.support import free_port

# Settings for a cluster that lives a few minutes: no crash safety (the machine is shared and small).
FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        pytest.fail("PostgreSQL is not installed: run scripts/system-deps.sh test (Debian's postgresql)")
    return Path(found[-1]).parent


@dataclass(frozen=True)
class Cluster:
    port: int
    password: str  # the superuser's, `postgres`

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"


@contextmanager
def postgres_cluster() -> Iterator[Cluster]:
    bindir, root = _bindir(), Path(tempfile.mkdtemp(prefix="whisper-pg-"))
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    password, port = secrets.token_hex(16), free_port()
    (root / "pw").write_text(password)
    if as_owner:
        shutil.chown(root, "postgres")
        shutil.chown(root / "pw", "postgres")
    data, log = root / "data", root / "log"

    def run(*command: str) -> None:
        done = subprocess.run([*as_owner, *command], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr + (log.read_text() if log.exists() else "")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
            f"--pwfile={root / 'pw'}", "-E", "UTF8")  # fmt: skip
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 {FAST}"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options, "start")
        yield Cluster(port, password)
    finally:
        if (data / "postmaster.pid").exists():
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def storage_emulator() -> Iterator[object]:
    """A google.cloud.storage.Client on a local gcp-storage-emulator (in memory)."""
    from gcp_storage_emulator.server import create_server
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"  # a service reaches it as STORAGE_EMULATOR_HOST
    client = storage.Client(
        project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
    )
    client.emulator_host = endpoint
    try:
        yield client
    finally:
        server.stop()
