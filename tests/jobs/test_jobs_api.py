"""Background jobs through the real gunicorn server, the real tiny.en and the official `openai` client:
202 with the job, its result byte for byte the synchronous body, the list, key isolation, cancel, the disk
budget (507) and the refused private callback."""

from __future__ import annotations

import time

import openai
import pytest
import requests

from tests.conftest import ffmpeg, launch

KEYS = ("k1-" + "a" * 20, "k2-" + "b" * 20)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BUDGET = 4_000_000  # bytes: long.wav (2.4 MB) fits, big.wav (5.8 MB) does not


@pytest.fixture(scope="module")
def server(tiny_en, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jobs-api")
    service = launch(
        tiny_en, tmp, VAD="true", WORKERS="1", API_KEYS=",".join(KEYS), WEBHOOK_SECRET=SECRET,
        JOBS_MAX_BYTES=str(BUDGET),
    )  # fmt: skip
    yield service
    service.stop()
    assert not service.tracebacks(), service.tracebacks()


def auth(key: str = KEYS[0]) -> dict:
    return {"Authorization": f"Bearer {key}"}


def submit(server, path, audio, key=KEYS[0], field="file", params=None, **form):
    with open(audio, "rb") as f:
        return requests.post(
            server.url + path, files={field: (audio.name, f)}, data=form, params=params, headers=auth(key),
            timeout=60,
        )  # fmt: skip


def wait_for(server, job_id, statuses=("completed", "failed", "cancelled"), key=KEYS[0], timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = requests.get(f"{server.url}/v1/audio/jobs/{job_id}", headers=auth(key), timeout=10).json()
        if job["status"] in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


def test_openai_client_submits_with_background_and_reads_the_202_body(server, audio_dir):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEYS[0], max_retries=0, timeout=60)
    with open(audio_dir / "speech.wav", "rb") as f:
        raw = client.audio.transcriptions.with_raw_response.create(
            model="whisper-1", file=f, response_format="verbose_json", extra_body={"background": True}
        )
    assert raw.status_code == 202
    job = raw.http_response.json()
    assert job["object"] == "audio.job" and job["status"] == "queued" and job["id"].startswith("job_")
    assert job["response_format"] == "verbose_json" and job["completed_at"] is None and job["progress"] == 0
    done = wait_for(server, job["id"])
    assert done["status"] == "completed" and done["progress"] == 1 and done["duration"] > 4
    result = requests.get(f"{server.url}/v1/audio/jobs/{job['id']}/result", headers=auth(), timeout=10)
    with open(audio_dir / "speech.wav", "rb") as f:
        sync = client.audio.transcriptions.with_raw_response.create(
            model="whisper-1", file=f, response_format="verbose_json"
        )
    assert result.status_code == 200
    assert result.headers["Content-Type"] == sync.headers["Content-Type"]
    assert result.content == sync.http_response.content  # exactly the synchronous body
    assert "quick" in result.json()["text"].lower()


@pytest.mark.parametrize(
    ("path", "field", "params", "form"),
    [
        ("/v1/audio/transcriptions", "file", None, {"response_format": "srt"}),
        ("/v1/audio/transcriptions", "file", None, {"response_format": "text", "language": "en"}),
        ("/asr", "audio_file", {"output": "vtt"}, {}),
    ],
)
def test_each_face_returns_its_synchronous_body(server, audio_dir, path, field, params, form):
    audio = audio_dir / "speech.mp3"
    if params is None:
        accepted = submit(server, path, audio, field=field, background="true", **form)
    else:
        accepted = submit(server, path, audio, field=field, params={**params, "background": "true"}, **form)
    assert accepted.status_code == 202, accepted.text
    wait_for(server, accepted.json()["id"])
    result = requests.get(f"{server.url}/v1/audio/jobs/{accepted.json()['id']}/result", headers=auth())
    sync = submit(server, path, audio, field=field, params=params, **form)
    assert sync.status_code == 200
    assert (result.status_code, result.headers["Content-Type"]) == (200, sync.headers["Content-Type"])
    assert result.content == sync.content


def test_list_is_the_callers_own_in_openai_shape(server, audio_dir):
    mine = [submit(server, "/v1/audio/transcriptions", audio_dir / "speech.wav", background="true").json()
            for _ in range(3)]  # fmt: skip
    theirs = submit(server, "/v1/audio/transcriptions", audio_dir / "speech.wav", KEYS[1], background="true")
    page = requests.get(f"{server.url}/v1/audio/jobs", params={"limit": 2}, headers=auth()).json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [j["id"] for j in page["data"]] == [mine[2]["id"], mine[1]["id"]]
    assert page["first_id"] == mine[2]["id"] and page["last_id"] == mine[1]["id"]
    rest = requests.get(
        f"{server.url}/v1/audio/jobs", params={"limit": 100, "after": page["last_id"]}, headers=auth()
    ).json()
    ids = [j["id"] for j in rest["data"]]
    assert ids[0] == mine[0]["id"] and theirs.json()["id"] not in ids and not rest["has_more"]
    for job in (*mine, theirs.json()):
        wait_for(server, job["id"], key=KEYS[1] if job == theirs.json() else KEYS[0])


def test_another_keys_job_is_404_everywhere(server, audio_dir):
    job = submit(server, "/v1/audio/transcriptions", audio_dir / "speech.wav", background="true").json()
    for method, suffix in (("GET", ""), ("GET", "/result"), ("DELETE", "")):
        response = requests.request(
            method, f"{server.url}/v1/audio/jobs/{job['id']}{suffix}", headers=auth(KEYS[1]), timeout=10
        )
        assert response.status_code == 404, (method, suffix, response.text)
        assert response.json()["error"]["code"] == "job_not_found"
    assert wait_for(server, job["id"])["status"] == "completed"  # the owner's DELETE never happened


def test_cancel_a_running_job_stops_it_and_keeps_it_cancelled(server, audio_dir):
    job = submit(server, "/v1/audio/transcriptions", audio_dir / "long.wav", background="true").json()
    assert requests.get(f"{server.url}/v1/audio/jobs/{job['id']}/result", headers=auth()).status_code == 409
    wait_for(server, job["id"], ("in_progress", "completed"))
    cancelled = requests.delete(f"{server.url}/v1/audio/jobs/{job['id']}", headers=auth(), timeout=10)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    time.sleep(3)  # longer than a heartbeat: the runner has seen it
    after = requests.get(f"{server.url}/v1/audio/jobs/{job['id']}", headers=auth()).json()
    assert after["status"] == "cancelled" and after["progress"] < 1
    result = requests.get(f"{server.url}/v1/audio/jobs/{job['id']}/result", headers=auth())
    assert result.status_code == 409 and result.json()["error"]["code"] == "job_not_completed"
    follow = submit(server, "/v1/audio/transcriptions", audio_dir / "speech.wav", background="true").json()
    assert wait_for(server, follow["id"])["status"] == "completed"  # the runner is free again


def test_over_the_disk_budget_is_507_and_nothing_is_kept(server, audio_dir, tmp_path):
    big = tmp_path / "big.wav"
    ffmpeg("-stream_loop", "2", "-i", str(audio_dir / "long.wav"), str(big))
    before = requests.get(f"{server.url}/v1/audio/jobs?limit=100", headers=auth()).json()["data"]
    refused = submit(server, "/v1/audio/transcriptions", big, background="true")
    assert refused.status_code == 507, refused.text
    assert refused.json()["error"]["code"] == "jobs_storage_full"
    after = requests.get(f"{server.url}/v1/audio/jobs?limit=100", headers=auth()).json()["data"]
    assert [j["id"] for j in after] == [j["id"] for j in before]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://169.254.169.254/", "http://10.1.2.3/"]
)
def test_a_private_callback_is_refused(server, audio_dir, url):
    refused = submit(server, "/v1/audio/transcriptions", audio_dir / "speech.wav", background="true",
                     callback_url=url)  # fmt: skip
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "callback_url_refused"


@pytest.mark.parametrize(
    ("form", "param"),
    [
        ({"callback_url": "https://example.com/h"}, "callback_url"),
        ({"background": "true", "stream": "true"}, "stream"),
    ],
)
def test_inconsistent_job_fields_are_400(server, audio_dir, form, param):
    refused = submit(server, "/v1/audio/transcriptions", audio_dir / "speech.wav", **form)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == param


def test_a_job_is_validated_before_it_is_kept(server, audio_dir):
    """tiny.en cannot translate: the background request gets the synchronous 400, not a job that fails."""
    refused = submit(server, "/v1/audio/translations", audio_dir / "speech.wav", background="true")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "unsupported_task"


def test_metrics_count_jobs_by_status(server, audio_dir):
    job = submit(server, "/v1/audio/transcriptions", audio_dir / "speech.wav", background="true").json()
    wait_for(server, job["id"])
    end = time.monotonic() + 20  # housekeeping sets the gauges every 5 s
    while time.monotonic() < end and server.metric("whisper_jobs", status="completed") < 1:
        time.sleep(0.5)
    assert server.metric("whisper_jobs", status="completed") >= 1
    assert server.metric("whisper_jobs_oldest_queued_seconds") >= 0


def test_openapi_lists_the_job_operations(server):
    doc = requests.get(server.url + "/openapi.json", timeout=10).json()
    assert {"/v1/audio/jobs", "/v1/audio/jobs/{job_id}", "/v1/audio/jobs/{job_id}/result"} <= set(
        doc["paths"]
    )
    assert set(doc["paths"]["/v1/audio/jobs/{job_id}"]) == {"get", "delete"}
    for path in ("/v1/audio/transcriptions", "/asr"):
        assert "202" in doc["paths"][path]["post"]["responses"]
    form = doc["paths"]["/v1/audio/transcriptions"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert {"background", "callback_url"} <= set(form["schema"]["properties"])
