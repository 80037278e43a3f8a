"""Every bad input gets a 4xx in OpenAI's error shape, and the service stays ready afterwards."""

from __future__ import annotations

import os

import pytest
import requests

ENDPOINT = "/v1/audio/transcriptions"


def assert_error(resp: requests.Response, status: int, param: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"] and "Traceback" not in resp.text and "/tmp" not in resp.text
    if param is not None:
        assert body["error"]["param"] == param
    return body["error"]


@pytest.fixture(autouse=True)
def still_ready(service):
    yield
    assert requests.get(service.url + "/readyz", timeout=30).status_code == 200
    # a refused request is no longer counted as arriving: no later batch waits for it (BATCH_WAIT_MS)
    assert service.metric("whisper_requests_in_intake") == 0


def post(service, files=None, data=None, **kw):
    return requests.post(service.url + ENDPOINT, files=files, data=data or {}, timeout=60, **kw)


def test_missing_file(service):
    assert_error(post(service, data={"model": "whisper-1"}), 400, "file")


def test_empty_file(service):
    err = assert_error(post(service, files={"file": ("a.wav", b"")}), 400, "file")
    assert err["code"] == "empty_file"


def test_random_bytes_named_wav(service):
    assert_error(post(service, files={"file": ("noise.wav", os.urandom(4096))}), 400, "file")


def test_text_file(service):
    assert_error(
        post(service, files={"file": ("notes.txt", b"hello, this is not audio\n" * 20)}), 400, "file"
    )


def test_truncated_mp3(service, audio_dir):
    data = (audio_dir / "speech.mp3").read_bytes()
    resp = post(service, files={"file": ("cut.mp3", data[:200])})
    assert_error(resp, 400, "file")


def test_zero_length_audio(service, audio_dir):
    err = assert_error(
        post(service, files={"file": ("zero.wav", (audio_dir / "zero.wav").read_bytes())}), 400
    )
    assert err["code"] in ("empty_audio", "invalid_audio")


def test_unknown_response_format(service, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f:
        assert_error(post(service, {"file": f}, {"response_format": "xml"}), 400, "response_format")


@pytest.mark.parametrize("value", ["3", "-0.1", "hot"])
def test_bad_temperature(service, audio_dir, value):
    with open(audio_dir / "speech.wav", "rb") as f:
        assert_error(post(service, {"file": f}, {"temperature": value}), 400, "temperature")


def test_unknown_language(service, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f:
        assert_error(post(service, {"file": f}, {"language": "xx"}), 400, "language")


def test_word_granularity_needs_verbose_json(service, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f:
        data = {"response_format": "json", "timestamp_granularities[]": "word"}
        assert_error(post(service, {"file": f}, data), 400, "timestamp_granularities[]")


def test_unknown_model(service, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f:  # 404 as OpenAI answers a model it does not have
        err = assert_error(post(service, {"file": f}, {"model": "whisper-9"}), 404, "model")
    assert err["code"] == "model_not_found"


def test_wrong_method(service):
    assert_error(requests.get(service.url + ENDPOINT), 405)
    assert_error(requests.delete(service.url + "/v1/models"), 405)


def test_unknown_path(service):
    assert_error(requests.get(service.url + "/v2/nothing"), 404)


def test_hostile_filename_is_harmless(service, audio_dir):
    name = "../../etc/passwd/\u00e9t\u00e9 \u4e2d\u6587 ..\\x.wav"
    with open(audio_dir / "speech.wav", "rb") as f:
        resp = post(service, {"file": (name, f)}, {"response_format": "text"})
    assert resp.status_code == 200 and resp.text.strip()
    with open(audio_dir / "speech.wav", "rb") as f:
        resp = requests.post(service.url + "/asr?output=srt", files={"audio_file": (name, f)})
    assert resp.status_code == 200
    disposition = resp.headers["Content-Disposition"]
    assert "/" not in disposition.split("filename*")[0] and ".." not in disposition.split(";")[1]


def test_upload_over_limit_is_refused_before_reading(start_service):
    small = start_service(MAX_UPLOAD_MB="1")
    body = os.urandom(3 * 1024 * 1024)
    resp = requests.post(small.url + ENDPOINT, files={"file": ("big.wav", body)}, timeout=30)
    assert_error(resp, 413)
    assert requests.get(small.url + "/readyz").status_code == 200


def test_audio_longer_than_limit(start_service, audio_dir):
    short = start_service(MAX_AUDIO_SECONDS="10")
    with open(audio_dir / "long.wav", "rb") as f:
        err = assert_error(requests.post(short.url + ENDPOINT, files={"file": f}), 400, "file")
    assert err["code"] == "audio_too_long"


def test_bad_setting_exits_2_with_one_line(checkpoint, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    env = {**os.environ, "WHISPER_MODEL": str(checkpoint), "MAX_UPLOAD_MB": "lots"}
    proc = subprocess.run(
        [gunicorn, "-c", "gunicorn.conf.py"],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: MAX_UPLOAD_MB='lots' is not a number, e.g. MAX_UPLOAD_MB=100"
    ]
