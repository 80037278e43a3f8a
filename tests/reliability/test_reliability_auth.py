"""API keys through the real gunicorn and the official openai client; secrets stay out of logs and argv."""

from __future__ import annotations

import subprocess

import openai
import psutil
import pytest
import requests
from reliability_helpers import API_KEY, OTHER_KEY, assert_error, auth

ENDPOINT = "/v1/audio/transcriptions"


def client(service, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=service.url + "/v1", api_key=key, max_retries=0, timeout=120)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        auth("wrong-key-0123456789abcdef"),
        auth(API_KEY[:-1]),
        auth(API_KEY + "x"),
        {"Authorization": API_KEY},
        {"Authorization": f"Basic {API_KEY}"},
        auth(""),
    ],
    ids=["none", "wrong", "prefix", "longer", "no-scheme", "basic", "empty"],
)
def test_requests_without_a_valid_key_get_401_in_the_error_shape(guarded, audio_dir, headers):
    with open(audio_dir / "speech.wav", "rb") as f:
        resp = requests.post(guarded.url + ENDPOINT, files={"file": f}, headers=headers, timeout=30)
    assert_error(resp, 401, "invalid_api_key")
    assert_error(requests.get(guarded.url + "/v1/models", headers=headers, timeout=30), 401)


def test_the_openai_client_with_a_wrong_key_gets_authentication_error(guarded, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f, pytest.raises(openai.AuthenticationError) as caught:
        client(guarded, "not-the-key-0123456789").audio.transcriptions.create(model="whisper-1", file=f)
    assert caught.value.status_code == 401
    assert caught.value.body["code"] == "invalid_api_key"


@pytest.mark.parametrize("key", [API_KEY, OTHER_KEY], ids=["first", "second"])
def test_the_openai_client_with_any_configured_key_transcribes(guarded, audio_dir, key):
    with open(audio_dir / "speech.wav", "rb") as f:
        result = client(guarded, key).audio.transcriptions.create(model="whisper-1", file=f)
    assert isinstance(result.text, str) and result.usage.seconds == 5
    assert client(guarded, key).models.retrieve("whisper-1").id == "whisper-1"


def test_the_documented_url_form_works_with_requests_and_the_401_names_it(guarded, audio_dir):
    """Issue 27: Python's requests sends no credentials for http://KEY@host (only for user:password@), so a
    client built on it got a bare 401; the documented form is http://whisper:KEY@host, and the 401 says so."""
    documented = guarded.url.replace("http://", f"http://whisper:{API_KEY}@")
    assert requests.get(documented + "/v1/models", timeout=30).status_code == 200
    with open(audio_dir / "speech.wav", "rb") as f:
        asr = requests.post(
            documented + "/asr", params={"output": "json"}, files={"audio_file": f}, timeout=120
        )
    assert asr.status_code == 200 and "segments" in asr.json()
    key_only = guarded.url.replace("http://", f"http://{API_KEY}@")
    refused = requests.get(key_only + "/v1/models", timeout=30)
    assert "Authorization" not in refused.request.headers  # requests drops a user name without a password
    error = assert_error(refused, 401, "invalid_api_key")
    assert "http://whisper:<key>@host" in error["message"], error
    # curl sends the user name of a key-only URL (as "KEY:"): refused (#37), since proxies log user names
    curl = ["curl", "-s", "-w", "\n%{http_code}", key_only + "/v1/models"]
    body, status = subprocess.run(curl, capture_output=True, text=True, timeout=30).stdout.rsplit("\n", 1)
    assert status == "401" and "user name is refused" in body and API_KEY not in body


def test_probes_and_openapi_are_open(guarded):
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert requests.get(guarded.url + path, timeout=30).status_code == 200, path
    doc = requests.get(guarded.url + "/openapi.json", timeout=30).json()
    assert doc["security"] == [{"bearer": []}, {"basic": []}]  # Basic: the key as password (URL credentials)
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "One of API_KEYS (if set).",
    }


def test_metrics_are_only_on_the_metrics_port(guarded):
    assert_error(requests.get(guarded.url + "/metrics", headers=auth(), timeout=30), 404, "not_found")
    assert_error(requests.get(guarded.url + "/metrics", timeout=30), 401)  # no hint without a key
    assert "whisper_rejected_requests_total" in guarded.metrics()
    metrics_port = int(guarded.metrics_url.split(":")[2].split("/")[0])
    listening = {c.laddr for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    assert ("127.0.0.1", metrics_port) in listening  # METRICS_HOST=127.0.0.1 as in the deployed container


def test_refusals_are_counted(guarded):
    before = guarded.metric("whisper_rejected_requests_total", reason="unauthorized")
    requests.get(guarded.url + "/v1/models", headers=auth("nope-nope-nope-nope"), timeout=30)
    assert guarded.metric("whisper_rejected_requests_total", reason="unauthorized") == before + 1


def test_keys_appear_neither_in_logs_nor_in_process_arguments(guarded, audio_dir):
    with open(audio_dir / "speech.wav", "rb") as f:  # a logged request with a wrong key, one with a right key
        requests.post(guarded.url + ENDPOINT, files={"file": f}, headers=auth(API_KEY[::-1]), timeout=60)
    with open(audio_dir / "speech.wav", "rb") as f:
        assert requests.post(guarded.url + ENDPOINT, files={"file": f}, headers=auth(), timeout=60).ok
    master = psutil.Process(guarded.process.pid)
    processes = [master, *master.children(recursive=True)]
    assert len(processes) >= 2  # the master and its worker
    for process in processes:
        argv = open(f"/proc/{process.pid}/cmdline", "rb").read()
        assert API_KEY.encode() not in argv and OTHER_KEY.encode() not in argv
    assert API_KEY in guarded.env["API_KEYS"]  # the keys reached the server through its environment...
    log = guarded.log()
    for secret in (API_KEY, OTHER_KEY, API_KEY[::-1]):
        assert secret not in log  # ...and never its log, not even a rejected one


def test_the_image_runs_as_non_root_and_bakes_no_secret():
    """The Dockerfile (owned by the image): last USER not root; no key or token in ENV, ARG or the context."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    dockerfile = (root / "Dockerfile").read_text()
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    baked = [line for line in dockerfile.splitlines() if line.split()[:1] in (["ENV"], ["ARG"])]
    assert not [line for line in baked if any(s in line.upper() for s in ("API_KEY", "TOKEN", "PASSWORD"))]
    patterns = [p for p in (root / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    assert patterns[0] == "*"  # an allowlist: .env files, stack configs and .deploy/ never reach the build
    assert not [
        p for p in patterns if p.startswith("!") and any(s in p for s in (".env", ".deploy", "Pulumi."))
    ]
