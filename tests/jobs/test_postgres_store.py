"""The fleet's job store on a real PostgreSQL (a throwaway cluster of Debian's package) with its blobs in
Cloud Storage (the official client against gcp-storage-emulator, the one stand-in): the shared store contract,
then what only a fleet has: workers in separate processes claiming at once, SKIP LOCKED never waiting on
another's row, and a worker killed mid-job (holding its row lock) whose job another takes over once the lease
lapses."""

from __future__ import annotations

import io
import itertools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from service.jobs.gcs import GcsBlobs
from service.jobs.postgres import PostgresJobStore
from service.jobs.store import JobSpec
from tests.jobs.fleet_services import free_port, postgres_cluster, storage_emulator
from tests.jobs.store_contract import *  # noqa: F403

ROOT = Path(__file__).resolve().parents[2]
SPEC = JobSpec("transcriptions", {"model": "whisper-1"}, "json", "a.wav")
_numbers = itertools.count()


@pytest.fixture(scope="module")
def cluster():
    with postgres_cluster() as running:
        yield running


@pytest.fixture(scope="module")
def gcs_client():
    with storage_emulator() as client:
        yield client


@pytest.fixture
def database(cluster):
    """A fresh database for one test (every store of the test shares it), dropped after."""
    name = f"jobs_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(cluster.url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield cluster.url(name)
    with psycopg.connect(cluster.url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def make_store(database, gcs_client):
    bucket = gcs_client.create_bucket(f"jobs-test-{os.getpid()}-{next(_numbers)}")
    stores: list[PostgresJobStore] = []

    def make(clock):
        stores.append(PostgresJobStore(database, GcsBlobs(f"gs://{bucket.name}/fleet", gcs_client), clock))
        return stores[-1]

    yield make
    for store in stores:
        store.close()


def _queue(store, n: int) -> set[str]:
    return {store.create("k", SPEC, io.BytesIO(b"RIFF"), 4, 0).id for _ in range(n)}


def _worker(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.jobs.pg_worker", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_blobs_live_in_the_bucket_under_the_prefix(make_store, clock, gcs_client):
    store = make_store(clock)
    job = store.create("k", SPEC, io.BytesIO(b"x" * 300_000), 300_000, 0)
    names = [b.name for b in store.blobs.bucket.list_blobs()]
    assert names == [f"fleet/audio/{job.id}"]
    assert store.open_audio(job.id).read() == b"x" * 300_000


def test_two_worker_processes_claiming_at_once_take_each_job_once(make_store, clock, database):
    """Two processes, as two VMs: both wait at a start line, then claim and finish until nothing is left."""
    created = _queue(make_store(clock), 300)
    workers = [_worker("drain", database, name) for name in ("vm-a", "vm-b")]
    for worker in workers:
        assert worker.stdout.readline().strip() == "ready"
    for worker in workers:  # as close to together as two pipes allow
        worker.stdin.write("go\n")
        worker.stdin.flush()
    taken = {}
    for worker, name in zip(workers, ("vm-a", "vm-b")):
        out, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0
        taken[name] = [line for line in out.split() if line]
    everything = taken["vm-a"] + taken["vm-b"]
    assert len(everything) == len(set(everything)) == len(created)  # each job once
    assert set(everything) == created
    assert taken["vm-a"] and taken["vm-b"], {k: len(v) for k, v in taken.items()}  # both really worked


def test_a_claim_skips_a_locked_row_instead_of_waiting_for_it(make_store, clock, database):
    store = make_store(clock)
    first, second = sorted(_queue(store, 1)), sorted(_queue(store, 1))
    with psycopg.connect(database) as other:  # another worker, mid-transaction on the oldest job
        other.execute("SELECT id FROM jobs WHERE id = %s FOR UPDATE", (first[0],))
        got = {}
        claimer = threading.Thread(target=lambda: got.setdefault("job", store.claim("w", 30, 3)))
        claimer.start()
        claimer.join(timeout=10)
        assert not claimer.is_alive(), "the claim waited for another worker's row lock"
        assert got["job"].id == second[0]
        other.rollback()
    assert store.claim("w", 30, 3).id == first[0]


def test_a_worker_killed_mid_job_holding_its_row_has_the_job_taken_over(make_store, database):
    """SIGKILL while its transaction holds the job's row lock (mid-finish): PostgreSQL ends that session, the
    lease lapses, and another worker takes the job with its checkpoint; the dead one stored no result."""
    lease = 2.0
    store = make_store(time.time)
    (job_id,) = _queue(store, 1)
    doomed = _worker("hold", database, str(lease))
    assert doomed.stdout.readline().split() == ["holding", job_id]
    assert doomed.stdout.readline().strip() == "uploading"  # inside finish, the row locked
    assert store.claim("survivor", lease, 3) is None  # its lease still runs
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    time.sleep(lease + 0.5)
    taken = store.claim("survivor", lease, 3)
    assert taken is not None and taken.id == job_id and taken.worker_id == "survivor"
    assert taken.attempts == 2 and taken.checkpoint == '{"windows": 3}' and taken.progress == 0.5
    assert store.read_result(job_id) is None
    assert store.finish(job_id, "survivor", b'{"text": "done"}', "application/json")
    assert store.read_result(job_id) == (b'{"text": "done"}', "application/json")


def test_stores_started_together_create_the_schema_once(database, gcs_client, clock):
    """Every worker of every VM opens its store at start: the schema's creation must not race with itself."""
    bucket = gcs_client.create_bucket(f"jobs-test-{os.getpid()}-{next(_numbers)}")
    blobs = GcsBlobs(f"gs://{bucket.name}", gcs_client)
    stores = [PostgresJobStore(database, blobs, clock) for _ in range(6)]
    barrier, errors = threading.Barrier(len(stores)), []

    def start(store):
        barrier.wait()
        try:
            store.usage()
        except Exception as failure:  # noqa: BLE001 (collected for the assertion)
            errors.append(failure)

    threads = [threading.Thread(target=start, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in stores:
        store.close()
    assert errors == []


@pytest.mark.parametrize("where", ["wrong password", "nothing listening"])
def test_a_failed_connection_shows_the_password_in_no_error_and_no_log_line(cluster, caplog, where):
    secret = "s3cr3t" + os.urandom(6).hex()
    port = cluster.port if where == "wrong password" else free_port()
    store = PostgresJobStore(f"postgresql://postgres:{secret}@127.0.0.1:{port}/postgres", None, timeout=2)
    with caplog.at_level(logging.DEBUG), pytest.raises(Exception) as failure:
        store.usage()
    store.close()
    assert caplog.records  # the pool did say why it could not connect ...
    assert secret not in str(failure.value) + repr(failure.value) + caplog.text  # ... without the password
