"""`fab deploy / rollback / status / logs` against a real sshd on loopback, the real Docker engine, a real
registry, the real service image and nginx in a container.

The tests run in file order on one host: first deploy (v1) -> upgrade under load (v2) -> a tag that never
gets ready (v2 keeps serving) -> rollback (v1). Each test checks the state it starts from. The client
traffic: traffic.py; `fab tunnel`: test_fabric_tunnel.py.
"""

from __future__ import annotations

import os
import stat
import time

import pytest
import requests

from deploy import nginx, remote
from deploy.config import DeployConfig, stop_timeout
from tests.deploy.conftest import watch_command_lines
from tests.deploy.traffic import AUTH, Load, transcribe

# each test gets 5 minutes; the fixtures bound their own builds, pushes and starts
pytestmark = pytest.mark.timeout(300, func_only=True)

API_KEY = "sk-test-deploy-0123456789"  # the deploy_host fixture's API key


@pytest.fixture(scope="module")
def host(deploy_host, service_image, tiny_en):
    """The registry's tags, each a few lines on top of the real service image (real tiny.en): v1, v2, one
    whose model cannot load, one that cannot transcribe."""
    base = f"FROM {service_image}\n"
    for tag in ("v1", "v2"):
        deploy_host.publish(tag, base + f"ENV WHISPER_BUILD={tag}\n")
    # a truncated checkpoint: /readyz stays 503 with the load error
    corrupt = {"corrupt.pt": tiny_en.read_bytes()[:100_000]}
    broken = "COPY corrupt.pt /app/build/\nENV WHISPER_MODEL=build/corrupt.pt WHISPER_BUILD=never-ready\n"
    deploy_host.publish("never-ready", base + broken, corrupt)
    # ready, but refuses the smoke test's 2 s clip (400 audio_too_long): a bad setting baked into an image
    deploy_host.publish("cannot-transcribe", base + "ENV MAX_AUDIO_SECONDS=1\n")
    assert deploy_host.api_key == API_KEY
    return deploy_host


def output(result) -> str:
    return result.stdout + result.stderr


def test_first_deploy_serves_the_api_on_the_public_port_only(host):
    assert host.release_state() == {}
    started, leaks = time.monotonic(), []
    with watch_command_lines(API_KEY, leaks), watch_command_lines(host.registry.password, leaks):
        result = host.fab("deploy", "--tag", "v1")  # no --host: the stack outputs' ip (127.0.0.1)
    print(f"deploy took {time.monotonic() - started:.1f} s\n{output(result)}")
    assert result.returncode == 0, output(result)
    assert API_KEY not in output(result)  # the deploy log names settings, never their values
    assert host.registry.password not in output(result)
    assert leaks == []  # neither the API key nor the registry token was ever in a command line

    state = host.release_state()
    assert state["current"]["tag"] == "v1" and state["current"]["color"] == "blue"
    assert state["current"]["image"] == f"{host.image}:v1"
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
    info = host.container("whisper-blue")  # what `docker run` was given, as the engine recorded it
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert not info["HostConfig"]["DeviceRequests"]  # DEPLOY_GPUS=none: no --gpus on a CPU-only host
    assert info["HostConfig"]["PortBindings"] == {
        "5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(host.ports["blue"])}],
        "9101/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(host.ports["blue_metrics"])}],
    }
    assert info["Config"]["StopTimeout"] == stop_timeout(10)  # GRACEFUL_TIMEOUT 10 + the stop margin
    assert info["Config"]["Labels"]["whisper.tag"] == "v1"
    assert f"API_KEYS={API_KEY}" in info["Config"]["Env"]  # from the 0600 env file
    assert requests.get(f"{host.public_url}/readyz", timeout=10).json()["build"] == "v1"
    assert host.container_running("whisper-proxy")
    assert host.container("whisper-proxy")["HostConfig"]["NetworkMode"] == "host"


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
        result = host.fab("deploy", "--tag", "never-ready")  # DEPLOY_READY_TIMEOUT: conftest's 120 s
    assert result.returncode != 0
    text = output(result)
    # the service said it gave up (/readyz: 503, code "failed"): the deploy stops there, not at the timeout
    assert "whisper-blue cannot become ready: model failed to load" in text
    assert "did not pass /readyz within" not in text
    assert "green (v2) keeps serving" in text
    assert load.failures == [], load.failures[:5]

    assert host.release_state()["current"]["tag"] == "v2"
    assert host.container_running("whisper-green")
    assert not host.container_running("whisper-blue")  # the failed container is stopped
    assert transcribe(host.public_url).status_code == 200


@pytest.mark.parametrize(
    ("code", "body"),
    [
        (503, '{"error": {"message": "loading the model", "code": "loading"}}'),  # still loading: wait on
        (503, '{"error": {"message": "shutting down", "code": "stopping"}}'),
        (None, ""),  # not listening yet
        (502, "<html>bad gateway</html>"),
        (503, "not json"),
    ],
)
def test_only_a_service_that_gave_up_ends_the_wait_early(code, body):
    assert remote.gave_up(code, body) is None


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
    assert f"docker pull {host.image}:no-such-tag failed: " in output(result)
    assert "manifest unknown" in output(result)  # the registry's own answer
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
        *"deploy --tag no-such-tag".split(),
        API_KEYS="",
        DEPLOY_ENV_FILE=str(fresh_env_file),
        DEPLOY_ALLOW_UNAUTHENTICATED="true",
    )
    assert "no API key" not in output(allowed) and "manifest unknown" in output(allowed)  # got past the check


def test_a_second_deploy_waits_for_the_first_ones_lock(host):
    before = host.release_state()
    lock = host.dir / "var/lib/whisper/deploy.json.lock"
    lock.mkdir()  # as if another operator's deploy were running
    since = time.time()
    try:
        result = host.fab("deploy", "--tag", "v1")
    finally:
        lock.rmdir()
    assert result.returncode != 0
    assert "another deploy holds" in output(result) and "deploy.json.lock" in output(result)
    assert host.release_state() == before
    # stopped before touching docker: no pull, no container. The live container's HEALTHCHECK (the image's,
    # every 30 s: exec_create, exec_start, exec_die, health_status) is the engine's doing, not the deploy's.
    events = [e for e in host.docker_events(since) if not e["Action"].startswith(("exec_", "health_status"))]
    assert events == [], events


def test_rollback_puts_the_previous_tag_back(host):
    assert host.release_state()["previous"]["tag"] == "v1"
    # the recorded image reference, not today's IMAGE; the host's GRACEFUL_TIMEOUT (10), not the default
    result = host.fab("rollback", IMAGE="", GRACEFUL_TIMEOUT="")
    assert result.returncode == 0, output(result)
    blue = host.container("whisper-blue")
    assert blue["Config"]["StopTimeout"] == stop_timeout(10) and blue["Config"]["Image"] == f"{host.image}:v1"
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
    assert cfg.public_port == 80 and cfg.stop_timeout == 125  # GRACEFUL_TIMEOUT 120 + the stop margin, 5
