"""The fleet's secrets under Pulumi's mocks: the API key, the Docker Hub token and the job database's
password each in its own Secret Manager secret, readable by the hosts' account only; templates name them,
never hold them."""

from __future__ import annotations

import re

import pytest
from pulumi.runtime import rpc

from .test_fleet_stack import AUTOSCALED, FIXED, IMAGE, JOBS_ATTRIBUTES


@pytest.fixture
def fleet(deploy):
    return deploy({**AUTOSCALED, "apiKey": "key-that-must-stay-secret"})


def test_template_starts_the_image_and_keeps_the_api_key_out_of_metadata(fleet):
    metadata = fleet.one("InstanceTemplate").inputs["metadata"]
    secret = _secret(fleet, "whisper-dev-api-key")
    assert metadata["docker-image"] == IMAGE
    assert set(metadata) == {
        "startup-script",
        "enable-oslogin",
        "enable-guest-attributes",
        "docker-image",
        "api-key-secret",
        *JOBS_ATTRIBUTES,  # where the job store is (test_fleet_jobs_store.py)
    }
    assert metadata["api-key-secret"] == secret.inputs["secretId"]
    assert all("key-that-must-stay-secret" not in str(v) for v in metadata.values())


def _secret(deployment, secret_id):
    secrets = deployment.of_type("secretmanager/secret:Secret")
    (secret,) = [s for s in secrets if s.inputs["secretId"] == secret_id]
    return secret


def test_only_the_hosts_account_may_read_the_one_secret(fleet):
    secret = _secret(fleet, "whisper-dev-api-key")
    (version,) = [v for v in fleet.of_type("SecretVersion") if v.inputs["secret"] == secret.id]
    (grant,) = [g for g in fleet.of_type("SecretIamMember") if g.inputs["secretId"] == secret.id]
    email = fleet.one("InstanceTemplate").inputs["serviceAccount"]["email"]
    assert version.inputs["secret"] == secret.id
    # Reaches the provider marked secret: Pulumi encrypts it in state and masks it in output.
    assert version.inputs["secretData"][rpc._special_sig_key] == rpc._special_secret_sig
    assert version.inputs["secretData"]["value"] == "key-that-must-stay-secret"
    assert grant.inputs["secretId"] == secret.id
    assert grant.inputs["role"] == "roles/secretmanager.secretAccessor"
    assert grant.inputs["member"] == f"serviceAccount:{email}"
    project_roles = {m.inputs["role"] for m in fleet.of_type("projects/iAMMember:IAMMember")}
    assert project_roles == {"roles/logging.logWriter", "roles/monitoring.metricWriter"}


def test_without_api_key_there_is_no_secret_and_minimal_scopes(deploy):
    unkeyed = {k: v for k, v in FIXED.items() if k != "apiKey"}
    with pytest.raises(
        Exception, match=r"^config apiKey: not set, so the fleet would serve anyone"
    ) as failure:
        deploy(unkeyed)
    assert failure.value.declared_before_failure == []
    fixed = deploy({**unkeyed, "allowUnauthenticated": "true"})
    template = fixed.one("InstanceTemplate").inputs
    # The job database's password is the only secret left (test_fleet_jobs_store.py).
    secrets = {s.inputs["secretId"] for s in fixed.of_type("secretmanager/secret:Secret")}
    assert secrets == {"whisper-dev-jobs-db-password"}
    assert "api-key-secret" not in template["metadata"]
    assert sorted(template["serviceAccount"]["scopes"]) == [
        "https://www.googleapis.com/auth/cloud-platform",  # Secret Manager and the job bucket; IAM limits
        "https://www.googleapis.com/auth/devstorage.read_only",  # the driver installer's gsutil cp
        "https://www.googleapis.com/auth/logging.write",
        "https://www.googleapis.com/auth/monitoring.write",
    ]


def test_a_docker_hub_token_goes_to_its_own_secret_and_the_template_names_only_it(deploy):
    # Docker Hub limits anonymous pulls per IP (https://docs.docker.com/docker-hub/usage/), and fleet VMs
    # share Cloud NAT's addresses: with a token the startup script logs in before it pulls.
    token = "dckr_pat_must-stay-secret"
    fleet = deploy({**FIXED, "dockerhubUsername": "alice", "dockerhubToken": token})
    secrets = {s.inputs["secretId"]: s for s in fleet.of_type("secretmanager/secret:Secret")}
    jobs = "whisper-dev-jobs-db-password"  # the job database's (test_fleet_jobs_store.py)
    assert set(secrets) == {"whisper-dev-api-key", "whisper-dev-dockerhub-token", jobs}
    versions = {v.inputs["secret"]: v for v in fleet.of_type("secretmanager/secretVersion:SecretVersion")}
    data = versions[secrets["whisper-dev-dockerhub-token"].id].inputs["secretData"]
    assert data[rpc._special_sig_key] == rpc._special_secret_sig and data["value"] == token  # a Pulumi secret
    readers = fleet.of_type("secretmanager/secretIamMember:SecretIamMember")
    assert {r.inputs["secretId"] for r in readers} == {s.id for s in secrets.values()}
    template = fleet.one("InstanceTemplate").inputs
    assert template["metadata"]["dockerhub-username"] == "alice"
    assert template["metadata"]["dockerhub-token-secret"] == "whisper-dev-dockerhub-token"
    assert token not in str(template)
    assert "https://www.googleapis.com/auth/cloud-platform" in template["serviceAccount"]["scopes"]
    anonymous = deploy(FIXED).one("InstanceTemplate").inputs["metadata"]
    assert "dockerhub-token-secret" not in anonymous and "dockerhub-username" not in anonymous


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"dockerhubToken": "dckr_pat_x"}, "config dockerhubUsername: not set, but dockerhubToken is"),
        ({"dockerhubUsername": "alice"}, "config dockerhubToken: not set, but dockerhubUsername is"),
    ],
    ids=["token-without-user", "user-without-token"],
)
def test_docker_hub_user_and_token_go_together(deploy, keys, message):
    with pytest.raises(Exception, match=f"^{re.escape(message)}") as failure:
        deploy({**FIXED, **keys})
    assert failure.value.declared_before_failure == []
