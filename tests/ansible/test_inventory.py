"""ansible/inventory.py turns the Pulumi outputs (.deploy/outputs.json) into Ansible's inventory; the
script runs as Ansible runs it, as a program, and once through ansible-inventory itself."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from tests.deploy import fake_gcloud

from .conftest import ANSIBLE_DIR, ROOT, VENV_BIN, ansible_env

SCRIPT = ANSIBLE_DIR / "inventory.py"
NAME = "whisper-dev-vm"
OVERRIDES = {"WHISPER_SSH_USER": "deployer", "WHISPER_SSH_KEY": "/keys/id"}  # no gcloud call needed
IAP_OUTPUTS = {
    "mode": "single",
    "ip": "203.0.113.7",
    "instanceName": NAME,
    "zone": "us-central1-a",
    "url": "http://203.0.113.7",
    "sshCommand": f"gcloud compute ssh {NAME} --zone us-central1-a --project demo-proj --tunnel-through-iap",
}


@pytest.fixture
def outputs_file(tmp_path):
    def write(outputs: dict) -> str:
        path = tmp_path / "outputs.json"
        path.write_text(json.dumps(outputs))
        return str(path)

    return write


def inventory(outputs_path: str, tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "USER": "operator"}
    environment.update(WHISPER_OUTPUTS=outputs_path, **env)
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )


def host_vars(outputs_path: str, tmp_path, **env: str) -> dict:
    done = inventory(outputs_path, tmp_path, "--list", **env)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["whisper"] == {"hosts": [NAME]}
    return answer["_meta"]["hostvars"][NAME]


def test_iap_route_goes_through_a_gcloud_tunnel(outputs_file, tmp_path):
    hostvars = host_vars(outputs_file(IAP_OUTPUTS), tmp_path, **OVERRIDES)
    assert hostvars["ansible_host"] == "203.0.113.7"
    assert hostvars["gce_zone"] == "us-central1-a"
    # Ansible's ssh plugin splits these arguments with shlex, as done here.
    args = shlex.split(hostvars["ansible_ssh_common_args"])
    assert args[:2] == ["-o", "StrictHostKeyChecking=accept-new"]
    assert args[2] == "-o"
    option, _, proxy = args[3].partition("=")
    assert option == "ProxyCommand"
    tunnel = f"gcloud compute start-iap-tunnel {NAME} 22 --listen-on-stdin"
    flags = "--zone us-central1-a --verbosity warning --project demo-proj"
    assert shlex.split(proxy) == tunnel.split() + flags.split()


def test_login_is_the_os_login_user_with_gclouds_key(outputs_file, tmp_path):
    env = fake_gcloud.install(tmp_path / "bin", tmp_path / "gcloud", "operator_example_com")
    hostvars = host_vars(outputs_file(IAP_OUTPUTS), tmp_path, PATH=f"{tmp_path}/bin:/usr/bin:/bin", **env)
    assert hostvars["ansible_user"] == "operator_example_com"  # not $USER (operator)
    assert hostvars["ansible_ssh_private_key_file"] == str(tmp_path / ".ssh" / "google_compute_engine")


def test_environment_overrides_user_and_key(outputs_file, tmp_path):
    hostvars = host_vars(
        outputs_file(IAP_OUTPUTS), tmp_path, WHISPER_SSH_USER="deployer", WHISPER_SSH_KEY="/keys/id"
    )
    assert hostvars["ansible_user"] == "deployer"
    assert hostvars["ansible_ssh_private_key_file"] == "/keys/id"


def test_plain_ssh_command_gives_user_port_and_key(outputs_file, tmp_path):
    outputs = IAP_OUTPUTS | {"sshCommand": "ssh -i /keys/vm -p 2222 alice@203.0.113.7"}
    hostvars = host_vars(outputs_file(outputs), tmp_path)
    assert hostvars["ansible_user"] == "alice"
    assert hostvars["ansible_port"] == 2222
    assert hostvars["ansible_ssh_private_key_file"] == "/keys/vm"
    assert "ProxyCommand" not in hostvars["ansible_ssh_common_args"]


def test_host_answers_one_hosts_variables(outputs_file, tmp_path):
    path = outputs_file(IAP_OUTPUTS)
    done = inventory(path, tmp_path, "--host", NAME, **OVERRIDES)
    assert json.loads(done.stdout)["ansible_host"] == "203.0.113.7"
    assert json.loads(inventory(path, tmp_path, "--host", "other", **OVERRIDES).stdout) == {}


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (None, "run `make outputs`"),
        ("{not json", "is not JSON"),
        (IAP_OUTPUTS | {"mode": "fleet"}, "fleet mode"),
        ({k: v for k, v in IAP_OUTPUTS.items() if k != "zone"}, "lacks zone"),
        (IAP_OUTPUTS | {"sshCommand": "telnet 203.0.113.7"}, "neither ssh nor gcloud"),
    ],
)
def test_problems_end_in_one_line_that_says_the_fix(tmp_path, outputs, message):
    path = tmp_path / "outputs.json"
    if outputs is not None:
        path.write_text(outputs if isinstance(outputs, str) else json.dumps(outputs))
    done = inventory(str(path), tmp_path, "--list")
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr


def test_ansible_reads_the_inventory_with_the_site_variables(outputs_file, tmp_path):
    env = ansible_env(tmp_path) | {"WHISPER_OUTPUTS": outputs_file(IAP_OUTPUTS), **OVERRIDES}
    done = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(SCRIPT), "--host", NAME],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    hostvars = json.loads(done.stdout)
    assert hostvars["ansible_host"] == "203.0.113.7"
    assert hostvars["whisper_user"] == "whisper"  # group_vars/all.yml beside the inventory


def test_make_configure_says_how_to_get_the_outputs(tmp_path):
    missing = tmp_path / "absent.json"
    done = subprocess.run(
        ["make", "--no-print-directory", "configure", f"OUTPUTS={missing}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"no {missing}: run make outputs" in done.stderr
