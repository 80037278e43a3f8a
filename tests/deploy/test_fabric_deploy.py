"""`fab deploy / rollback / status / logs` against a real sshd on loopback, the real service and real nginx.

The tests run in file order on one host: first deploy (v1) -> upgrade under load (v2) -> a tag that never
gets ready (v2 keeps serving) -> rollback (v1). Each test checks the state it starts from.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests

from deploy import nginx
from deploy.config import DeployConfig
from scripts.smoke import generated_clip

pytestmark = pytest.mark.timeout(300)

IMAGE = "test/whisper"  # the deploy_host fixture's image repository
API_KEY = "sk-test-deploy-0123456789"  # and its API key
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CLOSE = {"Connection": "close"}  # a fresh connection per request: a refused connect shows up as a failure
# What the test images bake in: CPU, and 4 tokens per window so a random-weight transcription takes a
# second or two instead of decoding to the context limit at every fallback temperature.
BAKED = {"WHISPER_DEVICE": "cpu", "WHISPER_FORCE_TOKENS": "4"}
LOAD_MAX_SECONDS = 240  # the client loop's hard bound
LOAD_MAX_REQUESTS = 5000


def transcribe(base_url: str, headers: dict | None = None, timeout: float = 60) -> requests.Response:
    files = {"file": ("clip.wav", generated_clip(), "audio/wav")}
    data = {"model": "whisper-1", "response_format": "json"}
    return requests.post(
        f"{base_url}/v1/audio/transcriptions",
        files=files,
        data=data,
        headers={**(headers or AUTH), "Connection": "close"},
        timeout=timeout,
    )


@dataclass
class Load:
    """A bounded client loop against the public port: readiness probes and transcriptions, counted."""

    url: str
    ok: int = 0
    transcribed: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def probe_loop(self) -> None:
        deadline = time.monotonic() + LOAD_MAX_SECONDS
        for _ in range(LOAD_MAX_REQUESTS):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            self.record(
                lambda: requests.get(f"{self.url}/readyz", timeout=10, headers={"Connection": "close"})
            )
            time.sleep(0.02)

    def transcribe_loop(self) -> None:
        deadline = time.monotonic() + LOAD_MAX_SECONDS
        for _ in range(LOAD_MAX_REQUESTS):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            if self.record(lambda: transcribe(self.url)):
                self.transcribed += 1

    def record(self, call) -> bool:
        try:
            response = call()
        except requests.RequestException as err:
            self.failures.append(f"{type(err).__name__}: {err}")
            return False
        if response.status_code != 200:
            self.failures.append(f"{response.status_code}: {response.text[:200]}")
            return False
        self.ok += 1
        return True

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=f) for f in (self.probe_loop, self.transcribe_loop)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=90)


@pytest.fixture(scope="module")
def host(deploy_host, checkpoint, tmp_path_factory):
    """The loopback host's registry: v1, v2, one whose model cannot load, one that cannot transcribe."""
    corrupt = tmp_path_factory.mktemp("broken") / "corrupt.pt"
    corrupt.write_bytes(checkpoint.read_bytes()[:100_000])  # a truncated checkpoint: /readyz stays 503
    for tag, model in (("v1", checkpoint), ("v2", checkpoint), ("never-ready", corrupt)):
        deploy_host.registry_add(tag, WHISPER_MODEL=str(model), **BAKED)
    # ready, but refuses the smoke test's 2 s clip (400 audio_too_long): a bad setting baked into an image
    too_short = {"MAX_AUDIO_SECONDS": "1"}
    deploy_host.registry_add("cannot-transcribe", WHISPER_MODEL=str(checkpoint), **too_short, **BAKED)
    assert (deploy_host.image, deploy_host.api_key) == (IMAGE, API_KEY)
    return deploy_host


def output(result) -> str:
    return result.stdout + result.stderr


def test_first_deploy_serves_the_api_on_the_public_port_only(host):
    assert host.release_state() == {}
    started = time.monotonic()
    result = host.fab("deploy", "--tag", "v1")  # no --host: the stack outputs' ip (127.0.0.1)
    print(f"deploy took {time.monotonic() - started:.1f} s\n{output(result)}")
    assert result.returncode == 0, output(result)
    assert API_KEY not in output(result)  # the deploy log names settings, never their values

    state = host.release_state()
    assert state["current"]["tag"] == "v1" and state["current"]["color"] == "blue"
    assert state["current"]["image"] == f"{IMAGE}:v1"
    assert state["previous"] is None
    answer = transcribe(host.public_url)
    assert answer.status_code == 200 and isinstance(answer.json()["text"], str)
    assert transcribe(host.public_url, headers={"X-No": "key"}).status_code == 401
    # the proxy forwards the API only: metrics live on the colour's loopback port, not behind port 80
    assert requests.get(f"{host.public_url}/metrics", headers=AUTH, timeout=10).status_code == 404
    metrics = requests.get(f"http://127.0.0.1:{host.ports['blue_metrics']}/metrics", timeout=10)
    assert metrics.status_code == 200 and "whisper_" in metrics.text

    env_file = host.dir / "etc/whisper/whisper.env"
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600
    assert f"API_KEYS={API_KEY}" in env_file.read_text().splitlines()
    run = next(call for call in host.docker_calls() if call[:1] == ["run"] and "whisper-blue" in call)
    joined = " ".join(run)
    assert "--gpus all" in joined and "--restart unless-stopped" in joined
    assert f"--env-file {env_file}" in joined
    assert f"--publish 127.0.0.1:{host.ports['blue']}:5000" in joined
    assert f"--publish 127.0.0.1:{host.ports['blue_metrics']}:9101" in joined
    assert "--stop-timeout 25" in joined  # GRACEFUL_TIMEOUT 10 + the 15 s margin
    assert API_KEY not in joined  # the key reaches the container through the env file only


def test_upgrade_under_load_refuses_no_request(host):
    assert host.release_state()["current"]["tag"] == "v1"
    with Load(host.public_url) as load:
        time.sleep(1)
        result = host.fab("deploy", "--tag", "v2")
        time.sleep(1)
    assert result.returncode == 0, output(result)
    assert load.failures == [], load.failures[:5]
    assert load.ok > 20 and load.transcribed >= 2

    state = host.release_state()
    assert state["current"]["tag"] == "v2" and state["current"]["color"] == "green"
    assert state["previous"]["tag"] == "v1"
    assert host.container_running("whisper-green")
    assert not host.container_running("whisper-blue")  # stopped after the switch
    conf = (host.dir / "etc/whisper/proxy" / nginx.CONF_NAME).read_text()
    assert f"127.0.0.1:{host.ports['green']};" in conf
    assert transcribe(host.public_url).status_code == 200


def test_a_tag_that_never_gets_ready_leaves_the_live_one_serving(host):
    assert host.release_state()["current"]["tag"] == "v2"
    with Load(host.public_url) as load:
        result = host.fab("deploy", "--tag", "never-ready", DEPLOY_READY_TIMEOUT="8")
    assert result.returncode != 0
    text = output(result)
    assert "whisper-blue did not pass /readyz within 8 s" in text
    assert "model failed to load" in text  # the service's own /readyz reason is passed on
    assert "green (v2) keeps serving" in text
    assert load.failures == [], load.failures[:5]

    assert host.release_state()["current"]["tag"] == "v2"
    assert host.container_running("whisper-green")
    assert not host.container_running("whisper-blue")  # the failed container is stopped
    assert transcribe(host.public_url).status_code == 200


def test_a_tag_that_fails_the_smoke_test_is_never_switched_to(host):
    before = host.release_state()
    assert before["current"]["tag"] == "v2"
    result = host.fab("deploy", "--tag", "cannot-transcribe")
    assert result.returncode != 0
    assert "smoke test on port" in output(result) and "answered 400" in output(result)
    assert "audio_too_long" in output(result)  # the service's own error, passed on
    assert host.release_state() == before
    proxy_conf = (host.dir / "etc/whisper/proxy" / nginx.CONF_NAME).read_text()
    assert f"127.0.0.1:{host.ports['green']};" in proxy_conf
    assert not host.container_running("whisper-blue")
    assert transcribe(host.public_url).status_code == 200


def test_a_tag_missing_from_the_registry_changes_nothing(host):
    before = host.release_state()
    result = host.fab("deploy", "--tag", "no-such-tag")
    assert result.returncode != 0
    assert f"docker pull {IMAGE}:no-such-tag failed: " in output(result)
    assert "manifest unknown" in output(result)
    assert host.release_state() == before


def test_without_any_api_key_the_deploy_is_refused_in_one_line(host, tmp_path):
    before = host.release_state()
    fresh_env_file = tmp_path / "whisper.env"  # a host whose env file holds no key yet
    result = host.fab("deploy", "--tag", "v1", API_KEYS="", DEPLOY_ENV_FILE=str(fresh_env_file))
    assert result.returncode != 0
    assert output(result).strip().splitlines()[-1] == (
        'deploy failed: no API key: export API_KEYS="$(openssl rand -hex 24)" and deploy again '
        "(or, to serve without keys on purpose: pulumi config set allowUnauthenticated true)"
    )
    assert host.release_state() == before and not fresh_env_file.exists()
    allowed = host.fab(
        "deploy", "--tag", "no-such-tag", API_KEYS="", DEPLOY_ENV_FILE=str(fresh_env_file),
        DEPLOY_ALLOW_UNAUTHENTICATED="true",
    )  # fmt: skip
    assert "no API key" not in output(allowed) and "manifest unknown" in output(allowed)  # got past the check


def test_a_second_deploy_waits_for_the_first_ones_lock(host):
    before = host.release_state()
    lock = host.dir / "var/lib/whisper/deploy.json.lock"
    lock.mkdir()  # as if another operator's deploy were running
    calls_before = len(host.docker_calls())
    try:
        result = host.fab("deploy", "--tag", "v1")
    finally:
        lock.rmdir()
    assert result.returncode != 0
    assert "another deploy holds" in output(result) and "deploy.json.lock" in output(result)
    assert host.release_state() == before
    assert host.docker_calls()[calls_before:] == []  # stopped before touching docker


def test_rollback_puts_the_previous_tag_back(host):
    assert host.release_state()["previous"]["tag"] == "v1"
    # the recorded image reference, not today's IMAGE; the host's GRACEFUL_TIMEOUT (10), not the default
    result = host.fab("rollback", IMAGE="", GRACEFUL_TIMEOUT="")
    assert result.returncode == 0, output(result)
    run = [call for call in host.docker_calls() if call[:1] == ["run"] and "whisper-blue" in call][-1]
    assert run[run.index("--stop-timeout") + 1] == "25" and run[-1] == f"{IMAGE}:v1"
    state = host.release_state()
    assert state["current"]["tag"] == "v1" and state["current"]["color"] == "blue"
    assert state["previous"]["tag"] == "v2"
    assert host.container_running("whisper-blue") and not host.container_running("whisper-green")
    assert transcribe(host.public_url).status_code == 200


def test_status_and_logs_describe_the_live_container(host):
    current = host.release_state()["current"]
    result = host.fab("status")
    assert result.returncode == 0, output(result)
    assert f"live:      {current['tag']} (whisper-{current['color']}" in result.stdout
    assert "container: running, up 0h" in result.stdout
    assert f"readyz:    200 on port {host.ports['public']}" in result.stdout
    assert "previous:  v2" in result.stdout

    logs = host.fab("logs", "--lines", "200")
    assert logs.returncode == 0, output(logs)
    assert "Booting worker" in output(logs)  # gunicorn's own log line, from the live container


def test_config_defaults_match_the_monitoring_contract():
    cfg = DeployConfig(image="x/y")
    assert (cfg.blue.metrics_port, cfg.green.metrics_port) == (9101, 9102)
    assert cfg.public_port == 80 and cfg.stop_timeout == 135


def test_tunnel_forwards_grafana_and_prometheus_to_localhost(host, tmp_path):
    """Two HTTP servers stand for the host's Grafana and Prometheus; `fab tunnel` must reach both."""
    from tests.deploy.conftest import FAB, ROOT, free_port, wait_for_port

    servers, remote_ports = [], {}
    for name in ("grafana", "prometheus"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "who").write_text(name)
        remote_ports[name] = free_port()
        servers.append(
            subprocess.Popen(
                [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(remote_ports[name])],
                cwd=tmp_path / name,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        )
    local = {"grafana": free_port(), "prometheus": free_port()}
    env = {
        **host.env,
        "DEPLOY_GRAFANA_PORT": str(remote_ports["grafana"]),
        "DEPLOY_PROMETHEUS_PORT": str(remote_ports["prometheus"]),
    }
    command = [FAB, "-r", str(ROOT), "tunnel", "--seconds", "30"]
    command += ["--grafana-port", str(local["grafana"]), "--prometheus-port", str(local["prometheus"])]
    tunnel = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for name, port in local.items():
            wait_for_port(port, seconds=20)
            assert requests.get(f"http://127.0.0.1:{port}/who", timeout=10).text == name
    finally:
        tunnel.terminate()
        tunnel.wait(timeout=30)
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
