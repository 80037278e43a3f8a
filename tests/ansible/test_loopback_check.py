"""The monitoring role's last check (run on the VM after `docker compose up`): it must fail when a
monitoring port listens beyond loopback, and pass when it listens on 127.0.0.1 only. Each case runs the
role's task file through `ansible -m include_role` in a private network namespace with one listener, on
Prometheus' port, with the ports ansible/inventory.py gives a real host (deploy.monitoring)."""

from __future__ import annotations

import json
import subprocess

from deploy import monitoring
from deploy.config import DeployConfig

from .conftest import ANSIBLE_DIR, SYSTEM_PYTHON, VENV_BIN, ansible_env

LISTEN_AND_CHECK = """
ip link set lo up
python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(); time.sleep(120)' "$1" "$4" &
for _ in $(seq 100); do ss -Hltn | grep -q ":$4 " && break; sleep 0.05; done
"$2" localhost -i localhost, -c local -e ansible_python_interpreter="$3" -e "$5" \\
  -m ansible.builtin.include_role -a 'name=monitoring tasks_from=loopback.yml'
status=$?
kill %1
exit $status
"""


PORT = DeployConfig().prometheus_port


def check_with_listener(address: str, tmp_path) -> subprocess.CompletedProcess:
    env = ansible_env(tmp_path) | {"ANSIBLE_ROLES_PATH": str(ANSIBLE_DIR / "roles")}
    return subprocess.run(
        [
            "unshare",
            "-n",
            "bash",
            "-c",
            LISTEN_AND_CHECK,
            "check",
            address,
            str(VENV_BIN / "ansible"),
            SYSTEM_PYTHON,
            str(PORT),
            json.dumps(monitoring.ansible_vars(DeployConfig())),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_loopback_listener_passes(tmp_path):
    done = check_with_listener("127.0.0.1", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"127.0.0.1:{PORT}" in done.stdout  # ss saw the listener: the check had something to judge


def test_listener_on_every_interface_fails(tmp_path):
    done = check_with_listener("0.0.0.0", tmp_path)
    assert done.returncode != 0
    assert "monitoring ports reachable beyond loopback" in done.stdout
    assert f"0.0.0.0:{PORT}" in done.stdout
