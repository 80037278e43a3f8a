"""What `make deploy` asks the stack and Google Cloud between its steps.

    python -m deploy.stack mode [--stack dev]   # vm | fleet, from the stack's CONFIG (not its outputs)
    python -m deploy.stack wait-host            # the single VM's startup script is done (guest attribute)
    python -m deploy.stack wait-fleet           # the group runs the new template everywhere and is stable
    python -m deploy.stack start                # start the stopped single VM, wait for /readyz 200

The mode comes from `pulumi config`, so a first deploy of a fleet stack (no outputs yet, or outputs of the
single VM it replaces) takes the fleet path. Every wait is bounded and ends in one line that says what to do.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping

from deploy.config import ConfigError, stack_outputs

PROJECT = "whisper-gpu"  # Pulumi.yaml name: prefix of the project's config keys
FLEET_KEYS = (
    "replicas",
    "minReplicas",
    "maxReplicas",
)  # infra/config_fleet.py: any of them turns fleet mode on
# The startup script's guest attribute (infra/startup.sh): "booting" while it runs, "ready" when done.
GUEST_ATTRIBUTE = "whisper/state"
HOST_READY_TIMEOUT_S = 1800  # driver install with its reboots, Docker, the toolkit
HOST_POLL_S = 15.0
FLEET_TIMEOUT_S = 3600  # new VMs: driver, image pull, model load, min_ready_sec, then the old ones drain
# A stopped VM that starts again: boot, the startup script's checks (the driver is there), Docker restarts the
# service container (--restart unless-stopped), the model loads. Minutes; a first boot is not this path.
START_TIMEOUT_S = float(os.environ.get("START_TIMEOUT_S", "900"))
START_POLL_S = float(os.environ.get("START_POLL_S", "10"))
Runner = Callable[[list[str]], subprocess.CompletedProcess]


def run(command: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=FLEET_TIMEOUT_S + 60)
    except FileNotFoundError:
        raise ConfigError(f"{command[0]} not found; make deploy-preflight says how to install it") from None


def stack_config(stack: str, pulumi: str = "pulumi", runner: Runner = run) -> dict:
    done = runner([pulumi, "config", "--json", "--stack", stack])
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ConfigError(
            f"cannot read stack {stack}'s config ({last}); create it: pulumi stack init {stack}"
        )
    return json.loads(done.stdout or "{}")


def mode(config: Mapping) -> str:
    """fleet when the stack sets replicas, minReplicas or maxReplicas; else vm."""
    keys = {key.split(":", 1)[1] for key in config if key.startswith(f"{PROJECT}:")}
    return "fleet" if keys & set(FLEET_KEYS) else "vm"


def guest_attribute_error(done: subprocess.CompletedProcess) -> str:
    """ "not set yet" for gcloud's not-found (the attribute, or the VM, does not exist yet); any other failure
    (no login, no permission, a wrong project) will not pass by waiting: ConfigError at once."""
    last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
    if "not found" in last.lower() or "NOT_FOUND" in last:
        return "not set yet"
    raise ConfigError(f"gcloud cannot read the host's state: {last}")


def wait_host(
    outputs: Mapping, runner: Runner = run, timeout: float = HOST_READY_TIMEOUT_S, poll: float = HOST_POLL_S
) -> None:
    """Until the VM's startup script reports `ready` (it reboots once or twice for the driver on a first boot:
    SSH would fail or race it meanwhile)."""
    command = ["gcloud", "compute", "instances", "get-guest-attributes", outputs["instanceName"]]
    command += ["--zone", outputs["zone"], f"--query-path={GUEST_ATTRIBUTE}", "--format=value(value)"]
    if outputs.get("project"):
        command += ["--project", outputs["project"]]
    deadline = time.monotonic() + timeout
    state = "no answer"
    for _ in range(int(timeout / poll) + 2):
        done = runner(command)
        state = done.stdout.strip() if done.returncode == 0 else guest_attribute_error(done)
        if state == "ready":
            print(f"host {outputs['instanceName']} is ready", flush=True)
            return
        if time.monotonic() >= deadline:
            break
        print(f"waiting for {outputs['instanceName']}'s startup script: {state}", flush=True)
        time.sleep(poll)
    raise ConfigError(
        f"{outputs['instanceName']} did not finish its startup script within {timeout:g} s (last: {state}); "
        f"read its log: gcloud compute instances get-serial-port-output {outputs['instanceName']} "
        f"--zone {outputs['zone']} | grep whisper-startup"
    )


def surge_quota_line(outputs: Mapping, timeout: int) -> str:
    """The GPUs a rollout holds at its peak: the group (infra/fleet.py) creates one new VM per zone before
    any old one leaves (max surge = zones, max unavailable = 0), so maxReplicas + zones VMs at once."""
    zones, gpus, most = outputs.get("fleetZones"), outputs.get("gpuCount"), outputs.get("maxReplicas")
    if not (zones and gpus and most):
        return (
            "rolling out: up to one new VM per zone starts before old ones leave, so the GPU quota must "
            f"cover maxReplicas + zones VMs' GPUs, or the rollout waits (up to {timeout} s)"
        )
    need = (int(most) + len(zones)) * int(gpus)
    return (
        f"rolling out: up to {len(zones)} new VMs (one per zone) start before old ones leave, so the "
        f"{outputs.get('gpuType') or 'GPU'} quota in {outputs['region']} must cover "
        f"({most} + {len(zones)}) x {gpus} = {need} GPUs, or the rollout waits (up to {timeout} s)"
    )


def wait_fleet(outputs: Mapping, runner: Runner = run, timeout: int = FLEET_TIMEOUT_S) -> None:
    """Until every VM of the group runs the new template (`--version-target-reached`), then until the group
    is stable (no VM being created, recreated or verified). It first says what the rollout needs in quota."""
    print(surge_quota_line(outputs, timeout), flush=True)
    for target in ("--version-target-reached", "--stable"):
        command = ["gcloud", "compute", "instance-groups", "managed", "wait-until", outputs["groupName"]]
        command += [target, f"--timeout={timeout}", "--region", outputs["region"]]
        if outputs.get("project"):
            command += ["--project", outputs["project"]]
        print(" ".join(command), flush=True)
        done = runner(command)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise ConfigError(f"group {outputs['groupName']} did not reach {target[2:]}: {last}")


def readyz_status(url: str) -> int | str:
    """The HTTP status of GET url/readyz, or why there was none."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/readyz", timeout=10) as answer:  # noqa: S310
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code
    except (OSError, urllib.error.URLError) as err:
        return type(err).__name__


def start(
    outputs: Mapping,
    runner: Runner = run,
    timeout: float = START_TIMEOUT_S,
    poll: float = START_POLL_S,
    status: Callable[[str], int | str] = readyz_status,
) -> None:
    """`make start`: start the single VM (stopped by idleStopMinutes, a Spot preemption, by hand), then wait
    until the service answers /readyz 200 through the stack's public URL."""
    if outputs.get("mode") == "fleet":
        raise ConfigError("the stack is a fleet: its autoscaler starts VMs; make start is for the single VM")
    name, zone = outputs["instanceName"], outputs["zone"]
    command = ["gcloud", "compute", "instances", "start", name, "--zone", zone]
    if outputs.get("project"):
        command += ["--project", outputs["project"]]
    print(" ".join(command), flush=True)
    done = runner(command)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ConfigError(f"could not start {name}: {reason}")
    deadline = time.monotonic() + timeout
    last: int | str = "no answer"
    while True:
        last = status(outputs["url"])
        if last == 200:
            print(f"{name} is up: {outputs['url']}/readyz answers 200", flush=True)
            return
        if time.monotonic() >= deadline:
            break
        print(f"waiting for {outputs['url']}/readyz: {last}", flush=True)
        time.sleep(poll)
    raise ConfigError(
        f"{outputs['url']}/readyz did not answer 200 within {timeout:g} s of the start (last: {last}); "
        f"look on the VM: make dashboards, or {outputs.get('sshCommand', 'gcloud compute ssh')} "
        "then docker ps and docker logs"
    )


def stack_parser(prog: str) -> argparse.ArgumentParser:
    """A command line that names the stack and the pulumi binary (STACK and PULUMI from make)."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--stack", default=os.environ.get("STACK", "dev"))
    parser.add_argument("--pulumi", default=os.environ.get("PULUMI", "pulumi"))
    return parser


def main(argv: list[str]) -> int:
    parser = stack_parser("python -m deploy.stack")
    parser.add_argument("what", choices=("mode", "wait-host", "wait-fleet", "start"))
    args = parser.parse_args(argv)
    try:
        if args.what == "mode":
            print(mode(stack_config(args.stack, args.pulumi)))
        elif args.what == "wait-host":
            wait_host(stack_outputs())
        elif args.what == "start":
            start(stack_outputs())
        else:
            wait_fleet(stack_outputs())
    except ConfigError as err:
        print(f"{args.what}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
