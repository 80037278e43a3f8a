"""Fleet mode's config: a regional managed instance group behind Google's load balancer, on when `replicas`
(a fixed size) or `minReplicas`/`maxReplicas` (autoscaled) is set."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.settings import Settings  # the editable install provides it (as host.py)

from config_gpu import ZONE_RE, check_zone_has_gpu
from config_values import bounded_int, fail, float_value, int_value, list_value

from catalogue import KNOWN_GPU_ZONES

# A new fleet VM's first boot, step by step (startup.sh), until /readyz answers. Estimates, not measurements,
# except the image: 7.7 GB unpacked, ~4 GB compressed (measured on the built image).
FIRST_BOOT_BUDGET_SEC = {
    "boot": 60,  # VM start, guest agent, the startup script begins
    "docker and toolkit": 240,  # two apt repositories, apt-get update, Docker + NVIDIA Container Toolkit
    "driver install": 600,  # Google's installer: prerequisites, then the driver's runfile builds its module
    "reboot": 120,  # the installer reboots once; the script runs again from the top
    "image pull": 480,  # ~4 GB from Docker Hub through Cloud NAT, then unpacking 7.7 GB onto pd-balanced
    "model load": 180,  # container start, weights onto the GPU, warm-up, /readyz 200
}  # 1680 s = 28 min
# Before auto-healing may judge a new VM by /readyz: the budget plus 40 % margin (a slow mirror, a second
# reboot), rounded up to whole minutes: 2400 s = 40 min. Too short and the group recreates VMs mid-install,
# in a loop; too long only delays replacing a VM that is truly broken.
DEFAULT_AUTOHEAL_DELAY_SEC = -(-int(sum(FIRST_BOOT_BUDGET_SEC.values()) * 1.4) // 60) * 60
# The autoscaler ignores a new VM's load this long (its "initialization period"): at least the first-boot
# budget, or it reads a VM that is still installing its driver as idle capacity and scales out again.
DEFAULT_COOLDOWN_SEC = sum(FIRST_BOOT_BUDGET_SEC.values())  # 1680 s
# The load balancer's backend service timeout: how long a whole HTTP response may take (long files take
# minutes), and, for a WebSocket (the live-audio face /v1/realtime), how long the connection may stay open at
# all, idle or not (https://cloud.google.com/load-balancing/docs/https#websocket_proxy_support). One hour.
DEFAULT_REQUEST_TIMEOUT_SEC = 3600
DEFAULT_MAX_RATE_PER_INSTANCE = 1.0  # requests/s one GPU VM serves at full load (tune per GPU)
DEFAULT_TARGET_UTILIZATION = 0.8  # autoscale when traffic passes 80 % of that rate
# The job store's database (infra/jobs_store.py). A shared-core tier: the job rows are small and few, and
# Cloud SQL caps its connections by memory (https://cloud.google.com/sql/docs/postgres/quotas#cloud-sql-for-postgresql-connection-limits):
DB_TIER_CONNECTIONS = {"db-f1-micro": 25, "db-g1-small": 50}  # a dedicated-core tier: 100 or more
DB_DEDICATED_CONNECTIONS = 100  # the least a db-custom tier (3.75 GB and up) allows
DB_RESERVED_CONNECTIONS = 3  # superuser_reserved_connections' default: Cloud SQL's own maintenance
DEFAULT_DB_TIER = "db-g1-small"  # 50 connections; db-f1-micro's 25 would not carry a surging fleet of 4
DB_TIER_RE = re.compile(r"^db-(f1-micro|g1-small|custom-\d+-\d+)$")
JOBS_KEYS = ("jobsDatabaseTier", "jobsTtlDays")  # fleet only
# How long a job's audio and result stay: the service's JOBS_TTL default (seconds) in whole days, the unit
# of the bucket's lifecycle rule; the stack passes jobsTtlDays back to the container as JOBS_TTL.
DEFAULT_JOBS_TTL_DAYS = max(1, -(-int(Settings().jobs_ttl) // 86_400))


@dataclass(frozen=True)
class FleetConfig:
    """A regional managed instance group behind the global HTTP load balancer."""

    min_replicas: int
    max_replicas: int  # equal to min_replicas: a fixed size, no autoscaler
    zones: tuple[str, ...]  # the region's zones that offer the GPU type
    max_rate_per_instance: float
    target_utilization: float
    autoheal_delay_sec: int
    cooldown_sec: int
    request_timeout_sec: int
    jobs_db_tier: str = DEFAULT_DB_TIER  # the job store's Cloud SQL tier
    jobs_ttl_days: int = DEFAULT_JOBS_TTL_DAYS  # JOBS_TTL, and the bucket's lifecycle rule

    @property
    def autoscaled(self) -> bool:
        return self.max_replicas > self.min_replicas


def fleet_config(
    values: Mapping[str, Any], region: str, gpu_type: str, gpu_count: int = 1
) -> FleetConfig | None:
    """Fleet mode is on when `replicas` (fixed size) or `min/maxReplicas` (autoscaled) is set."""
    replicas = int_value(values, "replicas", None, 2)
    low = int_value(values, "minReplicas", None, 1)
    high = int_value(values, "maxReplicas", None, 4)
    if replicas is None and low is None and high is None:
        for key in JOBS_KEYS:
            if values.get(key) not in (None, ""):
                problem = "is for a fleet; one VM keeps its jobs in SQLite on its own disk"
                raise fail(key, problem, f"remove {key}")
        return None
    if not gpu_type:
        raise fail(
            "gpuType",
            "none (a CPU-only host) is a single-VM shape: fleet VMs start the container with --gpus all",
            "remove replicas/minReplicas/maxReplicas for one CPU VM, or set a gpuType for the fleet",
        )
    low, high = _replica_bounds(replicas, low, high)
    zones = _fleet_zones(values, region, gpu_type)
    return FleetConfig(
        min_replicas=low,
        max_replicas=high,
        zones=zones,
        max_rate_per_instance=float_value(
            values, "maxRatePerInstance", DEFAULT_MAX_RATE_PER_INSTANCE, 0.0, 10_000.0
        ),
        target_utilization=float_value(values, "targetUtilization", DEFAULT_TARGET_UTILIZATION, 0.0, 1.0),
        autoheal_delay_sec=bounded_int(
            values, "autohealInitialDelaySec", DEFAULT_AUTOHEAL_DELAY_SEC, 0, 3600
        ),
        cooldown_sec=bounded_int(values, "cooldownSec", DEFAULT_COOLDOWN_SEC, 15, 3600),
        request_timeout_sec=bounded_int(values, "requestTimeoutSec", DEFAULT_REQUEST_TIMEOUT_SEC, 30, 86_400),
        jobs_db_tier=_db_tier(values, high, len(zones), gpu_count),
        jobs_ttl_days=bounded_int(values, "jobsTtlDays", DEFAULT_JOBS_TTL_DAYS, 1, 365),
    )


def _replica_bounds(replicas: int | None, low: int | None, high: int | None) -> tuple[int, int]:
    if replicas is not None:
        if low is not None or high is not None:
            raise fail(
                "replicas",
                "set together with minReplicas/maxReplicas",
                "set replicas for a fixed size or minReplicas and maxReplicas to autoscale, not both",
            )
        if replicas < 1:
            raise fail("replicas", f"{replicas} serves nobody", "e.g. replicas: 2")
        return replicas, replicas
    low = 1 if low is None else low
    if low < 1:
        # The autoscaler's signal here is the load balancer's utilisation of the group's serving capacity
        # (maxRatePerInstance x VMs): with no VM there is no capacity, the load balancer answers 502 and
        # reports nothing to scale on, so a group of zero would stay at zero (docs/provisioning.md).
        raise fail(
            "minReplicas",
            f"{low} cannot scale up from zero: the load balancer's utilisation needs a VM to measure",
            "e.g. minReplicas: 1 (for a GPU that stops when idle, use one VM with idleStopMinutes)",
        )
    if high is None or high < low:
        raise fail(
            "maxReplicas",
            f"{high} is below minReplicas {low}",
            f"use maxReplicas >= {low}, e.g. maxReplicas: {max(low, 1) * 2}",
        )
    return low, high


def _fleet_zones(values: Mapping[str, Any], region: str, gpu_type: str) -> tuple[str, ...]:
    zones = list_value(values, "fleetZones")
    known = KNOWN_GPU_ZONES.get((region, gpu_type))
    if not zones:
        if known is None:
            raise fail(
                "fleetZones",
                f"no built-in list of {region} zones with {gpu_type}",
                f'list them, e.g. fleetZones: ["{region}-a", "{region}-b"] (check with: gcloud '
                f'compute accelerator-types list --filter="name={gpu_type} AND zone~{region}")',
            )
        return known
    for zone in zones:
        match = ZONE_RE.match(zone)
        if not match or match["region"] != region:
            raise fail("fleetZones", f"{zone!r} is not a zone of {region}", f'e.g. ["{region}-a"]')
        check_zone_has_gpu("fleetZones", zone, region, gpu_type)
    return tuple(dict.fromkeys(zones))


def _db_tier(values: Mapping[str, Any], max_replicas: int, zones: int, gpu_count: int) -> str:
    """The job database's tier, refused when the fleet at its largest would open more connections than it
    allows: during a rollout maxReplicas + one surge VM per zone run at once, each with one gunicorn worker
    per GPU, each worker a pool of JOBS_DATABASE_POOL connections (service/settings/jobs_fleet.py)."""
    tier = str(values.get("jobsDatabaseTier") or DEFAULT_DB_TIER)
    if not DB_TIER_RE.match(tier):
        raise fail(
            "jobsDatabaseTier",
            f"{tier!r} is not a Cloud SQL for PostgreSQL Enterprise tier this stack knows",
            "use db-f1-micro, db-g1-small or db-custom-CPUS-MEMORY_MB, e.g. db-custom-1-3840",
        )
    allowed = DB_TIER_CONNECTIONS.get(tier, DB_DEDICATED_CONNECTIONS) - DB_RESERVED_CONNECTIONS
    needed = (max_replicas + zones) * gpu_count * Settings().jobs_database_pool
    if needed > allowed:
        raise fail(
            "jobsDatabaseTier",
            f"{tier} allows {allowed} connections, and {max_replicas} VMs + {zones} surging, "
            f"{gpu_count} worker(s) each, {Settings().jobs_database_pool} per worker, need {needed}",
            "use a larger tier, e.g. jobsDatabaseTier: db-custom-1-3840",
        )
    return tier
