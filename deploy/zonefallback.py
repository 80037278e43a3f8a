"""`make infra`: `pulumi up`; for the single VM, the region's other GPU zones when its zone is out of stock.

    python -m deploy.zonefallback [--stack dev] [--pulumi pulumi]

A GPU zone can run out of a GPU type for a while: Compute Engine then refuses the VM with
ZONE_RESOURCE_POOL_EXHAUSTED (https://cloud.google.com/compute/docs/troubleshooting/troubleshooting-resource-availability),
although the quota is there. For a single-VM stack this sets `gcp:zone` to the next zone of the region that
offers the GPU (infra/catalogue.py's list, in its order; for a region it does not list, `gcloud compute
accelerator-types list`), runs `pulumi up` again, and says which zone it chose; the static
address is regional, so the URL stays. When every zone is out of stock it puts the first zone back and fails.
A fleet spreads over its zones itself; any other failure stops at once. Output streams as pulumi prints it.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from deploy.cloudcheck import infra, typed_config
from deploy.config import ConfigError
from deploy.stack import stack_config, stack_parser

EXHAUSTED = ("ZONE_RESOURCE_POOL_EXHAUSTED", "does not have enough resources available")


def pulumi_up(pulumi: str, stack: str) -> tuple[int, str]:
    """Runs `pulumi up --yes`, its output passed through as it comes and kept for reading."""
    process = subprocess.Popen(
        [pulumi, "up", "--yes", "--stack", stack], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    kept = []
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        kept.append(line)
    return process.wait(), "".join(kept)


def set_zone(pulumi: str, stack: str, zone: str) -> None:
    done = subprocess.run(
        [pulumi, "config", "set", "gcp:zone", zone, "--stack", stack],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise ConfigError(f"pulumi config set gcp:zone {zone} failed: {done.stderr.strip()}")


def gpu_zones(cfg: Any) -> list[str]:
    """The region's zones that offer the stack's GPU: the catalogue's, else gcloud's live list."""
    known = infra("catalogue").KNOWN_GPU_ZONES.get((cfg.region, cfg.gpu_type))
    if known:
        return list(known)
    done = subprocess.run(
        ["gcloud", "compute", "accelerator-types", "list", "--project", cfg.project,
         f"--filter=name={cfg.gpu_type} AND zone~^{cfg.region}-", "--format=value(zone)"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return sorted(done.stdout.split()) if done.returncode == 0 else []


def fallback_zones(cfg: Any) -> list[str]:
    """Where to try next, in order: none for a fleet or a CPU-only host."""
    if cfg.fleet is not None or not cfg.gpu_type:
        return []
    return [zone for zone in gpu_zones(cfg) if zone != cfg.zone]


def up(stack: str, pulumi: str) -> int:
    rc, output = pulumi_up(pulumi, stack)
    if rc == 0 or not any(marker in output for marker in EXHAUSTED):
        return rc
    cfg = typed_config(stack_config(stack, pulumi), stack)  # read only when a zone is out of stock
    tried = [cfg.zone]
    for zone in fallback_zones(cfg):
        print(f"zonefallback: {tried[-1]} has no {cfg.gpu_type} in stock now; trying {zone}", flush=True)
        set_zone(pulumi, stack, zone)
        tried.append(zone)
        rc, output = pulumi_up(pulumi, stack)
        if rc == 0:
            print(f"zonefallback: chose {zone} (stack {stack}'s gcp:zone is now {zone})", flush=True)
            return 0
        if not any(marker in output for marker in EXHAUSTED):
            return rc
    if len(tried) > 1:
        set_zone(pulumi, stack, cfg.zone)
    print(
        f"zonefallback: no {cfg.gpu_type or 'capacity'} in stock in {', '.join(tried)}; try later, another "
        f"region (gcp:zone), or spot: true (its capacity pool differs)",
        file=sys.stderr,
    )
    return rc


def main(argv: list[str]) -> int:
    args = stack_parser("python -m deploy.zonefallback").parse_args(argv)
    try:
        return up(args.stack, args.pulumi)
    except ConfigError as error:
        print(f"zonefallback: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
