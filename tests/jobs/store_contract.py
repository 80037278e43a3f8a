"""What every JobStore backend does (service/jobs/store.py), as tests any backend runs.

A backend's test module provides one fixture, `make_store`: a callable `make_store(clock) -> JobStore` whose
stores all share one fresh backing database and blob space for the test (two calls = two workers on one
database), and star-imports this module:

    from tests.jobs.store_contract import *  # noqa: F403

    @pytest.fixture
    def make_store(tmp_path):
        return lambda clock: SqliteJobStore(tmp_path / "jobs.db", DirectoryBlobs(tmp_path / "blobs"), clock)
"""

from __future__ import annotations

import io
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.jobs.store import STATUSES, BudgetExceeded, JobSpec

__all__ = [
    "FakeClock",
    "clock",
    "store",
    "test_create_keeps_audio_and_returns_a_queued_job",
    "test_another_owner_sees_nothing",
    "test_list_is_newest_first_with_after_and_has_more",
    "test_budget_refuses_before_keeping_anything",
    "test_claim_once_under_two_concurrent_claimers",
    "test_many_jobs_many_claimers_each_job_once",
    "test_expired_lease_is_taken_over_and_old_worker_is_stopped",
    "test_release_hands_back_with_checkpoint",
    "test_cancel_queued_and_running",
    "test_finish_completed_and_failed",
    "test_too_many_attempts_fails_the_job",
    "test_callbacks_pending_until_notified",
    "test_sweep_deletes_after_ttl",
    "test_counts_and_oldest_queued",
    "test_owner_isolation_property",
]

SPEC = JobSpec("transcriptions", {"model": "whisper-1", "language": "en"}, "json", "a.wav")
LEASE = 30.0


class FakeClock:
    """A clock the test moves: the store reads it for every time it writes or compares."""

    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(make_store, clock):
    return make_store(clock)


def _create(store, owner="k1", data=b"RIFFaudio", spec=SPEC, budget=0):
    return store.create(owner, spec, io.BytesIO(data), len(data), budget)


def test_create_keeps_audio_and_returns_a_queued_job(store, clock):
    job = _create(store, data=b"x" * 1000)
    assert job.id.startswith("job_") and job.status == "queued" and job.owner == "k1"
    assert job.created_at == clock.now and job.audio_bytes == 1000 and job.progress == 0.0
    assert job.spec == SPEC
    assert store.open_audio(job.id).read() == b"x" * 1000
    assert store.get("k1", job.id) == job and store.get(None, job.id) == job
    assert store.usage() == 1000


def test_another_owner_sees_nothing(store):
    job = _create(store, owner="k1")
    assert store.get("k2", job.id) is None
    assert store.cancel("k2", job.id) is None
    assert store.list_jobs("k2", None, 10) == ([], False)
    assert store.get("k1", job.id).status == "queued"
    assert store.get("k1", "job_000000000000000000000000") is None


def test_list_is_newest_first_with_after_and_has_more(store, clock):
    ids = []
    for _ in range(5):
        ids.append(_create(store).id)
        clock.advance(1)
    _create(store, owner="other")
    page, more = store.list_jobs("k1", None, 2)
    assert [j.id for j in page] == ids[::-1][:2] and more
    page, more = store.list_jobs("k1", page[-1].id, 2)
    assert [j.id for j in page] == ids[::-1][2:4] and more
    page, more = store.list_jobs("k1", page[-1].id, 2)
    assert [j.id for j in page] == ids[:1] and not more


def test_budget_refuses_before_keeping_anything(store):
    _create(store, data=b"a" * 600, budget=1000)
    with pytest.raises(BudgetExceeded) as refused:
        _create(store, data=b"b" * 600, budget=1000)
    assert refused.value.needed == 600 and refused.value.available == 400
    assert store.usage() == 600 and store.counts()["queued"] == 1
    _create(store, data=b"c" * 400, budget=1000)  # exactly at the budget is fine
    assert store.usage() == 1000


def test_claim_once_under_two_concurrent_claimers(make_store, clock):
    first, second = make_store(clock), make_store(clock)
    job = _create(first)
    barrier, got = threading.Barrier(2), {}

    def claim(name, store):
        barrier.wait()
        got[name] = store.claim(name, LEASE, 3)

    threads = [threading.Thread(target=claim, args=(n, s)) for n, s in (("w1", first), ("w2", second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [name for name, rec in got.items() if rec is not None]
    assert len(winners) == 1, got
    claimed = got[winners[0]]
    assert claimed.id == job.id and claimed.status == "in_progress" and claimed.worker_id == winners[0]
    assert claimed.lease_until == clock.now + LEASE and claimed.attempts == 1
    assert claimed.started_at == clock.now


def test_many_jobs_many_claimers_each_job_once(make_store, clock):
    stores = [make_store(clock) for _ in range(4)]
    created = {_create(stores[0]).id for _ in range(12)}
    taken: list[tuple[str, str]] = []
    lock = threading.Lock()

    def work(i):
        while (rec := stores[i].claim(f"w{i}", LEASE, 3)) is not None:
            with lock:
                taken.append((rec.id, f"w{i}"))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [job_id for job_id, _ in taken]
    assert sorted(ids) == sorted(created)  # every job, each once


def test_expired_lease_is_taken_over_and_old_worker_is_stopped(make_store, clock):
    dead, alive = make_store(clock), make_store(clock)
    job = _create(dead)
    assert dead.claim("dead", LEASE, 3).id == job.id
    assert dead.heartbeat(job.id, "dead", LEASE, progress=0.5, checkpoint='{"windows": 2}')
    assert alive.claim("alive", LEASE, 3) is None  # lease still held
    clock.advance(LEASE + 1)
    taken = alive.claim("alive", LEASE, 3)
    assert taken.id == job.id and taken.worker_id == "alive" and taken.attempts == 2
    assert taken.checkpoint == '{"windows": 2}' and taken.progress == 0.5  # resumes where the dead one was
    assert not dead.heartbeat(job.id, "dead", LEASE, progress=0.9)  # the old worker learns it lost the job
    assert not dead.finish(job.id, "dead", b"late", "text/plain")
    assert alive.get(None, job.id).progress == 0.5
    assert alive.finish(job.id, "alive", b"done", "text/plain")
    assert alive.read_result(job.id) == (b"done", "text/plain")


def test_release_hands_back_with_checkpoint(store, clock):
    job = _create(store)
    store.claim("w1", LEASE, 3)
    store.heartbeat(job.id, "w1", LEASE, progress=0.25, checkpoint="cp", duration=12.5)
    assert not store.release(job.id, "w2")
    assert store.release(job.id, "w1")
    back = store.get(None, job.id)
    assert back.status == "queued" and back.worker_id is None and back.checkpoint == "cp"
    assert back.duration == 12.5
    again = store.claim("w2", LEASE, 3)  # claimable at once, no lease to wait out
    assert again.id == job.id and again.checkpoint == "cp"


def test_cancel_queued_and_running(store, clock):
    running, waiting = _create(store), _create(store)
    clock.advance(1)
    assert store.claim("w1", LEASE, 3).id == running.id  # oldest first
    assert store.cancel("k1", waiting.id).status == "cancelled"
    cancelled = store.cancel("k1", running.id)
    assert cancelled.status == "cancelled" and cancelled.completed_at == clock.now
    assert not store.heartbeat(running.id, "w1", LEASE, progress=0.5)  # the worker stops
    assert not store.finish(running.id, "w1", b"x", "text/plain")
    assert store.get("k1", running.id).status == "cancelled"
    assert store.claim("w2", LEASE, 3) is None
    assert store.cancel("k1", running.id).status == "cancelled"  # idempotent


def test_finish_completed_and_failed(store, clock):
    ok, bad = _create(store, data=b"a" * 100), _create(store, data=b"b" * 50)
    assert store.claim("w", LEASE, 3).id == ok.id
    clock.advance(5)
    assert store.read_result(ok.id) is None
    assert store.finish(ok.id, "w", b'{"text": "hi"}', "application/json")
    done = store.get("k1", ok.id)
    assert done.status == "completed" and done.completed_at == clock.now and done.progress == 1.0
    assert done.result_type == "application/json" and done.result_bytes == 14
    assert store.read_result(ok.id) == (b'{"text": "hi"}', "application/json")
    with pytest.raises(FileNotFoundError):
        store.open_audio(ok.id)  # audio goes once the job has ended
    assert store.usage() == 14 + 50
    store.claim("w", LEASE, 3)
    error = {"message": "bad audio", "type": "invalid_request_error", "code": "invalid_audio"}
    assert store.finish(bad.id, "w", error=error)
    failed = store.get("k1", bad.id)
    assert failed.status == "failed" and dict(failed.error) == error and store.read_result(bad.id) is None
    assert not store.finish(bad.id, "w", b"again", "text/plain")  # once ended, stays ended


def test_too_many_attempts_fails_the_job(store, clock):
    job = _create(store)
    for attempt in range(2):
        assert store.claim(f"w{attempt}", LEASE, 2).id == job.id
        clock.advance(LEASE + 1)
    assert store.claim("w9", LEASE, 2) is None
    failed = store.get(None, job.id)
    assert failed.status == "failed" and failed.error["code"] == "too_many_attempts"


def test_callbacks_pending_until_notified(store, clock):
    hooked = _create(store, spec=JobSpec("transcriptions", {}, "text", callback_url="https://example.com/h"))
    _create(store)  # no callback
    assert store.pending_callbacks(10) == []  # nothing has ended yet
    store.claim("w", LEASE, 3)
    store.finish(hooked.id, "w", b"hi", "text/plain")
    store.cancel("k1", store.list_jobs("k1", None, 10)[0][0].id)
    pending = store.pending_callbacks(10)
    assert [j.id for j in pending] == [hooked.id]
    store.mark_notified(hooked.id)
    assert store.pending_callbacks(10) == []
    assert store.get(None, hooked.id).notified_at == clock.now


def test_sweep_deletes_after_ttl(store, clock):
    done, waiting = _create(store, data=b"d" * 10), _create(store, data=b"w" * 20)
    store.claim("w", LEASE, 3)
    store.finish(done.id, "w", b"r" * 5, "text/plain")
    clock.advance(50)
    fresh = _create(store, data=b"f" * 30)
    assert store.sweep(ttl=100) == 0
    clock.advance(60)  # done ended 110 s ago, waiting was created 110 s ago, fresh 60 s ago
    assert store.sweep(ttl=100) == 2
    assert store.get(None, done.id) is None and store.get(None, waiting.id) is None
    assert store.read_result(done.id) is None
    with pytest.raises(FileNotFoundError):
        store.open_audio(waiting.id)
    assert store.get(None, fresh.id).status == "queued" and store.usage() == 30


def test_counts_and_oldest_queued(store, clock):
    assert store.counts() == dict.fromkeys(STATUSES, 0) and store.oldest_queued() is None
    first = _create(store)
    clock.advance(10)
    _create(store)
    _create(store)
    assert store.oldest_queued() == first.created_at
    store.claim("w", LEASE, 3)
    assert store.counts() == {**dict.fromkeys(STATUSES, 0), "queued": 2, "in_progress": 1}
    assert store.oldest_queued() == first.created_at + 10


OPS = st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["get", "cancel", "list"]))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(OPS, max_size=12))
def test_owner_isolation_property(store, ops):
    """Whatever the owners do, a job is reachable by its owner only."""
    jobs = {owner: _create(store, owner=owner) for owner in ("a", "b")}
    for owner, op in ops:
        for holder, job in jobs.items():
            mine = owner == holder
            if op == "get":
                assert (store.get(owner, job.id) is not None) == mine
            elif op == "cancel":
                assert (store.cancel(owner, job.id) is not None) == mine
            else:
                assert (job.id in {j.id for j in store.list_jobs(owner, None, 100)[0]}) == mine
