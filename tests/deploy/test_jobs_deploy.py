"""A blue/green `fab deploy` mid-job loses nothing: against the real sshd, Docker engine, registry and service
image (conftest.py), a background job running on the live colour when the next tag is deployed is handed
back on SIGTERM by the draining colour and finished by the new one, through the public port, once, with
the right text. Both colours share the host's jobs directory (DEPLOY_JOBS_DIR, mounted as /data/jobs).

The live colour's container is held to a twentieth of a CPU (`docker update --cpus`) once it has the job, so
the job is still running when the switch comes however fast the machine: the test does not race the deploy.
The audio is a story of different sentences (tools/speech.py): a looped sentence is repetitive text, which
Whisper's compression check rejects window after window, and the temperature ladder would make it slow."""

from __future__ import annotations

import time

import pytest
import requests

from tools import speech

pytestmark = pytest.mark.timeout(900, func_only=True)

API_KEY = "sk-test-deploy-0123456789"  # the deploy_host fixture's API key
AUTH = {"Authorization": f"Bearer {API_KEY}"}
JOB_MAX_SECONDS = 480  # the bound on waiting for the job after the switch
BLUE_CPUS = "0.05"  # the live colour's share of a CPU while it holds the job
POLL_MAX = 2000  # and on the number of polls of any one wait


@pytest.fixture(scope="module")
def host(deploy_host, service_image):
    """Two tags of the real service image, cut at pauses (VAD), so a long job is seen in progress and takes
    long enough to outlast a deploy."""
    for tag in ("jobs-a", "jobs-b"):
        deploy_host.publish(tag, f"FROM {service_image}\nENV WHISPER_BUILD={tag} VAD=true\n")
    assert deploy_host.api_key == API_KEY
    return deploy_host


def job(host, job_id: str) -> dict:
    answer = requests.get(f"{host.public_url}/v1/audio/jobs/{job_id}", headers=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_until(host, job_id: str, statuses: tuple[str, ...], seconds: float) -> dict:
    end, seen = time.monotonic() + seconds, {}
    for _ in range(POLL_MAX):
        seen = job(host, job_id)
        if seen["status"] in statuses or time.monotonic() > end:
            break
        time.sleep(0.25)
    assert seen["status"] in statuses, f"job {job_id} never reached {statuses}: {seen}"
    return seen


def ended(host, job_id: str) -> dict:
    """The job once ended after the switch; both colours' logs in the failure when it does not end."""
    try:
        return wait_until(host, job_id, ("completed", "failed", "cancelled"), seconds=JOB_MAX_SECONDS)
    except AssertionError as error:
        blue, green = logs(host, "whisper-blue")[-6000:], logs(host, "whisper-green")[-6000:]
        raise AssertionError(f"{error}\n--- blue:\n{blue}\n--- green:\n{green}") from None


def logs(host, container: str) -> str:
    done = host.engine.docker("logs", container)
    return done.stdout + done.stderr


def test_a_deploy_mid_job_hands_the_job_to_the_new_colour_which_finishes_it(host, tmp_path):
    story = speech.story(tmp_path, 150, seed=34)  # 5-6 windows
    audio = story.path
    assert host.fab("deploy", "--tag", "jobs-a").returncode == 0
    assert host.release_state()["current"]["color"] == "blue"
    assert host.engine.docker("update", "--cpus", BLUE_CPUS, "whisper-blue").returncode == 0
    with open(audio, "rb") as f:
        accepted = requests.post(
            f"{host.public_url}/v1/audio/transcriptions", files={"file": (audio.name, f)},
            data={"model": "whisper-1", "background": "true", "response_format": "text"}, headers=AUTH,
            timeout=60,
        )  # fmt: skip
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["id"]
    running = wait_until(host, job_id, ("in_progress", "completed", "failed"), seconds=120)
    assert running["status"] == "in_progress", running  # still running when the switch comes

    deployed = host.fab("deploy", "--tag", "jobs-b")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert host.release_state()["current"]["color"] == "green" and not host.container_running("whisper-blue")
    done = ended(host, job_id)
    assert done["status"] == "completed" and done["error"] is None, done
    result = requests.get(f"{host.public_url}/v1/audio/jobs/{job_id}/result", headers=AUTH, timeout=10)
    assert result.status_code == 200, result.text
    heard, said = speech.words(result.text), speech.words(story.text)
    # the whole story once: not only the new colour's part, and no window twice
    assert 0.85 * len(said) <= len(heard) <= 1.15 * len(said), (len(heard), len(said), result.text)
    assert speech.wer(story.text, result.text) < 0.3, result.text
    listed = requests.get(f"{host.public_url}/v1/audio/jobs", headers=AUTH, timeout=10).json()
    assert [j["id"] for j in listed["data"]] == [job_id]  # one job for the key: not redone as a new one

    blue, green = logs(host, "whisper-blue"), logs(host, "whisper-green")
    assert f"job {job_id} started (attempt 1)" in blue and f"job {job_id} handed back" in blue
    assert f"job {job_id} started (attempt 2)" in green  # taken over by the new colour
    assert f"job {job_id} completed" in green
