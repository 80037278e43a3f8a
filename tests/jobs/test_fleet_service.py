"""Two services as two fleet VMs, on one PostgreSQL database and one bucket (the Cloud Storage emulator, which
the services' default google-cloud-storage client reaches through STORAGE_EMULATOR_HOST): a job submitted to
one VM is run by the other and answered by either, with the real tiny.en and the real gunicorn server; the
database password shows in neither VM's log nor /metrics."""

from __future__ import annotations

import time

import psycopg
import pytest
import requests

from tests.conftest import launch
from tests.jobs.fleet_services import postgres_cluster, storage_emulator

KEYS = ("fleet-k1-" + "a" * 16, "fleet-k2-" + "b" * 16)


@pytest.fixture(scope="module")
def fleet(tiny_en, tmp_path_factory):
    """VM "a" accepts and answers jobs but runs none (JOBS_WORKERS=0); VM "b" runs them."""
    tmp = tmp_path_factory.mktemp("fleet")
    with postgres_cluster() as cluster, storage_emulator() as client:
        with psycopg.connect(cluster.url(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE fleet")
        bucket = client.create_bucket("whisper-fleet-jobs")
        shared = {
            "JOBS_DATABASE_URL": cluster.url("fleet"),
            "JOBS_BUCKET": f"gs://{bucket.name}/jobs",
            "STORAGE_EMULATOR_HOST": client.emulator_host,
            "API_KEYS": ",".join(KEYS),
            "WORKERS": "1",
            "VAD": "true",
        }
        vms = {"a": launch(tiny_en, tmp, JOBS_WORKERS="0", **shared)}
        vms["b"] = launch(tiny_en, tmp, JOBS_WORKERS="1", **shared)
        try:
            yield vms, cluster, bucket
        finally:
            for vm in vms.values():
                vm.stop()
        for vm in vms.values():
            assert not vm.tracebacks(), vm.tracebacks()


def _auth(key: str = KEYS[0]) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _job(vm, job_id, key=KEYS[0]) -> requests.Response:
    return requests.get(f"{vm.url}/v1/audio/jobs/{job_id}", headers=_auth(key), timeout=10)


def test_a_job_sent_to_one_vm_is_run_by_another_and_answered_by_both(fleet, audio_dir):
    vms, _, bucket = fleet
    with open(audio_dir / "speech.wav", "rb") as f:
        accepted = requests.post(
            f"{vms['a'].url}/v1/audio/transcriptions",
            files={"file": ("speech.wav", f)},
            data={"model": "whisper-1", "response_format": "json", "background": "true"},
            headers=_auth(),
            timeout=60,
        )
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["id"]
    assert f"jobs/audio/{job_id}" in [b.name for b in bucket.list_blobs()]  # in the bucket before the 202
    end = time.monotonic() + 120
    while (job := _job(vms["b"], job_id).json())["status"] not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < end, job
        time.sleep(0.2)
    assert job["status"] == "completed", job
    assert _job(vms["a"], job_id).json() == job  # the same job from the VM that did not run it
    results = [
        requests.get(f"{vm.url}/v1/audio/jobs/{job_id}/result", headers=_auth(), timeout=10)
        for vm in vms.values()
    ]
    assert [r.status_code for r in results] == [200, 200] and results[0].content == results[1].content
    assert "quick" in results[0].json()["text"].lower()
    listed = requests.get(f"{vms['a'].url}/v1/audio/jobs", headers=_auth(), timeout=10).json()
    assert job_id in [j["id"] for j in listed["data"]]
    for vm in vms.values():  # another key sees nothing, on either VM
        assert _job(vm, job_id, KEYS[1]).status_code == 404


def test_the_database_password_shows_in_no_log_and_no_metrics(fleet):
    vms, cluster, _ = fleet
    for vm in vms.values():
        assert cluster.password not in vm.log()
        assert cluster.password not in requests.get(vm.metrics_url, timeout=10).text
