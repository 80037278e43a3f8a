"""deploy/stack.py: the deploy's mode from the stack config, and its two bounded waits (the single VM's
startup script, the fleet's rollout), run through a stand-in gcloud on PATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from deploy import stack
from deploy.config import ConfigError
from tests.deploy import fake_gcloud
from tests.deploy.conftest import ROOT

VM = {
    "mode": "vm",
    "ip": "203.0.113.7",
    "instanceName": "whisper-dev-vm",
    "zone": "us-central1-a",
    "project": "p",
}
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
FLEET = {"mode": "fleet", "ip": "198.51.100.2", "groupName": "whisper-dev", "region": "us-central1"}


@pytest.mark.parametrize(
    ("config", "mode"),
    [
        ({}, "vm"),
        ({"whisper-gpu:gpuType": {"value": "nvidia-l4"}}, "vm"),
        ({"whisper-gpu:replicas": {"value": "2"}}, "fleet"),
        ({"whisper-gpu:maxReplicas": {"value": "4"}}, "fleet"),
        ({"whisper-gpu:minReplicas": {"value": "1"}}, "fleet"),
    ],
)
def test_mode_follows_the_stack_config(config, mode):
    assert stack.mode(config) == mode


@pytest.fixture
def gcloud(tmp_path):
    env = fake_gcloud.install(tmp_path / "bin", tmp_path / "gcloud", "alice_example_com")
    env = os.environ | env | {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}

    def runner(command):
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    return tmp_path / "gcloud", runner


def test_wait_host_returns_once_the_startup_script_says_ready(gcloud, capsys):
    state, runner = gcloud
    (state / "guest-attributes").write_text("booting\nbooting\nready\n")
    stack.wait_host(VM, runner, timeout=30, poll=0.01)
    queries = [
        c for c in fake_gcloud.calls(state) if c[:3] == ["compute", "instances", "get-guest-attributes"]
    ]
    assert len(queries) == 3
    assert "--query-path=whisper/state" in queries[0] and "--project" in queries[0]
    assert "is ready" in capsys.readouterr().out


def test_wait_host_gives_up_in_time_and_says_where_the_log_is(gcloud):
    state, runner = gcloud
    (state / "guest-attributes").write_text("booting\n")
    with pytest.raises(ConfigError, match="get-serial-port-output whisper-dev-vm") as failure:
        stack.wait_host(VM, runner, timeout=0.05, poll=0.01)
    assert "(last: booting)" in str(failure.value)


def test_wait_host_waits_through_not_found_the_attribute_before_the_script_sets_it(gcloud):
    state, runner = gcloud  # no guest-attributes file: gcloud says "not found", as before the first boot
    with pytest.raises(ConfigError, match=r"\(last: not set yet\)"):
        stack.wait_host(VM, runner, timeout=0.05, poll=0.01)


@pytest.mark.parametrize(
    "error",
    [
        "ERROR: (gcloud.compute.instances.get-guest-attributes) You do not currently have an active account "
        "selected.",
        "ERROR: (gcloud.compute.instances.get-guest-attributes) Could not fetch resource:\n - Required "
        "'compute.instances.getGuestAttributes' permission for 'projects/p/zones/us-central1-a/instances/x'",
    ],
)
def test_wait_host_stops_at_once_on_any_other_gcloud_error_and_prints_it(gcloud, error):
    state, runner = gcloud
    (state / "guest-attributes.error").write_text(error)
    with pytest.raises(ConfigError, match="gcloud cannot read the host's state") as failure:
        stack.wait_host(
            VM, runner, timeout=3600, poll=0.01
        )  # would wait an hour; it stops at the first answer
    assert error.splitlines()[-1].strip() in str(failure.value)
    asked = [c for c in fake_gcloud.calls(state) if c[:3] == ["compute", "instances", "get-guest-attributes"]]
    assert len(asked) == 1


def test_wait_fleet_waits_for_the_new_version_then_stability(gcloud):
    state, runner = gcloud
    stack.wait_fleet(FLEET, runner, timeout=60)
    waits = [
        c
        for c in fake_gcloud.calls(state)
        if c[:4] == ["compute", "instance-groups", "managed", "wait-until"]
    ]
    assert [w[4:6] for w in waits] == [
        ["whisper-dev", "--version-target-reached"],
        ["whisper-dev", "--stable"],
    ]
    assert all("--region" in w and "us-central1" in w for w in waits)
    (state / "wait-until.rc").write_text("1")
    with pytest.raises(ConfigError, match="did not reach version-target-reached"):
        stack.wait_fleet(FLEET, runner, timeout=60)


def test_wait_fleet_first_says_the_rollout_needs_the_surge_gpus_in_quota(gcloud, capsys):
    # The group surges one VM per zone with none unavailable: during a rollout it holds
    # maxReplicas + zones VMs, so the GPU quota must cover those too or the rollout stalls.
    state, runner = gcloud
    sized = FLEET | {
        "fleetZones": ["us-central1-a", "us-central1-b", "us-central1-c"],
        "gpuType": "nvidia-l4",
        "gpuCount": 2,
        "maxReplicas": 4,
    }
    stack.wait_fleet(sized, runner, timeout=60)
    lines = capsys.readouterr().out.splitlines()
    assert "wait-until" in lines[1]  # the quota line comes before the wait
    assert lines[0] == (
        "rolling out: up to 3 new VMs (one per zone) start before old ones leave, so the nvidia-l4 quota "
        "in us-central1 must cover (4 + 3) x 2 = 14 GPUs, or the rollout waits (up to 60 s)"
    )
    stack.wait_fleet(FLEET, runner, timeout=60)  # outputs from before these keys: a general line
    assert capsys.readouterr().out.startswith("rolling out: up to one new VM per zone")


def test_ansible_stops_on_a_fleet_stack_instead_of_configuring_no_host(tmp_path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(FLEET))
    env = os.environ | {"ANSIBLE_CONFIG": str(ROOT / "ansible/ansible.cfg"), "WHISPER_OUTPUTS": str(outputs)}
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{env['PATH']}"
    done = subprocess.run(
        [PLAYBOOK, "-i", str(ROOT / "ansible/inventory.py"), str(ROOT / "ansible/site.yml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode != 0, done.stdout
    assert "fleet mode" in done.stdout + done.stderr


def test_ansible_stops_on_an_empty_group(tmp_path):
    hosts = tmp_path / "hosts.ini"
    hosts.write_text("[whisper]\n")
    env = os.environ | {"ANSIBLE_CONFIG": str(ROOT / "ansible/ansible.cfg")}
    done = subprocess.run(
        [PLAYBOOK, "-i", str(hosts), str(ROOT / "ansible/site.yml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode != 0
    assert "no host in group whisper" in done.stdout
