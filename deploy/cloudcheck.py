"""The cloud half of `make deploy`'s preflight: before the 30-minute image build, ask Google what would stop
`pulumi up` on this stack.

    python -m deploy.cloudcheck [--stack dev]

1. an active gcloud account (`gcloud auth list`): every later gcloud call needs one;
2. Compute Engine's API on (`gcloud services list --enabled`): the quota below is read through it; the stack
   switches on the rest itself (infra/apis.py), which this says;
3. GPU quota for what the stack will create: the project's GPUS_ALL_REGIONS (0 on a new project) and the
   region's metric for the GPU (PREEMPTIBLE_ for Spot), each as limit - usage >= the GPUs needed: one VM,
   or a fleet's maxReplicas plus one surge VM per zone (infra/fleet.py's rolling update). A CPU-only host
   needs none.

The stack's config is read with `pulumi config --json` and validated by infra/config.py itself (one owner
of the defaults). One line per problem with the command that fixes it, exit 1; exit 0 when all is clear.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Mapping
from typing import Any

from deploy.config import ROOT, ConfigError
from deploy.stack import PROJECT, Runner, run, stack_config, stack_parser

INFRA = ROOT / "infra"
QUOTA_DOC = "https://console.cloud.google.com/iam-admin/quotas"


def infra(module: str) -> Any:
    """A module of infra/ imported as Pulumi imports it (by bare name, infra/ first on the path)."""
    sys.path.insert(0, str(INFRA))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(INFRA))


def typed_config(raw: Mapping[str, Any], stack: str) -> Any:
    """infra/config.py's StackConfig from `pulumi config --json` (secrets count as set, never read)."""
    values = {k.split(":", 1)[1]: v.get("value") for k, v in raw.items() if k.startswith(f"{PROJECT}:")}
    gcp = {k.split(":", 1)[1]: v.get("value") for k, v in raw.items() if k.startswith("gcp:")}
    secret = {k: "(secret)" for k in values if raw[f"{PROJECT}:{k}"].get("secret")}
    config = infra("config")
    try:
        return config.StackConfig.from_mapping(
            {k: v for k, v in values.items() if k not in secret},
            gcp,
            stack,
            api_key=secret.get("apiKey"),
            dockerhub_token=secret.get("dockerhubToken"),
        )
    except config.ConfigError as error:
        raise ConfigError(str(error)) from None


def gcloud_json(runner: Runner, *args: str) -> Any:
    done = runner(["gcloud", *args, "--format=json"])
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ConfigError(f"gcloud {' '.join(args[:3])} failed: {last}")
    return json.loads(done.stdout or "null")


def active_account(runner: Runner) -> list[str]:
    accounts = gcloud_json(runner, "auth", "list", "--filter=status:ACTIVE")
    return [] if accounts else ["no active gcloud account: run gcloud auth login"]


def api_lines(cfg: Any, runner: Runner) -> tuple[list[str], list[str]]:
    """(problems, notes): Compute Engine must be on to read quota; the stack enables the rest itself."""
    enabled = gcloud_json(runner, "services", "list", "--enabled", "--project", cfg.project)
    names = {service["config"]["name"] for service in enabled or []}
    wanted = infra("apis").required_apis(cfg.fleet is not None)
    off = [api for api in wanted if api not in names]
    problems = []
    if "compute.googleapis.com" in off:
        problems.append(
            "Compute Engine's API is off, so its GPU quota cannot be checked: "
            f"gcloud services enable compute.googleapis.com --project {cfg.project}"
        )
    notes = [f"pulumi up will enable: {', '.join(off)}"] if off else []
    return problems, notes


def gpus_needed(cfg: Any) -> int:
    if not cfg.gpu_type:
        return 0
    vms = cfg.fleet.max_replicas + len(cfg.fleet.zones) if cfg.fleet else 1
    return vms * cfg.gpu_count


def free_quota(quotas: list[dict], metric: str) -> float:
    found = next((q for q in quotas if q.get("metric") == metric), None)
    return float(found["limit"]) - float(found.get("usage", 0)) if found else 0.0


def quota_lines(cfg: Any, runner: Runner) -> list[str]:
    need = gpus_needed(cfg)
    if need == 0:
        return []
    catalogue = infra("catalogue")
    regional = ("PREEMPTIBLE_" if cfg.spot else "") + catalogue.GPU_QUOTA_METRICS[cfg.gpu_type]
    project = gcloud_json(runner, "compute", "project-info", "describe", "--project", cfg.project)
    region = gcloud_json(runner, "compute", "regions", "describe", cfg.region, "--project", cfg.project)
    scopes = (
        (catalogue.GLOBAL_GPU_QUOTA, "the project (all regions)", project.get("quotas", [])),
        (regional, cfg.region, region.get("quotas", [])),
    )
    return [
        f"GPU quota {metric} in {where}: {free:g} free, the stack needs {need} "
        f"({cfg.gpu_count} x {cfg.gpu_type}); request more at {QUOTA_DOC}?project={cfg.project} "
        f"(filter: {metric})"
        for metric, where, quotas in scopes
        if (free := free_quota(quotas, metric)) < need
    ]


def check(stack: str, pulumi: str = "pulumi", runner: Runner = run) -> tuple[list[str], list[str]]:
    """(problems, notes) for this stack; problems empty when pulumi up can go ahead."""
    problems = active_account(runner)
    if problems:
        return problems, []
    cfg = typed_config(stack_config(stack, pulumi, runner), stack)
    problems, notes = api_lines(cfg, runner)
    if not problems:
        problems = quota_lines(cfg, runner)
    return problems, notes


def main(argv: list[str]) -> int:
    args = stack_parser("python -m deploy.cloudcheck").parse_args(argv)
    try:
        problems, notes = check(args.stack, args.pulumi)
    except ConfigError as error:
        problems, notes = [str(error)], []
    for line in notes:
        print(f"cloudcheck: {line}", flush=True)
    for line in problems:
        print(f"cloudcheck: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
