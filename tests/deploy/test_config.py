"""Deploy settings: the SSH route from the stack outputs, env-file rendering, the proxy config."""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import replace

import pytest

from deploy import nginx, remote
from deploy.config import SERVICE_ENV_KEYS, ConfigError, DeployConfig, ssh_target

VM_OUTPUTS = {
    "ip": "203.0.113.7",
    "url": "http://203.0.113.7",
    "mode": "vm",
    "instanceName": "whisper-dev-vm",
    "zone": "europe-west4-a",
    "sshCommand": (
        "gcloud compute ssh whisper-dev-vm --zone europe-west4-a --project my-proj --tunnel-through-iap"
    ),
}


@pytest.fixture
def outputs_file(tmp_path, monkeypatch):
    path = tmp_path / "outputs.json"
    monkeypatch.setenv("DEPLOY_OUTPUTS", str(path))
    return path


def test_the_default_host_goes_through_iap_like_ansible(outputs_file, tmp_path):
    outputs_file.write_text(json.dumps(VM_OUTPUTS))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "google_compute_engine").write_text("key")
    target = ssh_target(DeployConfig(image="a/b"), env={"WHISPER_SSH_USER": "ops"}, home=tmp_path)
    assert (target.host, target.user) == ("203.0.113.7", "ops")
    assert target.key_file == str(tmp_path / ".ssh" / "google_compute_engine")
    assert shlex.split(target.gateway) == [
        "gcloud", "compute", "start-iap-tunnel", "whisper-dev-vm", "22", "--listen-on-stdin",
        "--zone", "europe-west4-a", "--verbosity", "warning", "--project", "my-proj",
    ]  # fmt: skip


def test_a_plain_ssh_route_and_an_explicit_host_need_no_gateway(outputs_file, tmp_path):
    outputs_file.write_text(json.dumps({**VM_OUTPUTS, "sshCommand": "ssh ubuntu@203.0.113.7"}))
    assert ssh_target(DeployConfig(image="a/b"), env={}, home=tmp_path).gateway is None
    explicit = ssh_target(replace(DeployConfig(image="a/b"), host="me@10.0.0.5"), env={}, home=tmp_path)
    assert explicit.host == "me@10.0.0.5" and explicit.gateway is None


def test_no_outputs_says_how_to_get_them(outputs_file):
    with pytest.raises(ConfigError, match="run: make outputs"):
        ssh_target(DeployConfig(image="a/b"), env={})


def test_env_file_round_trips_and_refuses_multiline_values():
    text = remote.render_env_file({"API_KEYS": "k1,k2", "WORKERS": "2"})
    assert remote.parse_env_file(text) == {"API_KEYS": "k1,k2", "WORKERS": "2"}
    with pytest.raises(remote.DeployError, match="one line"):
        remote.render_env_file({"API_KEYS": "a\nb"})


def test_the_proxy_config_is_valid_nginx_and_points_at_one_colour(tmp_path):
    cfg = DeployConfig(image="a/b")
    conf_dir = tmp_path / "conf.d"
    conf_dir.mkdir()
    (conf_dir / nginx.CONF_NAME).write_text(nginx.render(cfg.green, public_port=8080))
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; events {{}}\n"
        f"http {{ include {conf_dir}/*.conf; }}\n"
    )
    check = subprocess.run(["nginx", "-t", "-c", str(main)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    conf = (conf_dir / nginx.CONF_NAME).read_text()
    assert "server 127.0.0.1:5002;" in conf and "listen 8080;" in conf
    assert "9101" not in conf and "9102" not in conf  # metrics never behind the public port


def test_the_proxy_buffers_bodies_up_to_max_upload_mb_and_limits_slow_and_greedy_clients():
    conf = nginx.render(DeployConfig(image="a/b").blue, public_port=80, max_upload_mb=25)
    assert "client_max_body_size 26214400;" in conf  # 25 MiB, as the service counts MAX_UPLOAD_MB
    assert "proxy_request_buffering on;" in conf and "proxy_request_buffering off" not in conf
    assert f"client_header_timeout {nginx.HEADER_TIMEOUT}s;" in conf
    assert f"client_body_timeout {nginx.BODY_TIMEOUT}s;" in conf
    assert "limit_conn_zone $binary_remote_addr" in conf
    assert f"limit_conn whisper_per_client {nginx.CONNECTIONS_PER_CLIENT};" in conf
    # SSE: buffering on, and the service's X-Accel-Buffering: no is honoured (not ignored)
    assert "proxy_buffering on;" in conf and "proxy_ignore_headers" not in conf


def test_max_upload_mb_reaches_both_the_service_env_and_the_proxy():
    cfg = DeployConfig.from_env({"IMAGE": "a/b", "MAX_UPLOAD_MB": "25"})
    assert cfg.max_upload_mb == 25
    assert "MAX_UPLOAD_MB" in SERVICE_ENV_KEYS
