"""Deploy settings: the SSH route from the stack outputs, env-file rendering, the proxy config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy import nginx, remote, sshroute
from deploy.config import SERVICE_ENV_KEYS, ConfigError, DeployConfig, with_stack_outputs
from service.settings import Settings, from_env
from tools import configuration_docs

ROOT = Path(__file__).resolve().parents[2]

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


def nginx_test(tmp_path, conf: str) -> subprocess.CompletedProcess:
    """`nginx -t` on `conf` installed as the proxy's conf.d file inside a minimal main config."""
    conf_dir = tmp_path / "conf.d"
    conf_dir.mkdir()
    (conf_dir / nginx.CONF_NAME).write_text(conf)
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; events {{}}\n"
        f"http {{ include {conf_dir}/*.conf; }}\n"
    )
    return subprocess.run(["nginx", "-t", "-c", str(main)], capture_output=True, text=True)


def test_the_proxy_config_is_valid_nginx_and_points_at_one_colour(tmp_path):
    cfg = DeployConfig(image="a/b")
    conf = nginx.render(cfg.green, public_port=8080)
    check = nginx_test(tmp_path, conf)
    assert check.returncode == 0, check.stderr
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


def self_signed(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=whisper.example.com -days 1".split()
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return key, cert


def test_with_a_domain_80_redirects_443_serves_and_loopback_stays_for_the_checks(tmp_path):
    cfg = DeployConfig(image="a/b")
    conf = nginx.render(cfg.blue, public_port=80, domain="whisper.example.com", https_port=443)
    assert "return 301 https://whisper.example.com$request_uri;" in conf
    assert "listen 443 ssl;" in conf and "listen 127.0.0.1:80;" in conf and "listen 80;" in conf
    assert "acme_certificate letsencrypt;" in conf and "ssl_certificate $acme_certificate;" in conf
    assert (
        "uri https://acme-v02.api.letsencrypt.org/directory;" in conf and "accept_terms_of_service;" in conf
    )
    assert "server 127.0.0.1:5001;" in conf  # what proxy_target() reads
    assert "load_module modules/ngx_http_acme_module.so;" in nginx.MAIN_CONF
    assert "include /etc/nginx/conf.d/*.conf;" in nginx.MAIN_CONF
    assert not nginx.MAIN_CONF_NAME.endswith(".conf")  # conf.d/*.conf must not include it into http {}
    # This machine's nginx has no ACME module and predates ssl_certificate_cache (nginx 1.27.4; the proxy
    # image is 1.30): check everything else with a self-signed certificate.
    key, cert = self_signed(tmp_path)
    lines = []
    skip = False
    for line in conf.splitlines():
        if line.startswith("acme_issuer"):
            skip = True
        if not skip and not line.strip().startswith(
            ("acme_certificate", "acme_shared_zone", "ssl_certificate_cache")
        ):
            lines.append(line)
        if skip and line == "}":
            skip = False
    plain = (
        "\n".join(lines).replace("$acme_certificate_key", str(key)).replace("$acme_certificate", str(cert))
    )
    check = nginx_test(tmp_path, plain)
    assert check.returncode == 0, check.stderr


def test_the_deploy_takes_the_services_defaults_without_the_services_libraries():
    """The operator's venv (make install-ops) has no Flask, torch or numpy: deploy/ and the fabfile import
    service.settings, the defaults' one owner, and nothing that needs them."""
    blocked = ["flask", "werkzeug", "torch", "numpy", "whisper", "faster_whisper", "prometheus_client"]
    code = (
        "import importlib, pkgutil, sys\n"
        f"sys.modules.update(dict.fromkeys({blocked!r}))\n"  # None: `import flask` raises ImportError
        "import deploy, fabfile\n"
        "for m in pkgutil.iter_modules(deploy.__path__):\n"
        "    importlib.import_module('deploy.' + m.name)\n"
        "from deploy.config import DeployConfig\n"
        "from service.settings import Settings\n"
        "cfg, service = DeployConfig(image='a/b'), Settings()\n"
        "for knob in ('graceful_timeout', 'max_upload_mb', 'whisper_model', 'whisper_engine'):\n"
        "    assert getattr(cfg, knob) == getattr(service, knob), knob\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    service = Settings()
    assert (remote.CONTAINER_API_PORT, remote.CONTAINER_METRICS_PORT) == (service.port, service.metrics_port)


@pytest.mark.parametrize(
    ("outputs", "env", "gpus"),
    [
        ({"gpus": "none"}, {}, "none"),  # a CPU-only stack (gpuType: none) says so itself
        ({"gpus": "all"}, {}, "all"),
        ({}, {}, "all"),  # outputs from before the key: a GPU host
        ({"gpus": "none"}, {"DEPLOY_GPUS": "all"}, "all"),  # the operator's setting wins
    ],
)
def test_the_stack_tells_fab_deploy_whether_to_pass_gpus(outputs, env, gpus):
    cfg = with_stack_outputs(DeployConfig.from_env({"IMAGE": "u/w", **env}), outputs, env)
    assert cfg.gpus == gpus


def test_the_deploy_knob_table_is_current_and_complete():
    """docs/deploy.md's table is generated from DeployConfig: every DEPLOY_* knob appears once."""
    page = (ROOT / "docs" / "deploy.md").read_text()
    assert page == configuration_docs.deploy_page(), "run: python -m tools.configuration_docs"
    for name in (
        "DEPLOY_POLL_INTERVAL",
        "DEPLOY_DRAIN_DELAY",
        "DEPLOY_GRAFANA_PORT",
        "DEPLOY_PROMETHEUS_PORT",
    ):
        assert page.count(f"| `{name}` |") == 1, name


@pytest.mark.parametrize("raw", ["true", "1", "yes", "on", "True"])
def test_deploy_booleans_read_as_the_service_reads_them(raw):
    assert DeployConfig.from_env({"DEPLOY_ALLOW_UNAUTHENTICATED": raw}).allow_unauthenticated
    assert from_env({"VAD": raw}).vad  # the service's settings: the same words


def test_a_bad_deploy_knob_is_one_line_naming_it():
    with pytest.raises(
        ConfigError, match=r"^DEPLOY_POLL_INTERVAL='soon' is not a number, e\.g\. DEPLOY_POLL_INTERVAL=2$"
    ):
        DeployConfig.from_env({"DEPLOY_POLL_INTERVAL": "soon"})
