"""The service's /metrics: valid exposition (promtool), names and labels the dashboards rely on."""

from __future__ import annotations

import subprocess

import requests


def test_promtool_finds_no_problem(service, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f:
        assert requests.post(service.url + "/v1/audio/transcriptions", files={"file": f}).status_code == 200
    requests.post(service.url + "/v1/audio/transcriptions", data={})  # one 400, so error series exist
    text = service.metrics()
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check.stdout
    names = (
        "whisper_requests_total",
        "whisper_stage_duration_seconds_bucket",
        "whisper_real_time_factor_bucket",
        "whisper_batch_size_bucket",
        "whisper_build_info",
        "whisper_model_ready",
        "whisper_errors_total",
        "whisper_audio_seconds_total",
    )
    for name in names:
        assert name in text, name
    assert service.metric("whisper_model_ready") == 1
    buckets = [
        line for line in text.splitlines() if line.startswith("whisper_request_duration_seconds_bucket")
    ]
    assert any('le="1800.0"' in line for line in buckets)  # reaches long audio, past the default 10 s
    assert service.metric("whisper_stage_duration_seconds_count", stage="inference") >= 1
    assert service.metric("whisper_errors_total") >= 1  # the 400 above
