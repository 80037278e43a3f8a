"""One SSH route (deploy/sshroute.py) for Fabric, the Ansible inventory and `make dashboards`: the OS Login
user derived from the Google account, gcloud's key created and registered when missing, Google's IAP tunnel as
ProxyCommand. A stand-in gcloud answers describe-profile / ssh-keys add and relays start-iap-tunnel to a real
sshd on loopback, which accepts only the keys registered with the stand-in OS Login."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deploy import sshroute
from deploy.config import ConfigError
from tests.deploy import fake_gcloud
from tests.deploy.conftest import ROOT, SSHD, keygen, wait_for_port
from tests.helpers import free_port

NAME = "whisper-dev-vm"
OUTPUTS = {
    "mode": "vm",
    "ip": "203.0.113.7",  # never reached directly: only the IAP proxy gets through
    "url": "http://203.0.113.7",
    "instanceName": NAME,
    "zone": "us-central1-a",
    "sshCommand": f"gcloud compute ssh {NAME} --zone us-central1-a --project demo-proj --tunnel-through-iap",
}
OS_LOGIN_USER = "alice_example_com"


@pytest.fixture
def laptop(tmp_path):
    """HOME without any key, the stand-in gcloud first on PATH, an OS Login profile without keys."""
    home = tmp_path / "home"
    home.mkdir()
    env = fake_gcloud.install(tmp_path / "bin", tmp_path / "gcloud", OS_LOGIN_USER)
    env |= {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "HOME": str(home)}
    return tmp_path, home, env


def with_env(env: dict[str, str]):
    def run(command: list[str]) -> str:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise ConfigError(done.stderr)
        return done.stdout

    return run


def test_os_login_user_and_a_registered_key(laptop):
    tmp_path, home, env = laptop
    route = sshroute.route(OUTPUTS, env={}, home=home, run=with_env(env))
    assert route.user == OS_LOGIN_USER  # not $USER
    key = home / ".ssh" / "google_compute_engine"
    assert route.key_file == str(key) and key.exists()
    calls = fake_gcloud.calls(tmp_path / "gcloud")
    adds = [c for c in calls if c[:4] == ["compute", "os-login", "ssh-keys", "add"]]
    assert adds == [["compute", "os-login", "ssh-keys", "add", f"--key-file={key}.pub"]]
    tunnel = f"gcloud compute start-iap-tunnel {NAME} 22 --listen-on-stdin"
    flags = "--zone us-central1-a --verbosity warning --project demo-proj"
    assert shlex.split(route.proxy_command) == tunnel.split() + flags.split()
    sshroute.route(OUTPUTS, env={}, home=home, run=with_env(env))  # registered now: not added again
    assert len([c for c in fake_gcloud.calls(tmp_path / "gcloud") if "add" in c]) == 1


def test_a_first_time_account_gets_its_posix_user_once_its_key_is_registered(laptop):
    # OS Login creates the POSIX account when the account's first key is added, so the key goes first.
    tmp_path, home, env = laptop
    assert "posixAccounts" not in json.loads((tmp_path / "gcloud" / "profile.json").read_text())
    route = sshroute.route(OUTPUTS, env={}, home=home, run=with_env(env))
    assert route.user == OS_LOGIN_USER
    verbs = [c[2] for c in fake_gcloud.calls(tmp_path / "gcloud") if c[:2] == ["compute", "os-login"]]
    assert verbs.index("ssh-keys") < len(verbs) - 1 and verbs[-1] == "describe-profile"


def test_overrides_skip_gcloud_and_a_profile_without_account_says_what_to_do(laptop):
    tmp_path, home, env = laptop
    route = sshroute.route(OUTPUTS, env={"WHISPER_SSH_USER": "ops", "WHISPER_SSH_KEY": "/k"}, home=home)
    assert (route.user, route.key_file) == ("ops", "/k")
    (tmp_path / "gcloud" / "profile.json").write_text("{}")
    (tmp_path / "gcloud" / "posix-username").unlink()  # an account without OS Login's role gets no POSIX user
    with pytest.raises(ConfigError, match="roles/compute.osAdminLogin"):
        sshroute.route(OUTPUTS, env={}, home=home, run=with_env(env))
    with pytest.raises(ConfigError, match="install the Google Cloud CLI"):
        sshroute.route(OUTPUTS, env={}, home=home, run=lambda c: sshroute.run_command(["no-such-gcloud"]))


def test_a_replaced_vm_s_stale_host_key_is_dropped_once_its_instance_id_changes(laptop):
    # The new VM keeps the static address, so OpenSSH's accept-new (and Fabric's paramiko, which reads the
    # same known_hosts) would refuse its new host key as a changed one.
    tmp_path, home, env = laptop
    (home / ".ssh").mkdir()
    known_hosts = home / ".ssh" / "known_hosts"
    for name in ("old_vm", "other_host"):
        keygen(tmp_path / name)
    old_key = (tmp_path / "old_vm.pub").read_text().split()[:2]
    other_key = (tmp_path / "other_host.pub").read_text().split()[:2]
    known_hosts.write_text(f"{OUTPUTS['ip']} {' '.join(old_key)}\n198.51.100.9 {' '.join(other_key)}\n")
    overrides = {"WHISPER_SSH_USER": "ops", "WHISPER_SSH_KEY": str(tmp_path / "old_vm")}
    first = OUTPUTS | {"instanceId": "1111111111111111111"}
    sshroute.route(first, env=overrides, home=home, run=with_env(env))
    sshroute.route(first, env=overrides, home=home, run=with_env(env))
    assert OUTPUTS["ip"] in known_hosts.read_text()  # same VM: its key stays
    replaced = OUTPUTS | {"instanceId": "2222222222222222222"}
    sshroute.route(replaced, env=overrides, home=home, run=with_env(env))
    assert known_hosts.read_text().split() == ["198.51.100.9", *other_key]  # only the replaced VM's key went
    sshroute.route(replaced, env=overrides, home=home, run=with_env(env))  # and nothing more next time
    assert known_hosts.read_text().split() == ["198.51.100.9", *other_key]


def test_the_ansible_inventory_uses_the_same_route(laptop):
    tmp_path, home, env = laptop
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(OUTPUTS))
    done = subprocess.run(
        [sys.executable, str(ROOT / "ansible" / "inventory.py"), "--host", NAME],
        env=env | {"WHISPER_OUTPUTS": str(outputs), "USER": "laptop-user"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    hostvars = json.loads(done.stdout)
    route = sshroute.route(OUTPUTS, env={}, home=home, run=with_env(env))
    assert hostvars["ansible_user"] == route.user == OS_LOGIN_USER
    assert hostvars["ansible_ssh_private_key_file"] == route.key_file
    assert shlex.split(hostvars["ansible_ssh_common_args"]) == route.connection_options()


class Answer(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"grafana")

    def log_message(self, *args):
        pass


def start_sshd(tmp_path: Path, extra: str = "") -> tuple[subprocess.Popen, int]:
    """A real sshd on loopback for the VM behind the stand-in IAP tunnel: it accepts only the keys registered
    with the stand-in OS Login; `extra` ends its config. Returns it and its port."""
    sshd_dir = tmp_path / "sshd"
    sshd_dir.mkdir()
    keygen(sshd_dir / "host_key")
    port = free_port()
    config = sshd_dir / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {sshd_dir}/host_key\nPidFile {sshd_dir}/pid\n"
        f"AuthorizedKeysFile {tmp_path}/gcloud/authorized_keys\nPasswordAuthentication no\nUsePAM no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\n" + extra
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    return subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL), port


def make_dashboards(tmp_path: Path, env: dict[str, str], local: int, remote: int) -> subprocess.Popen:
    """`make dashboards` on the stack outputs in tmp_path, in its own session (stopped with its ssh),
    Grafana's remote port forwarded to `local`; its output in tmp_path/make.log."""
    tunnel_ssh = f"ssh -o BatchMode=yes -o UserKnownHostsFile={tmp_path}/known_hosts -o LogLevel=ERROR"
    return subprocess.Popen(
        [
            "make",
            "-s",
            "dashboards",
            f"DEPLOY_OUTPUTS={tmp_path / 'outputs.json'}",
            f"GRAFANA_LOCAL_PORT={local}",
            f"GRAFANA_REMOTE_PORT={remote}",
            f"PROMETHEUS_LOCAL_PORT={free_port()}",
            f"TUNNEL_SSH={tunnel_ssh}",
        ],
        cwd=ROOT,
        env=env,
        stdout=(tmp_path / "make.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def fetch_while_running(url: str, process: subprocess.Popen, seconds: float) -> bytes | None:
    """The body of GET `url` once it answers, or None when `seconds` pass or `process` exits first."""
    deadline = time.monotonic() + seconds
    body = None
    while time.monotonic() < deadline and body is None and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                body = answer.read()
        except OSError:
            time.sleep(0.3)
    return body


def test_make_dashboards_tunnels_through_iap_as_the_os_login_user(laptop):
    tmp_path, home, env = laptop
    # OS Login's user exists only in Google's directory: here it maps to this machine's user
    forwarding = f"Match User {os.environ.get('USER', 'root')}\n  AllowTcpForwarding local\n"
    sshd, port = start_sshd(tmp_path, forwarding)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (tmp_path / "outputs.json").write_text(json.dumps(OUTPUTS))
    fake_gcloud.install(tmp_path / "bin", tmp_path / "gcloud", os.environ.get("USER", "root"))
    local = free_port()
    iap = env | {"FAKE_IAP_PORT": str(port), "MAKEFLAGS": ""}
    make = make_dashboards(tmp_path, iap, local, server.server_address[1])
    try:
        wait_for_port(port)
        body = fetch_while_running(f"http://127.0.0.1:{local}/", make, seconds=30)
        assert body == b"grafana", (tmp_path / "make.log").read_text()
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(10)
        sshd.terminate()
        sshd.wait(10)
        server.shutdown()
        server.server_close()
    tunnels = [c for c in fake_gcloud.calls(tmp_path / "gcloud") if c[:2] == ["compute", "start-iap-tunnel"]]
    assert tunnels and tunnels[0][2:4] == [NAME, "22"]


def ssh_agent() -> dict[str, str]:
    """A fresh ssh-agent: its SSH_AUTH_SOCK and SSH_AGENT_PID."""
    started = subprocess.run(["ssh-agent", "-s"], capture_output=True, text=True, check=True)
    return dict(line.split(";", 1)[0].split("=", 1) for line in started.stdout.splitlines() if "=" in line)


def ssh(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", *args], env=env, capture_output=True, text=True, timeout=60)


def test_ssh_offers_only_the_routes_key_when_the_agent_holds_many(laptop):
    # A laptop's agent often holds more keys than sshd's MaxAuthTries; OpenSSH offers them all before the
    # IdentityFile unless IdentitiesOnly=yes. Real ssh, ssh-agent and sshd, behind the stand-in IAP tunnel.
    tmp_path, home, env = laptop
    user = os.environ.get("USER", "root")
    fake_gcloud.install(tmp_path / "bin", tmp_path / "gcloud", user)
    route = sshroute.route(OUTPUTS, env={}, home=home, run=with_env(env))
    sshd, port = start_sshd(tmp_path, "MaxAuthTries 3\n")
    agent = ssh_agent()
    try:
        wait_for_port(port)
        for n in range(4):  # more than MaxAuthTries, none of them authorized
            keygen(tmp_path / f"agent_key_{n}")
            subprocess.run(["ssh-add", "-q", str(tmp_path / f"agent_key_{n}")], env=env | agent, check=True)
        known_hosts = f"UserKnownHostsFile={tmp_path}/known_hosts"
        common = ["-o", "BatchMode=yes", "-o", known_hosts, "-o", "LogLevel=ERROR"]
        iap = env | agent | {"FAKE_IAP_PORT": str(port)}
        done = ssh([*common, *route.ssh_options(), f"{user}@{route.host}", "echo", "in"], iap)
        assert (done.returncode, done.stdout.strip()) == (0, "in"), done.stderr
        options = route.ssh_options()
        at = options.index("IdentitiesOnly=yes")
        without = options[: at - 1] + options[at + 1 :]  # the same route without the option
        before = ssh([*common, *without, f"{user}@{route.host}", "echo", "in"], iap)
        assert before.returncode != 0  # the failure the option prevents, for real
        assert "Too many authentication failures" in before.stderr
    finally:
        subprocess.run(["kill", agent["SSH_AGENT_PID"]], check=False)
        sshd.terminate()
        sshd.wait(10)
