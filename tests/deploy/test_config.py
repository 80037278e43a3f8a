"""Deploy settings: the SSH route from the stack outputs, env-file rendering, the proxy config."""

from __future__ import annotations

import subprocess

import pytest

from deploy import nginx, remote, sshroute
from deploy.config import ConfigError, DeployConfig

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


def test_a_plain_ssh_route_needs_no_gateway(outputs_file, tmp_path):
    plain = {**VM_OUTPUTS, "sshCommand": "ssh -p 2222 ubuntu@203.0.113.7"}
    route = sshroute.route(plain, env={}, home=tmp_path)
    assert (route.user, route.port, route.proxy_command) == ("ubuntu", 2222, None)


def test_no_outputs_says_how_to_get_them(outputs_file):
    with pytest.raises(ConfigError, match="run: make outputs"):
        sshroute.route(env={})


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
