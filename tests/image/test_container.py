"""`make image-test`: the real image, built by a real Docker engine, run on the CPU as a user would run it.

The container is started once for the module, with its ports published on loopback; each test looks at one
promise of the image: real speech in, the right words out through the official `openai` client; a non-root
process; no secret and no writable weights in it; a healthcheck that turns healthy; an offline start; and
`docker stop` draining the request in flight.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid

import openai
import pytest
import requests

from tests.docker_engine import CA_BUNDLE
from tests.helpers import free_port
from tools import speech as corpus

pytestmark = pytest.mark.timeout(600, func_only=True)  # the fixtures bound their own builds and starts
READY_SECONDS = 180
KEY = "sk-image-test-" + uuid.uuid4().hex
MAX_WER = 0.25  # tiny.en on espeak-ng speech scores about 0.1 on stories like these (tests/speech)


def wait_ready(url: str, seconds: float = READY_SECONDS) -> dict:
    deadline = time.monotonic() + seconds
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            answer = requests.get(f"{url}/readyz", timeout=5)
            if answer.status_code == 200:
                return answer.json()
            last = f"{answer.status_code} {answer.text[:200]}"
        except requests.RequestException as err:
            last = type(err).__name__
        time.sleep(0.5)
    raise AssertionError(f"{url}/readyz not 200 within {seconds} s (last: {last})")


class Container:
    def __init__(self, engine, image: str, *args: str, env: dict | None = None):
        self.engine, self.name = engine, f"whisper-image-test-{uuid.uuid4().hex[:8]}"
        self.port, self.metrics_port = free_port(), free_port()
        env_args = [a for k, v in (env or {}).items() for a in ("--env", f"{k}={v}")]
        engine.docker(
            "run", "--detach", "--name", self.name, *env_args, *args,
            "--publish", f"127.0.0.1:{self.port}:5000", "--publish", f"127.0.0.1:{self.metrics_port}:9101",
            image,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"

    def exec(self, *command: str) -> subprocess.CompletedProcess:
        return self.engine.docker("exec", self.name, *command, check=False)

    def logs(self) -> str:
        done = self.engine.docker("logs", self.name, check=False)
        return done.stdout + done.stderr

    def remove(self) -> None:
        self.engine.docker("rm", "--force", self.name, check=False)


@pytest.fixture(scope="module")
def container(docker_engine, service_image):
    box = Container(docker_engine, service_image, "--stop-timeout", "135", env={"API_KEYS": KEY})
    try:
        box.readyz = wait_ready(box.url)
        yield box
    finally:
        box.remove()


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> dict[str, corpus.Clip]:
    """Sentences of known text in several espeak-ng voices: 30 s to check words, 100 s to be in flight."""
    d = tmp_path_factory.mktemp("speech")
    return {"short": corpus.story(d, 30, "short"), "long": corpus.story(d, 100, "long", first=7)}


def test_real_speech_through_the_openai_client_gives_the_right_words(container, speech):
    assert container.readyz["status"] == "ready" and container.readyz["model"] == "tiny.en"
    assert container.readyz["build"] == "test"  # WHISPER_BUILD, baked at build time
    client = openai.OpenAI(base_url=f"{container.url}/v1", api_key=KEY, max_retries=0, timeout=120)
    clip = speech["short"]
    with open(clip.path, "rb") as audio:
        result = client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="verbose_json"
        )
    assert corpus.wer(clip.text, result.text) <= MAX_WER, (clip.text, result.text)
    seconds = len(corpus.read_wav(clip.path)) / corpus.SAMPLE_RATE
    assert result.language == "english" and abs(result.duration - seconds) < 0.1
    assert result.segments and result.segments[-1].end <= result.duration + 0.5
    bad = openai.OpenAI(base_url=f"{container.url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError), open(clip.path, "rb") as audio:
        bad.audio.transcriptions.create(model="whisper-1", file=audio)


def test_the_service_runs_as_its_own_unprivileged_user(container, docker_engine):
    info = docker_engine.inspect(container.name)
    assert info["Config"]["User"] == "10001:10001"
    status = container.exec("cat", "/proc/1/status").stdout  # gunicorn's master is PID 1
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == ["10001"] * 4, uid_line
    assert "gunicorn" in container.exec("cat", "/proc/1/cmdline").stdout
    # the weights are root's and read-only; the code too
    assert container.exec("sh", "-c", "test -w /app/build/tiny.en.pt || test -w /app/service").returncode == 1
    assert container.exec("stat", "-c", "%U", "/app/build/tiny.en.pt").stdout.strip() == "root"


def certificates(bundle: str) -> list[str]:
    return [
        c.split("-----BEGIN CERTIFICATE-----")[-1].strip()
        for c in bundle.split("-----END CERTIFICATE-----")[:-1]
    ]


def test_no_secret_is_left_in_the_image(container, docker_engine, service_image):
    """The CA bundle went in as a build secret: mounted for the RUN steps only, written nowhere."""
    assert container.exec("sh", "-c", "ls -A /run/secrets 2>/dev/null").stdout.strip() == ""
    assert container.exec("test", "-e", "/etc/apt/apt.conf.d/99ca").returncode == 1
    history = docker_engine.docker("history", "--no-trunc", service_image).stdout
    assert "BEGIN CERTIFICATE" not in history
    # The certificates this machine adds to Debian's bundle (a TLS-intercepting proxy's CA) are nowhere in
    # the image: not in its own bundle, not in certifi's, not in any file.
    image_bundle = container.exec("cat", "/etc/ssl/certs/ca-certificates.crt").stdout
    added = set(certificates(CA_BUNDLE.read_text())) - set(certificates(image_bundle))
    for cert in added:
        line = cert.splitlines()[len(cert.splitlines()) // 2]  # a base64 line of this certificate alone
        found = container.exec(
            "grep", "-rlF", "--", line, "/opt", "/app", "/etc", "/home", "/root", "/usr/local"
        )
        assert found.stdout.strip() == "", found.stdout
    env = docker_engine.inspect(service_image)["Config"]["Env"]
    assert not [e for e in env if "TOKEN" in e or "SECRET" in e or e.startswith("API_KEYS=")], env


def test_the_healthcheck_turns_healthy(container, docker_engine):
    deadline = time.monotonic() + 120  # the image's interval is 30 s
    status = None
    while time.monotonic() < deadline:
        status = docker_engine.inspect(container.name)["State"]["Health"]["Status"]
        if status == "healthy":
            break
        time.sleep(1)
    health = docker_engine.inspect(container.name)["State"]["Health"]
    assert status == "healthy", health
    assert health["Log"][-1]["ExitCode"] == 0


def test_it_starts_and_serves_without_any_network(docker_engine, service_image, speech):
    """Nothing is downloaded at start: the weights are baked (no hub, no pip)."""
    name = f"whisper-offline-{uuid.uuid4().hex[:8]}"
    docker_engine.docker("run", "--detach", "--name", name, "--network", "none", service_image)
    try:
        deadline, code = time.monotonic() + READY_SECONDS, ""
        while time.monotonic() < deadline and code != "200":
            probe = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:5000/readyz"]
            code = docker_engine.docker("exec", name, *probe, check=False).stdout.strip()
            time.sleep(0.5)
        assert code == "200", docker_engine.docker("logs", name, check=False).stderr[-3000:]
    finally:
        docker_engine.docker("rm", "--force", name, check=False)


def test_docker_stop_drains_the_request_in_flight(container, docker_engine, speech):
    """SIGTERM from `docker stop`: gunicorn stops accepting, finishes the transcription it holds (200)."""
    answer: dict = {}

    def post() -> None:
        with open(speech["long"].path, "rb") as audio:
            try:
                answer["response"] = requests.post(
                    f"{container.url}/v1/audio/transcriptions",
                    files={"file": ("long.wav", audio, "audio/wav")},
                    data={"model": "whisper-1", "response_format": "json"},
                    headers={"Authorization": f"Bearer {KEY}"},
                    timeout=300,
                )
            except requests.RequestException as err:
                answer["error"] = err

    thread = threading.Thread(target=post)
    thread.start()
    in_flight, deadline = 0.0, time.monotonic() + 60
    while in_flight < 1 and time.monotonic() < deadline and thread.is_alive():
        metrics = requests.get(f"http://127.0.0.1:{container.metrics_port}/metrics", timeout=10).text
        in_flight = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("whisper_requests_in_flight")
        )
        time.sleep(0.05)
    assert in_flight >= 1, "the request never showed as in flight"
    stopped = time.monotonic()
    docker_engine.docker("stop", container.name, timeout=200)
    thread.join(timeout=120)
    assert "error" not in answer, f"{answer.get('error')!r}\n{container.logs()[-3000:]}"
    response = answer["response"]
    assert response.status_code == 200, response.text
    assert corpus.wer(speech["long"].text, response.json()["text"]) <= MAX_WER
    state = docker_engine.inspect(container.name)["State"]
    assert state["ExitCode"] == 0, container.logs()[-3000:]  # a clean exit, not the kill at the timeout
    assert time.monotonic() - stopped < 135


def test_a_new_tag_changes_no_layer(docker_engine, service_image, base_image, tmp_path):
    """WHISPER_BUILD (the commit id) comes last: a new tag reuses every layer, so a deploy pulls nothing new.
    Build arguments change the cache key of every RUN after their ARG line, so this order is what keeps the
    dependency layers cached from one commit to the next."""
    from tests.docker_engine import ROOT, image_build_args

    reference, other = "whisper-service:test-reref", "whisper-service:test-retag"
    ca = str(CA_BUNDLE) if CA_BUNDLE.is_file() else ""
    # both from the context as it is now: earlier tests may have added a checkpoint under build/ since the
    # session's image was built, and the model-baking step's cache key is the context it mounts
    docker_engine.build([reference], ROOT, tmp_path / "ref.log", image_build_args(base_image), extra_ca=ca)
    args = image_build_args(base_image, tag="another-commit")
    docker_engine.build([other], ROOT, tmp_path / "build.log", args, extra_ca=ca)
    try:
        new, old = docker_engine.inspect(other), docker_engine.inspect(reference)
        assert new["RootFS"]["Layers"] == old["RootFS"]["Layers"]
        assert "WHISPER_BUILD=another-commit" in new["Config"]["Env"]
    finally:
        docker_engine.docker("rmi", other, reference, check=False)
