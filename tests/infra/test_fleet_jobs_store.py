"""The fleet's job store under Pulumi's mocks (infra/jobs_store.py), and how its settings reach the container
(infra/startup.sh): Cloud SQL on a private IP only, its password generated, kept in Secret Manager and read at
boot, a bucket whose lifecycle rule is the jobs' TTL, and the hosts' account allowed exactly these."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pulumi.runtime import rpc

from service.settings import from_env

from .conftest import FAKE_DB_IP, FAKE_DB_PASSWORD, infra_module

IMAGE = "myuser/whisper-gpu:1a2b3c4"
FLEET = {"minReplicas": "1", "maxReplicas": "4", "dockerImage": IMAGE, "apiKey": "sk-fleet-key-0123456789"}
HOSTS = "serviceAccount:whisper-dev@demo-project.iam.gserviceaccount.com"
T4_ZONES = ["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"]


@pytest.fixture(scope="module")
def fleet():
    from .conftest import run_program, stack_config

    return run_program(stack_config(FLEET))


def _secret_value(value):
    assert value[rpc._special_sig_key] == rpc._special_secret_sig, "not a Pulumi secret"
    return value["value"]


def test_the_database_has_a_private_ip_only_through_private_services_access(fleet):
    vpc = fleet.one("compute/network:Network")
    (reserved,) = [a for a in fleet.of_type("GlobalAddress") if a.inputs.get("purpose") == "VPC_PEERING"]
    assert reserved.inputs["addressType"] == "INTERNAL" and reserved.inputs["network"] == vpc.id
    peering = fleet.one("servicenetworking/connection:Connection").inputs
    assert peering["service"] == "servicenetworking.googleapis.com"
    assert peering["network"] == vpc.id and peering["reservedPeeringRanges"] == [reserved.name]
    instance = fleet.one("sql/databaseInstance:DatabaseInstance")
    ip = instance.inputs["settings"]["ipConfiguration"]
    assert ip == {"ipv4Enabled": False, "privateNetwork": vpc.id, "sslMode": "ENCRYPTED_ONLY"}
    # Created only once the peering exists: Cloud SQL refuses a private network without it.
    assert "whisper-dev-jobs-peering" in instance.depends_on
    assert instance.inputs["region"] == "us-central1"
    assert instance.inputs["settings"]["tier"] == "db-g1-small"
    assert instance.inputs["settings"]["edition"] == "ENTERPRISE"  # shared-core tiers exist only there
    assert instance.inputs["databaseVersion"].startswith("POSTGRES_")


def test_the_apis_are_switched_on_before_the_store_is_created(fleet):
    services = {s.inputs["service"]: s.name for s in fleet.of_type("projects/service:Service")}
    for api in ("sqladmin.googleapis.com", "servicenetworking.googleapis.com", "storage.googleapis.com"):
        assert api in services
    waits = fleet.one("sql/databaseInstance:DatabaseInstance").depends_on
    assert services["sqladmin.googleapis.com"] in waits


def test_the_password_is_generated_set_on_the_user_and_kept_in_secret_manager_only(fleet):
    instance = fleet.one("sql/databaseInstance:DatabaseInstance")
    password = fleet.one("randomPassword:RandomPassword").inputs
    assert password["length"] >= 24 and password["special"] is False  # URL-safe as it is
    user = fleet.one("sql/user:User").inputs
    database = fleet.one("sql/database:Database").inputs
    assert user["instance"] == database["instance"] == instance.name
    assert (user["name"], database["name"]) == ("whisper", "whisper_jobs")
    assert _secret_value(user["password"]) == FAKE_DB_PASSWORD
    (secret,) = [
        s
        for s in fleet.of_type("secretmanager/secret:Secret")
        if s.inputs["secretId"] == "whisper-dev-jobs-db-password"
    ]
    (version,) = [v for v in fleet.of_type("SecretVersion") if v.inputs["secret"] == secret.id]
    assert _secret_value(version.inputs["secretData"]) == FAKE_DB_PASSWORD
    (reader,) = [r for r in fleet.of_type("SecretIamMember") if r.inputs["secretId"] == secret.id]
    assert (reader.inputs["role"], reader.inputs["member"]) == ("roles/secretmanager.secretAccessor", HOSTS)
    template = fleet.one("InstanceTemplate").inputs
    assert FAKE_DB_PASSWORD not in str(template)
    metadata = template["metadata"]
    assert metadata["jobs-database-host"] == FAKE_DB_IP
    assert metadata["jobs-database-password-secret"] == "whisper-dev-jobs-db-password"
    assert (metadata["jobs-database-name"], metadata["jobs-database-user"]) == ("whisper_jobs", "whisper")


def test_the_bucket_forgets_after_the_ttl_and_only_the_hosts_may_use_its_objects(fleet, deploy):
    bucket = fleet.one("storage/bucket:Bucket")
    (rule,) = bucket.inputs["lifecycleRules"]
    assert rule == {"action": {"type": "Delete"}, "condition": {"age": 1}}  # whole days: JOBS_TTL = 1 day
    assert bucket.inputs["uniformBucketLevelAccess"] is True
    assert bucket.inputs["publicAccessPrevention"] == "enforced"
    assert bucket.inputs["location"] == "US-CENTRAL1"
    (grant,) = fleet.of_type("storage/bucketIAMMember:BucketIAMMember")
    assert grant.inputs["bucket"] == bucket.name
    assert (grant.inputs["role"], grant.inputs["member"]) == ("roles/storage.objectUser", HOSTS)
    project_roles = {m.inputs["role"] for m in fleet.of_type("projects/iAMMember:IAMMember")}
    assert not any("storage" in role or "cloudsql" in role for role in project_roles)  # no project-wide grant
    metadata = fleet.one("InstanceTemplate").inputs["metadata"]
    assert metadata["jobs-bucket"] == f"gs://{bucket.name}"
    assert metadata["jobs-ttl-seconds"] == str(int(from_env({}).jobs_ttl))  # the service's own default
    assert fleet.outputs["jobsBucket"] == f"gs://{bucket.name}"
    two_days = deploy({**FLEET, "jobsTtlDays": "2"})
    (rule,) = two_days.one("storage/bucket:Bucket").inputs["lifecycleRules"]
    assert rule["condition"] == {"age": 2}
    assert two_days.one("InstanceTemplate").inputs["metadata"]["jobs-ttl-seconds"] == "172800"


def test_a_single_vm_keeps_its_jobs_on_its_disk_and_refuses_the_fleet_keys(deploy):
    vm = deploy({"dockerImage": IMAGE})
    for kind in ("sql/", "storage/bucket", "servicenetworking", "random:"):
        assert not any(kind in r.type for r in vm.resources), kind
    assert "jobs-database-host" not in vm.one("compute/instance:Instance").inputs["metadata"]
    with pytest.raises(Exception, match=r"^config jobsDatabaseTier: is for a fleet") as failure:
        deploy({"jobsDatabaseTier": "db-f1-micro"})
    assert failure.value.declared_before_failure == []


@pytest.mark.parametrize(
    ("tier", "message"),
    [
        ("db-n1-standard-1", "is not a Cloud SQL for PostgreSQL Enterprise tier"),
        ("db-f1-micro", "db-f1-micro allows 22 connections"),
    ],
)
def test_a_tier_that_cannot_carry_the_fleet_is_refused_before_anything_is_made(deploy, tier, message):
    with pytest.raises(Exception, match=f"^config jobsDatabaseTier: .*{re.escape(message)}") as failure:
        deploy({**FLEET, "jobsDatabaseTier": tier})
    assert failure.value.declared_before_failure == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    high=st.integers(1, 12),
    zones=st.integers(1, 4),
    tier=st.sampled_from(["db-f1-micro", "db-g1-small", "db-custom-1-3840"]),
)
def test_the_tier_is_refused_exactly_when_a_rollout_would_exceed_its_connections(high, zones, tier):
    """(maxReplicas + one surge VM per zone) x one worker per GPU x JOBS_DATABASE_POOL against the tier's
    max_connections less the 3 reserved ones."""
    config_fleet = infra_module("config_fleet")
    pool = from_env({}).jobs_database_pool
    allowed = {"db-f1-micro": 25, "db-g1-small": 50}.get(tier, 100) - 3
    values = {"minReplicas": "1", "maxReplicas": str(high), "fleetZones": T4_ZONES[:zones],
              "jobsDatabaseTier": tier}  # fmt: skip
    if (high + zones) * pool > allowed:
        with pytest.raises(Exception, match="^config jobsDatabaseTier: "):
            config_fleet.fleet_config(values, "us-central1", "nvidia-tesla-t4", 1)
    else:
        assert config_fleet.fleet_config(values, "us-central1", "nvidia-tesla-t4", 1).jobs_db_tier == tier


JOBS_METADATA = {
    "docker_image": IMAGE,
    "jobs_database_host": FAKE_DB_IP,
    "jobs_database_name": "whisper_jobs",
    "jobs_database_user": "whisper",
    "jobs_database_password_secret": "whisper-dev-jobs-db-password",
    "jobs_bucket": "gs://whisper-dev-jobs-bucket-1a2b3c4",
    "jobs_ttl_seconds": "604800",
}


def test_the_vm_builds_the_database_url_from_secret_manager_and_the_service_accepts_it(host):
    host.set_metadata(**JOBS_METADATA)
    (host.fake / "secrets").mkdir()
    (host.fake / "secrets" / "whisper-dev-jobs-db-password").write_text(FAKE_DB_PASSWORD)
    result = host.boot()
    env = dict(line.split("=", 1) for line in (host.fake / "env-at-run").read_text().splitlines())
    url = f"postgresql://whisper:{FAKE_DB_PASSWORD}@{FAKE_DB_IP}:5432/whisper_jobs?sslmode=require"
    assert env["JOBS_DATABASE_URL"] == url
    assert env["JOBS_BUCKET"] == "gs://whisper-dev-jobs-bucket-1a2b3c4" and env["JOBS_TTL"] == "604800"
    secret_call = next(c for c in host.calls("curl") if "/secrets/" in c)
    assert "/secrets/whisper-dev-jobs-db-password/versions/latest:access" in secret_call
    # Never on a command line or in the log, and nothing left on the (tmpfs) run directory.
    assert FAKE_DB_PASSWORD not in "\n".join(host.calls()) + result.stdout + result.stderr
    assert list((host.root / "run").iterdir()) == []
    # What the VM writes is what the service reads: valid, and hidden in its repr.
    settings = from_env({k: v for k, v in env.items() if k.startswith("JOBS_") and k != "JOBS_TTL"})
    assert settings.jobs_database_url.get_secret_value() == url
    assert FAKE_DB_PASSWORD not in repr(settings)


def test_a_password_that_cannot_be_read_stops_the_boot_before_the_service_starts(host):
    host.set_metadata(**JOBS_METADATA)
    curl = host.root / "bin" / "curl"  # Secret Manager answers 403 (curl -f: exit 22); the rest as before
    curl.rename(host.root / "bin" / "curl-fake")
    curl.write_text('#!/usr/bin/env bash\ncase "$*" in *"/secrets/"*) exit 22 ;; esac\nexec curl-fake "$@"\n')
    curl.chmod(0o755)
    host.boot(ok=False)
    assert host.calls("docker run") == []
