"""Fixtures for the Ansible tests: ansible/site.yml runs for real against this machine (local connection,
root), with every path that could lock the developer out or change apt's behaviour pointed into a sandbox.

What runs for real here: apt installs (unattended-upgrades, chrony), the service account and the docker
group, every file and template (chrony's drop-in lands in the real /etc/chrony/conf.d). What is switched
off by variables: GPU work (`whisper_gpu_enabled`) and service start/enable/restart
(`whisper_manage_services`: no init system here). Docker, the driver and the toolkit are
infra/startup.sh's, never Ansible's.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import re
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from deploy import monitoring
from deploy.config import DeployConfig, image_facts

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
VENV_BIN = Path(sys.executable).parent
PLAYBOOK_TIMEOUT_S = 240  # a first run installs two small packages; a converged run takes ~20 s
TEST_USER = "whisper-ci"  # the service account the run creates (the VM's is `whisper`)
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")  # stops package scripts from starting daemons here
SYSTEM_PYTHON = "/usr/bin/python3"  # has python3-apt, which the apt module needs (the venv has not)

RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=\d+\s+ignored=(?P<ignored>\d+)",
    re.MULTILINE,
)
TASK_HEADER = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?P<name>.+?)\] \*+$")
TASK_STATUS = re.compile(r"^(?P<status>ok|changed|skipping|fatal|failed): \[")


@dataclass(frozen=True)
class PlaybookRun:
    """One ansible-playbook run: exit status, output, the recap counts and each task's statuses."""

    returncode: int
    output: str
    recap: dict[str, int]
    tasks: dict[str, set[str]] = field(default_factory=dict)  # "role : task name" -> statuses

    def changed_tasks(self) -> list[str]:
        return [name for name, statuses in self.tasks.items() if "changed" in statuses]


def parse_run(returncode: int, output: str) -> PlaybookRun:
    recaps = list(RECAP.finditer(output))
    recap = {k: int(v) for k, v in recaps[-1].groupdict().items() if k != "host"} if recaps else {}
    tasks: dict[str, set[str]] = defaultdict(set)
    current = None
    for line in output.splitlines():
        if header := TASK_HEADER.match(line):
            current = header["name"]
        elif current and (status := TASK_STATUS.match(line)):
            tasks[current].add(status["status"])
    return PlaybookRun(returncode, output, recap, dict(tasks))


@dataclass(frozen=True)
class Sandbox:
    """Where the run's redirected paths point, and the variables that point them there."""

    root: Path
    inventory: Path
    vars_file: Path
    uid: int

    @property
    def home(self) -> Path:
        return self.root / "var-lib-whisper"

    @property
    def monitoring_dir(self) -> Path:
        return self.home / "monitoring"

    @property
    def sshd_dropin(self) -> Path:
        return self.root / "sshd_config.d" / "10-whisper.conf"

    @property
    def apt_conf_dir(self) -> Path:
        return self.root / "apt.conf.d"

    @property
    def daemon_json(self) -> Path:
        return self.root / "docker" / "daemon.json"


def ansible_env(tmp: Path) -> dict[str, str]:
    """The environment every ansible command here runs in: the repo's ansible.cfg, no colour."""
    env = dict(os.environ)
    env.update(
        PATH=f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
        ANSIBLE_HOME=str(tmp / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_STDOUT_CALLBACK="default",
        ANSIBLE_DEPRECATION_WARNINGS="0",
    )
    return env


def run_playbook(
    sandbox: Sandbox,
    *args: str,
    extra_vars: dict | None = None,
    sandbox_vars: bool = True,
    path_prefix: str | None = None,
) -> PlaybookRun:
    """ansible-playbook site.yml against this machine with the sandbox variables (and any extra)."""
    command = [str(VENV_BIN / "ansible-playbook"), "-i", str(sandbox.inventory)]
    if sandbox_vars:
        command += ["-e", f"@{sandbox.vars_file}"]
    command += [str(ANSIBLE_DIR / "site.yml"), *args]
    if extra_vars:
        text = json.dumps(extra_vars, sort_keys=True)
        extra = sandbox.root / f"extra-{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
        extra.write_text(text)
        command += ["-e", f"@{extra}"]
    env = ansible_env(sandbox.root)
    if path_prefix:  # stand-in commands (nvidia-smi) for the local connection's tasks
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=PLAYBOOK_TIMEOUT_S,
        cwd=ROOT,
    )
    return parse_run(done.returncode, done.stdout + done.stderr)


def free_id(start: int = 10001, stop: int = 11000) -> int:
    """The first number in [start, stop) that is neither a uid nor a gid here."""
    for number in range(start, stop):
        try:
            pwd.getpwuid(number)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(number)
        except KeyError:
            return number
    raise AssertionError(f"no free uid/gid in [{start}, {stop})")


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


# The toolkit's own entry and a log option someone set by hand: the merge must keep both.
SEEDED_DAEMON_JSON = {
    "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},
    "log-opts": {"compress": "true"},
}
# A rule file that was renamed away in the repo: the monitoring role must remove it from the host.
STALE_RULE_FILE = "prometheus/rules/renamed-away.yml"


def make_sandbox(root: Path) -> Sandbox:
    uid = free_id()
    sandbox = Sandbox(root, root / "hosts.ini", root / "vars.yml", uid)
    sandbox.inventory.write_text(
        f"[whisper]\nlocalhost ansible_connection=local ansible_python_interpreter={SYSTEM_PYTHON}\n"
    )
    variables = {
        "whisper_gpu_enabled": False,
        "whisper_manage_services": False,
        "whisper_user": TEST_USER,
        "whisper_uid": uid,
        # what ansible/inventory.py gives a real host from the Dockerfile (deploy.config.image_facts)
        "nvidia_driver_check_min_major": image_facts()["MIN_DRIVER_MAJOR"],
        "whisper_home": str(sandbox.home),
        "base_apt_conf_dir": str(sandbox.apt_conf_dir),
        "base_sshd_dropin_dir": str(sandbox.sshd_dropin.parent),
        "docker_config_daemon_json": str(sandbox.daemon_json),
        # infra/startup.sh's marker that this boot's driver/Docker/toolkit work is done
        "whisper_host_ready_file": str(root / "host-ready"),
        # what ansible/inventory.py gives a real host from the deploy's port knobs (deploy.monitoring)
        **monitoring.ansible_vars(DeployConfig()),
    }
    (root / "host-ready").touch()
    sandbox.vars_file.write_text(yaml.safe_dump(variables))
    sandbox.daemon_json.parent.mkdir(parents=True)
    sandbox.daemon_json.write_text(json.dumps(SEEDED_DAEMON_JSON))
    stale = sandbox.monitoring_dir / STALE_RULE_FILE
    stale.parent.mkdir(parents=True)
    stale.write_text("groups: []\n")
    return sandbox


def remove_account(name: str) -> None:
    if user_exists(name):
        subprocess.run(["userdel", name], check=True, capture_output=True)
    if group_exists(name):
        subprocess.run(["groupdel", name], check=True, capture_output=True)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory) -> Sandbox:
    """The sandbox, with the account and groups the run creates removed again at the end."""
    assert os.geteuid() == 0, "the Ansible tests install packages and create users: run them as root"
    remove_account(TEST_USER)  # left over by an interrupted session: start from no account
    had_docker_group = group_exists("docker")
    created_policy = not POLICY_RC_D.exists()
    if created_policy:
        POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    try:
        yield make_sandbox(tmp_path_factory.mktemp("ansible-host"))
    finally:
        remove_account(TEST_USER)
        if not had_docker_group and group_exists("docker"):
            subprocess.run(["groupdel", "docker"], check=True, capture_output=True)
        if created_policy:
            POLICY_RC_D.unlink()


@pytest.fixture(scope="session")
def first_run(sandbox) -> PlaybookRun:
    return run_playbook(sandbox)


@pytest.fixture(scope="session")
def second_run(sandbox, first_run, converged_snapshot) -> PlaybookRun:
    assert first_run.returncode == 0, first_run.output[-4000:]
    return run_playbook(sandbox)


@pytest.fixture(scope="session")
def converged_snapshot(sandbox, first_run) -> dict[str, bytes]:
    """Every sandbox file's bytes after the first run, to compare with the second run's."""
    assert first_run.returncode == 0, first_run.output[-4000:]
    return {
        str(path.relative_to(sandbox.root)): path.read_bytes()
        for path in sorted(sandbox.home.rglob("*"))
        if path.is_file()
    }
