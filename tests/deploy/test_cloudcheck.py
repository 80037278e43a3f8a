"""deploy/cloudcheck.py: before the image build, an active account, Compute Engine's API and GPU quota for
what the stack will create. The real module runs as `make deploy` runs it, against a stand-in gcloud (Google's
answers from files, in the shapes `--format=json` prints) and a stand-in pulumi that prints a stack config."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.deploy import fake_gcloud
from tests.deploy.conftest import ROOT

ALL_APIS = [
    "compute.googleapis.com",
    "iam.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "oslogin.googleapis.com",
    "iap.googleapis.com",
    "secretmanager.googleapis.com",
]


class Cloud:
    def __init__(self, root):
        self.state, self.bin = root / "gcloud", root / "bin"
        self.env = fake_gcloud.install(self.bin, self.state, "alice_example_com")
        self.account("alice@example.com")
        self.apis(*ALL_APIS)
        self.quota(global_limit=1, regional={"NVIDIA_T4_GPUS": 1})
        self.stack({})

    def write(self, name: str, value) -> None:
        (self.state / name).write_text(json.dumps(value))

    def account(self, *accounts: str) -> None:
        self.write("accounts.json", [{"account": a, "status": "ACTIVE"} for a in accounts])

    def apis(self, *names: str) -> None:
        self.write("services.json", [{"config": {"name": n}, "state": "ENABLED"} for n in names])

    def quota(self, global_limit: float, regional: dict[str, float], used: float = 0) -> None:
        self.write("project-info.json", {"quotas": [{"metric": "GPUS_ALL_REGIONS", "limit": global_limit,
                                                     "usage": used}]})  # fmt: skip
        self.write(
            "region.json", {"quotas": [{"metric": m, "limit": v, "usage": used} for m, v in regional.items()]}
        )

    def stack(self, keys: dict[str, str], secrets: tuple[str, ...] = ()) -> None:
        config = {"gcp:project": {"value": "demo-project", "secret": False}}
        config.update({f"whisper-gpu:{k}": {"value": v, "secret": False} for k, v in keys.items()})
        config.update({f"whisper-gpu:{k}": {"secret": True} for k in secrets})
        pulumi = self.bin / "pulumi"
        pulumi.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(config)}\nEOF\n")
        pulumi.chmod(0o755)

    def check(self) -> subprocess.CompletedProcess:
        env = os.environ | self.env | {"PATH": f"{self.bin}:{os.environ['PATH']}"}
        command = [
            sys.executable,
            "-m",
            "deploy.cloudcheck",
            "--stack",
            "dev",
            "--pulumi",
            str(self.bin / "pulumi"),
        ]
        return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.fixture
def cloud(tmp_path) -> Cloud:
    return Cloud(tmp_path)


def test_a_ready_project_passes_silently(cloud):
    done = cloud.check()
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_no_active_account_stops_at_once_with_the_login_command(cloud):
    cloud.account()
    done = cloud.check()
    assert done.returncode == 1
    assert "no active gcloud account: run gcloud auth login" in done.stderr
    asked = [c[:2] for c in fake_gcloud.calls(cloud.state)]
    assert asked == [["auth", "list"]]  # nothing else is asked without an account


def test_a_new_projects_zero_global_gpu_quota_is_named_with_what_the_stack_needs(cloud):
    cloud.quota(global_limit=0, regional={"NVIDIA_T4_GPUS": 1})
    done = cloud.check()
    assert done.returncode == 1
    assert "GPU quota GPUS_ALL_REGIONS in the project (all regions): 0 free, the stack needs 1" in done.stderr
    assert "NVIDIA_T4_GPUS" not in done.stderr  # the regional one suffices


@pytest.mark.parametrize(
    ("keys", "metric", "need"),
    [
        ({}, "NVIDIA_T4_GPUS", 1),
        ({"spot": "true"}, "PREEMPTIBLE_NVIDIA_T4_GPUS", 1),
        ({"gpuCount": "2"}, "NVIDIA_T4_GPUS", 2),
        ({"machineType": "g2-standard-8", "gpuType": "nvidia-l4"}, "NVIDIA_L4_GPUS", 1),
        # a fleet surges one VM per zone above maxReplicas (us-central1 has four T4 zones)
        ({"maxReplicas": "3", "dockerImage": "u/w:1"}, "NVIDIA_T4_GPUS", 3 + 4),
    ],
)
def test_the_regional_quota_checked_is_the_stacks_gpu_and_count(cloud, keys, metric, need):
    cloud.stack(keys, secrets=("apiKey",))
    cloud.quota(global_limit=100, regional={metric: need - 1})
    done = cloud.check()
    assert done.returncode == 1
    assert f"GPU quota {metric} in us-central1: {need - 1} free, the stack needs {need}" in done.stderr
    cloud.quota(global_limit=100, regional={metric: need})
    assert cloud.check().returncode == 0


def test_usage_counts_against_the_limit(cloud):
    cloud.quota(global_limit=4, regional={"NVIDIA_T4_GPUS": 4}, used=4)
    done = cloud.check()
    assert done.returncode == 1
    assert "0 free" in done.stderr


def test_compute_api_off_is_named_with_the_enable_command_and_the_rest_left_to_the_stack(cloud):
    cloud.apis("iam.googleapis.com")
    done = cloud.check()
    assert done.returncode == 1
    assert "gcloud services enable compute.googleapis.com --project demo-project" in done.stderr
    assert "pulumi up will enable: compute.googleapis.com, cloudresourcemanager.googleapis.com" in done.stdout


def test_a_gcloud_error_is_one_line_not_a_traceback(cloud):
    (cloud.state / "region.json").unlink()
    done = cloud.check()
    assert done.returncode == 1
    assert "PERMISSION_DENIED" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_stack_value_is_infra_configs_own_line(cloud):
    cloud.stack({"gpuType": "nvidia-tesla-k80"})
    done = cloud.check()
    assert done.returncode == 1
    assert "gpuType" in done.stderr and "Traceback" not in done.stderr


def test_a_cpu_only_host_needs_no_gpu_quota(cloud):
    cloud.stack({"gpuType": "none"})
    cloud.quota(global_limit=0, regional={})  # a new project's zero GPU quota
    done = cloud.check()
    assert done.returncode == 0, done.stderr
    asked = [c[:3] for c in fake_gcloud.calls(cloud.state)]
    assert ["compute", "regions", "describe"] not in asked
