#!/usr/bin/env python3
"""Ansible dynamic inventory built from the Pulumi stack outputs.

`make outputs` writes them to deploy/paths.py's OUTPUTS (`pulumi stack output --json`); the single GPU VM
becomes the one host of the group `whisper`:

    ansible-inventory -i ansible/inventory.py --list

SSH goes the one route deploy/sshroute.py builds for Fabric and the dashboards tunnel too: for
`gcloud compute ssh ... --tunnel-through-iap` (the default) the OS Login user of your Google account,
gcloud's key (created and registered when missing) and Google's IAP tunnel as ProxyCommand; a plain ssh
command as it is. Environment: WHISPER_OUTPUTS (the outputs file), WHISPER_SSH_USER, WHISPER_SSH_KEY.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: deploy/ is a package there
from deploy import monitoring, paths, sshroute  # noqa: E402 (after the path they need)
from deploy.config import ConfigError, DeployConfig, image_facts  # noqa: E402

GROUP = "whisper"
REQUIRED_KEYS = ("ip", "instanceName", "zone", "sshCommand")


class InventoryError(Exception):
    """A problem the operator fixes; its message is one line that says how."""


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


def host_vars(outputs: dict, env: dict[str, str]) -> dict:
    """Connection settings and facts about the VM: the route deploy/sshroute.py gives Fabric too."""
    try:
        route = sshroute.route(outputs, env)
        # the monitoring stack's ports, from the deploy's knobs as Fabric reads them (DEPLOY_*_PORT)
        ports = monitoring.ansible_vars(DeployConfig.from_env(env))
    except ConfigError as err:
        raise InventoryError(str(err)) from None
    facts = image_facts()  # the Dockerfile's: the account's uid, the oldest driver branch the image runs on
    hostvars = {
        "whisper_uid": facts["WHISPER_UID"],
        "nvidia_driver_check_min_major": facts["MIN_DRIVER_MAJOR"],
        # the host's paths that infra/startup.sh and Fabric use too
        "whisper_home": str(paths.HOST_HOME),
        "whisper_host_ready_file": str(paths.READY_FILE),
        "ansible_host": route.host,
        "ansible_user": route.user or getpass.getuser(),
        "gce_instance_name": outputs["instanceName"],
        "gce_zone": outputs["zone"],
        # Ansible adds the key and port itself; the rest of the route's options go here.
        "ansible_ssh_common_args": shlex.join(route.connection_options()),
        **ports,
    }
    if route.key_file:
        hostvars["ansible_ssh_private_key_file"] = route.key_file
    if route.port:
        hostvars["ansible_port"] = route.port
    return hostvars


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
        inventory = build_inventory(load_outputs(Path(env.get("WHISPER_OUTPUTS", paths.OUTPUTS))), env)
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
