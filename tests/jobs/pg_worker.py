"""A job worker in a process of its own, as a fleet VM's would be, for tests/jobs/test_postgres_store.py.

python -m tests.jobs.pg_worker drain URL NAME   waits for "go" on stdin, then claims and finishes jobs
                                                until none is left; prints the ids it took, one per line
python -m tests.jobs.pg_worker hold URL LEASE   claims one job, saves a checkpoint, prints "holding ID",
                                                then starts finishing it and never returns (the test
                                                kills it while its transaction holds the job's row lock)
"""

from __future__ import annotations

import sys
import threading
from typing import BinaryIO

from service.jobs.postgres import PostgresJobStore


class NoBlobs:
    """Blobs that claims and finishes without a result never need; `put` hangs (a stuck upload)."""

    def put(self, key: str, stream: BinaryIO) -> int:
        print("uploading", flush=True)
        threading.Event().wait()  # forever
        return 0

    def delete(self, key: str) -> None:
        pass


def drain(url: str, name: str) -> None:
    store = PostgresJobStore(url, NoBlobs(), pool_size=1)
    store.usage()  # connected: the schema exists
    print("ready", flush=True)
    sys.stdin.readline()
    taken = []
    while (job := store.claim(name, 60.0, 3)) is not None:
        taken.append(job.id)
        assert store.finish(job.id, name, error={"message": "x", "type": "t", "code": "c"}), job.id
    print("\n".join(taken), flush=True)
    store.close()


def hold(url: str, lease: float) -> None:
    store = PostgresJobStore(url, NoBlobs(), pool_size=1)
    job = store.claim("doomed", lease, 3)
    assert store.heartbeat(job.id, "doomed", lease, progress=0.5, checkpoint='{"windows": 3}')
    print(f"holding {job.id}", flush=True)
    store.finish(job.id, "doomed", b"never stored", "text/plain")


if __name__ == "__main__":
    mode, url, arg = sys.argv[1:4]
    drain(url, arg) if mode == "drain" else hold(url, float(arg))
