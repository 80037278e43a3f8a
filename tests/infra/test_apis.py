"""The stack switches on the Google APIs its resources call, before any of them, and leaves them on."""

from __future__ import annotations

import pytest

FLEET = {"replicas": "2", "dockerImage": "myuser/whisper-gpu:1a2b3c4", "apiKey": "sk-fleet-key"}
SERVICE = "projects/service:Service"
# Resource type (prefix) -> the API that serves it
SERVED_BY = {
    "gcp:compute/": "compute.googleapis.com",
    "gcp:serviceaccount/": "iam.googleapis.com",
    "gcp:projects/iAMMember": "cloudresourcemanager.googleapis.com",
    "gcp:secretmanager/": "secretmanager.googleapis.com",
}


@pytest.fixture(params=["vm", "fleet"])
def stack(request, deploy):
    return deploy(FLEET if request.param == "fleet" else {})


def test_every_api_a_resource_calls_is_enabled_and_never_disabled_on_destroy(stack):
    services = {r.inputs["service"]: r for r in stack.of_type(SERVICE)}
    for resource in stack.resources:
        api = next((a for prefix, a in SERVED_BY.items() if resource.type.startswith(prefix)), None)
        if api:
            assert api in services, f"{resource.type} {resource.name} needs {api}, which the stack leaves off"
    for api, service in services.items():
        assert service.inputs["disableOnDestroy"] is False, api
        assert service.inputs["project"] == "demo-project", api
    assert {"oslogin.googleapis.com", "iap.googleapis.com"} <= set(services)  # the SSH route


def test_every_other_resource_waits_for_the_apis(stack):
    apis = {r.name for r in stack.of_type(SERVICE)}
    for resource in stack.resources:
        if resource.type.startswith("gcp:") and not resource.type.endswith(SERVICE):
            assert apis <= set(resource.depends_on), (
                f"{resource.type} {resource.name} may start before the APIs"
            )


def test_secret_manager_is_enabled_only_where_secrets_are_made(deploy):
    vm = deploy({})
    assert not vm.of_type("secretmanager/")
    assert "secretmanager.googleapis.com" not in {r.inputs["service"] for r in vm.of_type(SERVICE)}
