"""deploy/zonefallback.py (`make infra`): a single VM whose zone is out of its GPU moves to the region's next
GPU zone, says which, and keeps it; a fleet, a CPU host or another failure gets no second try.

A stand-in `pulumi` keeps the stack's config in a JSON file (`config --json`, `config set`) and answers `up`
as Compute Engine does for a zone listed as out of stock: the ZONE_RESOURCE_POOL_EXHAUSTED error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.deploy.conftest import ROOT

FAKE_PULUMI = r"""#!/usr/bin/env python3
import json, os, pathlib, sys
state = pathlib.Path(os.environ["FAKE_PULUMI"])
config = json.loads((state / "config.json").read_text())
args = sys.argv[1:]
with open(state / "calls.log", "a") as log:
    log.write(" ".join(args) + "\n")
if args[:2] == ["config", "--json"]:
    print(json.dumps(config))
elif args[:2] == ["config", "set"]:
    config[args[2]] = {"value": args[3], "secret": False}
    (state / "config.json").write_text(json.dumps(config))
elif args[0] == "up":
    zone = config.get("gcp:zone", {}).get("value", "us-central1-a")
    print("Updating (dev):")
    if zone in (state / "exhausted").read_text().split():
        print(f"  gcp:compute:Instance whisper-dev-vm-instance creating error: googleapi: Error 503: "
              f"The zone 'projects/p/zones/{zone}' does not have enough resources available to fulfill "
              "the request. '(resource type:compute)'., ZONE_RESOURCE_POOL_EXHAUSTED")
        sys.exit(255)
    if (state / "other-error").exists():
        print("  error: googleapi: Error 403: Required 'compute.instances.create' permission")
        sys.exit(255)
    print(f"  created whisper-dev-vm-instance in {zone}")
"""


class Stack:
    def __init__(self, root, keys: dict[str, str]):
        self.state, self.bin = root / "pulumi-state", root / "bin"
        self.state.mkdir()
        self.bin.mkdir()
        config = {"gcp:project": {"value": "p", "secret": False}, "gcp:zone": {"value": "us-central1-a"}}
        config |= {f"whisper-gpu:{k}": {"value": v, "secret": False} for k, v in keys.items()}
        (self.state / "config.json").write_text(json.dumps(config))
        self.out_of_stock()
        (self.bin / "pulumi").write_text(FAKE_PULUMI)
        (self.bin / "pulumi").chmod(0o755)

    def out_of_stock(self, *zones: str) -> None:
        (self.state / "exhausted").write_text(" ".join(zones))

    def zone(self) -> str:
        return json.loads((self.state / "config.json").read_text())["gcp:zone"]["value"]

    def ups(self) -> list[str]:
        return [c for c in (self.state / "calls.log").read_text().splitlines() if c.startswith("up ")]

    def infra(self) -> subprocess.CompletedProcess:
        env = os.environ | {"FAKE_PULUMI": str(self.state), "PATH": f"{self.bin}:{os.environ['PATH']}"}
        command = [
            sys.executable,
            "-m",
            "deploy.zonefallback",
            "--stack",
            "dev",
            "--pulumi",
            str(self.bin / "pulumi"),
        ]
        return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.fixture
def stack(tmp_path):
    return lambda **keys: Stack(tmp_path, keys)


def test_an_out_of_stock_zone_moves_to_the_next_gpu_zone_in_order_and_says_so(stack):
    vm = stack()
    vm.out_of_stock("us-central1-a", "us-central1-b")
    done = vm.infra()
    assert done.returncode == 0, done.stdout + done.stderr
    # infra/catalogue.py's T4 zones of us-central1, in order: a (out), b (out), c
    assert len(vm.ups()) == 3
    assert "us-central1-a has no nvidia-tesla-t4 in stock now; trying us-central1-b" in done.stdout
    assert "chose us-central1-c (stack dev's gcp:zone is now us-central1-c)" in done.stdout
    assert vm.zone() == "us-central1-c"
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in done.stdout  # pulumi's own output still shows


def test_a_zone_in_stock_runs_pulumi_up_once(stack):
    vm = stack()
    assert vm.infra().returncode == 0
    assert len(vm.ups()) == 1 and vm.zone() == "us-central1-a"


def test_every_zone_out_of_stock_puts_the_zone_back_and_fails_naming_them(stack):
    vm = stack()
    vm.out_of_stock("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f")
    done = vm.infra()
    assert done.returncode != 0
    assert len(vm.ups()) == 4
    assert (
        "no nvidia-tesla-t4 in stock in us-central1-a, us-central1-b, us-central1-c, us-central1-f"
        in done.stderr
    )
    assert vm.zone() == "us-central1-a"


def test_another_failure_is_not_retried(stack):
    vm = stack()
    (vm.state / "other-error").write_text("")
    assert vm.infra().returncode != 0
    assert len(vm.ups()) == 1 and vm.zone() == "us-central1-a"


@pytest.mark.parametrize(
    "keys",
    [{"gpuType": "none"}, {"replicas": "2", "dockerImage": "u/w:1", "allowUnauthenticated": "true"}],
    ids=["cpu-only", "fleet"],
)
def test_a_cpu_host_or_a_fleet_gets_no_second_zone(stack, keys):
    vm = stack(**keys)
    vm.out_of_stock("us-central1-a")
    assert vm.infra().returncode != 0
    assert len(vm.ups()) == 1 and vm.zone() == "us-central1-a"
