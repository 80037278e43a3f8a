#!/usr/bin/env python3
"""Ansible dynamic inventory built from the Pulumi stack outputs.

`make outputs` writes them to .deploy/outputs.json (`pulumi stack output --json`); the single GPU VM
becomes the one host of the group `whisper`:

    ansible-inventory -i ansible/inventory.py --list

SSH goes the way the stack's `sshCommand` output says: through Google's IAP tunnel for
`gcloud compute ssh ... --tunnel-through-iap` (the default: port 22 is open to IAP only), straight to
the address otherwise. Environment overrides: WHISPER_OUTPUTS (the outputs file), WHISPER_SSH_USER
(the login, default: yours, as gcloud uses), WHISPER_SSH_KEY (default: gcloud's key when it exists).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

GROUP = "whisper"
DEFAULT_OUTPUTS = Path(__file__).resolve().parent.parent / ".deploy" / "outputs.json"
GCLOUD_KEY = Path("~/.ssh/google_compute_engine").expanduser()  # the key `gcloud compute ssh` installs
REQUIRED_KEYS = ("ip", "instanceName", "zone", "sshCommand")


class InventoryError(Exception):
    """A problem the operator fixes; its message is one line that says how."""


@dataclass(frozen=True)
class SshRoute:
    """How to reach the VM, read from the stack's sshCommand output."""

    user: str | None = None  # user@host in a plain ssh command
    port: int | None = None  # -p in a plain ssh command
    key_file: str | None = None  # -i in a plain ssh command
    project: str | None = None  # --project of gcloud compute ssh
    iap: bool = False  # --tunnel-through-iap: no direct route to port 22


def load_outputs(path: Path) -> dict:
    """The stack outputs, with every key the inventory needs."""
    if not path.is_file():
        raise InventoryError(f"no {path}: run `make outputs` (after `pulumi up`) to write it")
    try:
        outputs = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InventoryError(f"{path} is not JSON ({err}): run `make outputs` again") from err
    if outputs.get("mode") == "fleet":
        raise InventoryError(
            "the stack runs in fleet mode, whose VMs configure themselves at boot (infra/startup.sh); "
            "Ansible configures the single VM: set the stack back to one VM"
        )
    missing = [key for key in REQUIRED_KEYS if not outputs.get(key)]
    if missing:
        raise InventoryError(f"{path} lacks {', '.join(missing)}: run `make outputs` again")
    return outputs


def parse_ssh_command(command: str) -> SshRoute:
    """Reads user, port, key, project and IAP use from `ssh ...` or `gcloud compute ssh ...`."""
    words = shlex.split(command)
    if words[:3] == ["gcloud", "compute", "ssh"]:
        options = _gcloud_options(words[3:])
        return SshRoute(project=options.get("--project"), iap="--tunnel-through-iap" in options)
    if words[:1] != ["ssh"]:
        raise InventoryError(f"sshCommand {command!r} is neither ssh nor gcloud compute ssh")
    user, port, key_file = None, None, None
    for flag, value in zip(words, words[1:] + [""], strict=True):
        if flag == "-p":
            port = int(value)
        elif flag == "-i":
            key_file = value
    target = words[-1]
    if "@" in target:
        user = target.split("@", 1)[0]
    return SshRoute(user=user, port=port, key_file=key_file)


def _gcloud_options(words: list[str]) -> dict[str, str | None]:
    """`--name value`, `--name=value` and bare `--flag` words as a dict (positionals dropped)."""
    options: dict[str, str | None] = {}
    for index, word in enumerate(words):
        if not word.startswith("--"):
            continue
        name, sep, value = word.partition("=")
        following = words[index + 1] if index + 1 < len(words) else ""
        if sep:
            options[name] = value
        elif following and not following.startswith("--"):
            options[name] = following
        else:
            options[name] = None
    return options


def host_vars(outputs: dict, env: dict[str, str]) -> dict:
    """Connection settings and facts about the VM for its inventory entry."""
    route = parse_ssh_command(outputs["sshCommand"])
    name, zone = outputs["instanceName"], outputs["zone"]
    hostvars = {
        "ansible_host": outputs["ip"],
        "ansible_user": env.get("WHISPER_SSH_USER") or route.user or getpass.getuser(),
        "gce_instance_name": name,
        "gce_zone": zone,
        # A new VM has a new host key: accept it the first time, refuse a changed one afterwards.
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=accept-new",
    }
    key_file = env.get("WHISPER_SSH_KEY") or route.key_file
    if key_file is None and GCLOUD_KEY.is_file():
        key_file = str(GCLOUD_KEY)
    if key_file:
        hostvars["ansible_ssh_private_key_file"] = key_file
    if route.port:
        hostvars["ansible_port"] = route.port
    if route.project:
        hostvars["gce_project"] = route.project
    if route.iap:
        hostvars["ansible_ssh_common_args"] += " -o ProxyCommand=" + shlex.quote(
            _iap_proxy_command(name, zone, route.project)
        )
    return hostvars


def _iap_proxy_command(name: str, zone: str, project: str | None) -> str:
    """The ssh ProxyCommand that opens Google's IAP tunnel to the VM's port 22."""
    words = ["gcloud", "compute", "start-iap-tunnel", name, "%p", "--listen-on-stdin"]
    words += ["--zone", zone, "--verbosity", "warning"]
    if project:
        words += ["--project", project]
    return shlex.join(words)


def build_inventory(outputs: dict, env: dict[str, str]) -> dict:
    """The --list answer: one group, one host, its variables under _meta."""
    name = outputs["instanceName"]
    return {
        GROUP: {"hosts": [name]},
        "_meta": {"hostvars": {name: host_vars(outputs, env)}},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="the whole inventory")
    mode.add_argument("--host", help="one host's variables")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    try:
        inventory = build_inventory(load_outputs(Path(env.get("WHISPER_OUTPUTS", DEFAULT_OUTPUTS))), env)
    except InventoryError as err:
        print(f"inventory: {err}", file=sys.stderr)
        return 1
    if args.list:
        answer = inventory
    else:
        answer = inventory["_meta"]["hostvars"].get(args.host, {})
    print(json.dumps(answer, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
