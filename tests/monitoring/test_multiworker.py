"""With two gunicorn workers the master's /metrics adds both workers up: N transcriptions sent in parallel
count N, and a worker killed and replaced loses none of its counts nor leaves a stale readiness."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from .conftest import running_service, transcribe, wait_until

ENDPOINT = "/v1/audio/transcriptions"
SENT = 4


def samples(service) -> dict[str, list]:
    """Samples of the master's exposition, by sample name."""
    text = requests.get(service.metrics_url, timeout=10).text
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def total(service, name: str, **labels) -> float:
    return sum(
        s.value
        for s in samples(service).get(name, [])
        if all(s.labels.get(k) == v for k, v in labels.items())
    )


def workers_of(service) -> list[psutil.Process]:
    return psutil.Process(service.process.popen.pid).children()


def send_in_parallel(service, wav, count: int) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        codes = list(pool.map(lambda _: transcribe(service, wav).status_code, range(count)))
    assert codes == [200] * count


def assert_counts(service, expected: int) -> None:
    ok = {"endpoint": ENDPOINT, "status": "200"}
    assert total(service, "whisper_requests_total", **ok) == expected
    assert total(service, "whisper_request_duration_seconds_count", endpoint=ENDPOINT) == expected
    assert total(service, "whisper_stage_duration_seconds_count", stage="inference") == expected
    assert total(service, "whisper_audio_duration_seconds_count") == expected


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, checkpoint):
    with running_service(checkpoint, tmp_path_factory.mktemp("two-workers"), workers=2) as service:
        # /readyz answers from whichever worker takes the probe: wait until both report ready.
        wait_until(lambda: total(service, "whisper_model_ready") == 2, 120, "both workers ready")
        assert len(workers_of(service)) == 2
        yield service


def test_counts_add_up_across_workers(two_workers, speech_wav):
    send_in_parallel(two_workers, speech_wav, SENT)
    assert_counts(two_workers, SENT)
    assert total(two_workers, "whisper_requests_in_flight") == 0
    assert total(two_workers, "whisper_queue_depth") == 0
    build_info = samples(two_workers)["whisper_build_info"]
    assert len(build_info) == 1 and build_info[0].value == 1  # one series, not one per worker


def test_a_replaced_worker_keeps_its_counts(two_workers, speech_wav):
    before = total(two_workers, "whisper_requests_total", endpoint=ENDPOINT, status="200")
    assert before == SENT  # the previous test's traffic
    victim = workers_of(two_workers)[0]
    os.kill(victim.pid, signal.SIGKILL)
    wait_until(
        lambda: (
            victim.pid not in {w.pid for w in workers_of(two_workers)}
            and len(workers_of(two_workers)) == 2
            and total(two_workers, "whisper_model_ready") == 2
        ),
        120,
        "gunicorn to replace the killed worker and the new one to be ready",
    )
    assert_counts(two_workers, SENT)  # the dead worker's counts stay in the sum
    send_in_parallel(two_workers, speech_wav, 2)
    assert_counts(two_workers, SENT + 2)
