"""A short `make loadtest` as a test: 2x the measured capacity, only 200 or 429 + Retry-After, no 5xx,
the readiness probe keeps answering. The full 60 s run with the memory check is `make loadtest`."""

from __future__ import annotations

from bench.loadtest import LoadConfig, markdown, run


def test_twice_the_capacity_gets_only_200_or_429_with_retry_after(start_service):
    service = start_service(WHISPER_FORCE_TOKENS="8", QUEUE_MAX_REQUESTS="16")  # below THREADS=24
    cfg = LoadConfig(
        duration=12, capacity_seconds=6, timeout=120, max_requests=800, rss_early=50, rss_late=400
    )
    report = run(service.url, service.process.pid, cfg)
    assert report.ok, markdown(report, cfg)
    assert report.capacity_rps > 0 and report.sent >= 1
    assert set(report.statuses) <= {"200", "429"} and report.statuses.get("200", 0) > 0
    assert report.probe_failures == 0
    assert report.rss_early_mib is not None  # sampled; the 10 % growth check needs `make loadtest`'s 1000
