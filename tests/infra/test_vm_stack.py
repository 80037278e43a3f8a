"""The single-VM stack, run under Pulumi's mocks for the stacks users actually choose."""

from __future__ import annotations

import ipaddress
import re

import pytest

from deploy import paths
from service.settings import Settings

FAKE_INSTANCE_ID = "4242424242424242424"  # what the mocked GCP assigns (tests/infra/conftest.py)
WORLD = ipaddress.ip_network("0.0.0.0/0")
IAP_RANGE = "35.235.240.0/20"
VM_OUTPUTS = {
    "mode",
    "project",
    "ip",
    "url",
    "sshCommand",
    "instanceName",
    "instanceId",
    "zone",
    "domain",
    "allowUnauthenticated",
    "pricePerHour",
    "priceBasis",
    "idleStopMinutes",
    "gpus",
}

T4_DEFAULT: dict[str, str] = {}
L4_G2 = {"machineType": "g2-standard-8"}
SPOT_T4 = {"spot": "true"}
A100_A2 = {"machineType": "a2-highgpu-2g"}
STACKS = {"t4-default": T4_DEFAULT, "l4-g2": L4_G2, "spot": SPOT_T4, "a100-a2": A100_A2}


def open_ports(deployment) -> dict[str, set[str]]:
    """Source range -> TCP ports it may reach, over all firewall rules."""
    reach: dict[str, set[str]] = {}
    for rule in deployment.of_type("compute/firewall:Firewall"):
        assert rule.inputs["direction"] == "INGRESS", rule.name
        for source in rule.inputs["sourceRanges"]:
            for allow in rule.inputs["allows"]:
                reach.setdefault(source, set()).update(allow["ports"])
    return reach


def world_ports(deployment) -> set[str]:
    return {
        port
        for source, ports in open_ports(deployment).items()
        if ipaddress.ip_network(source) == WORLD
        for port in ports
    }


@pytest.fixture(params=sorted(STACKS))
def any_stack(request, deploy):
    return deploy(STACKS[request.param])


def test_port_80_is_the_only_port_open_to_the_world(any_stack):
    assert world_ports(any_stack) == {"80"}


def test_ssh_is_open_only_to_google_iap_by_default(any_stack):
    ssh_sources = {src for src, ports in open_ports(any_stack).items() if "22" in ports}
    assert ssh_sources == {IAP_RANGE}


def test_monitoring_ports_are_never_opened(any_stack, deploy):
    # Grafana and Prometheus bind the VM's loopback: `make dashboards` tunnels to them over IAP.
    assert not any({"3000", "9090"} & ports for ports in open_ports(any_stack).values())
    with pytest.raises(Exception, match="^config monitoringSourceRanges: .*make dashboards"):
        deploy({"monitoringSourceRanges": '["203.0.113.7/32"]'})


def test_a_domain_opens_443_beside_80_and_makes_the_url_https(deploy):
    deployment = deploy({"domain": "whisper.example.com"})
    assert world_ports(deployment) == {"80", "443"}
    assert deployment.outputs["url"] == "https://whisper.example.com"
    assert deployment.outputs["domain"] == "whisper.example.com"
    assert deployment.outputs["allowUnauthenticated"] is False


def test_every_firewall_rule_targets_the_vms_tag(any_stack):
    vm_tags = set(any_stack.one("compute/instance:Instance").inputs["tags"])
    for rule in any_stack.of_type("compute/firewall:Firewall"):
        assert rule.inputs["targetTags"], f"{rule.name} applies to every VM in the network"
        assert set(rule.inputs["targetTags"]) <= vm_tags, rule.name


def test_the_vm_lives_in_a_dedicated_network_not_default(any_stack):
    vpc = any_stack.one("compute/network:Network")
    subnet = any_stack.one("compute/subnetwork:Subnetwork")
    nic = any_stack.one("compute/instance:Instance").inputs["networkInterfaces"][0]
    assert vpc.inputs["autoCreateSubnetworks"] is False
    assert subnet.inputs["network"] == vpc.id
    assert nic["subnetwork"] == subnet.id
    assert all(r.inputs["network"] == vpc.id for r in any_stack.of_type("Firewall"))


def test_gpu_host_terminates_on_maintenance_and_is_shielded_with_os_login(any_stack):
    vm = any_stack.one("compute/instance:Instance").inputs
    assert vm["scheduling"]["onHostMaintenance"] == "TERMINATE"
    assert vm["allowStoppingForUpdate"] is True
    assert vm["shieldedInstanceConfig"]["enableVtpm"] is True
    assert vm["shieldedInstanceConfig"]["enableIntegrityMonitoring"] is True
    assert vm["metadata"]["enable-oslogin"] == "TRUE"
    assert vm["metadata"]["enable-guest-attributes"] == "TRUE"  # the startup script reports whisper/state
    assert vm["bootDisk"]["initializeParams"]["type"] == "pd-balanced"
    assert vm["metadata"]["startup-script"].startswith("#!/usr/bin/env bash")
    # the container's port: the service's own default, filled in by the stack (infra/host.py), not a copy
    script = vm["metadata"]["startup-script"]
    assert not re.findall(r"@[A-Z_]+@", script)  # every placeholder filled
    assert f"\nSERVICE_PORT={Settings().port} " in script
    # the host's paths: deploy/paths.py's, which Ansible and the monitoring stack read too
    assert f'\nREADY_FILE="${{READY_FILE:-{paths.READY_FILE}}}"' in script
    assert f'\nTEXTFILE_DIR="${{TEXTFILE_DIR:-{paths.TEXTFILE_DIR}}}"' in script
    assert "metadataStartupScript" not in vm


@pytest.mark.parametrize(
    ("config", "machine", "accelerators"),
    [
        (T4_DEFAULT, "n1-standard-8", [{"type": "nvidia-tesla-t4", "count": 1}]),
        ({"gpuCount": "2"}, "n1-standard-8", [{"type": "nvidia-tesla-t4", "count": 2}]),
        (L4_G2, "g2-standard-8", None),
        (A100_A2, "a2-highgpu-2g", None),
    ],
    ids=["t4", "2xt4", "l4-bundled", "a100-bundled"],
)
def test_accelerators_are_declared_only_where_attached(deploy, config, machine, accelerators):
    vm = deploy(config).one("compute/instance:Instance").inputs
    assert vm["machineType"] == machine
    assert vm.get("guestAccelerators") == accelerators


def test_on_demand_vm_restarts_automatically(deploy):
    scheduling = deploy(T4_DEFAULT).one("compute/instance:Instance").inputs["scheduling"]
    assert scheduling["automaticRestart"] is True
    assert scheduling["preemptible"] is False
    assert scheduling["provisioningModel"] == "STANDARD"
    assert "instanceTerminationAction" not in scheduling


def test_spot_vm_has_every_spot_field(deploy):
    scheduling = deploy(SPOT_T4).one("compute/instance:Instance").inputs["scheduling"]
    assert scheduling == {
        "provisioningModel": "SPOT",
        "preemptible": True,
        "automaticRestart": False,
        "onHostMaintenance": "TERMINATE",
        "instanceTerminationAction": "STOP",
    }


def test_vm_runs_as_the_dedicated_account_with_log_metric_and_storage_read_scopes_only(any_stack):
    account = any_stack.one("serviceaccount/account:Account")
    vm = any_stack.one("compute/instance:Instance").inputs
    email = f"{account.inputs['accountId']}@demo-project.iam.gserviceaccount.com"
    assert vm["serviceAccount"]["email"] == email
    assert sorted(vm["serviceAccount"]["scopes"]) == [
        "https://www.googleapis.com/auth/devstorage.read_only",  # the driver installer's gsutil cp
        "https://www.googleapis.com/auth/logging.write",
        "https://www.googleapis.com/auth/monitoring.write",
    ]
    roles = {m.inputs["role"]: m.inputs["member"] for m in any_stack.of_type("IAMMember")}
    assert roles == {
        "roles/logging.logWriter": f"serviceAccount:{email}",
        "roles/monitoring.metricWriter": f"serviceAccount:{email}",
    }


def test_static_address_is_attached_and_exported(any_stack, fake_ips):
    address = any_stack.one("compute/address:Address")
    nic = any_stack.one("compute/instance:Instance").inputs["networkInterfaces"][0]
    assert address.inputs["region"] == "us-central1"
    assert nic["accessConfigs"] == [{"natIp": fake_ips["vm"]}]
    assert any_stack.outputs["ip"] == fake_ips["vm"]
    assert any_stack.outputs["url"] == "http://" + fake_ips["vm"]


def test_all_outputs_exist_and_name_the_vm(any_stack):
    outputs = any_stack.outputs
    instance = any_stack.one("compute/instance:Instance")
    assert set(outputs) == VM_OUTPUTS
    assert outputs["mode"] == "vm"
    assert outputs["zone"] == "us-central1-a"
    assert outputs["instanceName"] == instance.name
    # A replaced VM keeps its name and static address but gets a new id: sshroute drops its stale host key.
    assert outputs["instanceId"] == FAKE_INSTANCE_ID
    assert outputs["sshCommand"] == (
        f"gcloud compute ssh {instance.name} --zone us-central1-a --project demo-project --tunnel-through-iap"
    )


def test_zone_region_and_labels_flow_to_the_resources(deploy):
    deployment = deploy(
        {"labels": '{"team": "speech"}', "bootDiskGb": "200"},
        gcp={"project": "other-project", "zone": "europe-west4-b"},
    )
    vm = deployment.one("compute/instance:Instance").inputs
    assert vm["zone"] == "europe-west4-b"
    assert vm["labels"] == {"app": "whisper", "team": "speech"}
    assert vm["bootDisk"]["initializeParams"]["size"] == 200
    assert deployment.one("compute/subnetwork:Subnetwork").inputs["region"] == "europe-west4"
    assert deployment.one("compute/address:Address").inputs["region"] == "europe-west4"
    assert {m.inputs["project"] for m in deployment.of_type("IAMMember")} == {"other-project"}


def test_explicit_http_and_ssh_ranges_replace_the_defaults(deploy):
    opened = open_ports(deploy({"httpSourceRanges": "198.51.100.0/24", "sshSourceRanges": "192.0.2.1/32"}))
    assert opened == {"198.51.100.0/24": {"80"}, "192.0.2.1/32": {"22"}}


H100_A3_SPOT = {"machineType": "a3-highgpu-1g", "spot": "true"}


@pytest.mark.parametrize(
    ("config", "nic_type"),
    [(T4_DEFAULT, None), (L4_G2, None), (A100_A2, None), (H100_A3_SPOT, "GVNIC")],
    ids=["t4", "l4", "a100", "h100"],
)
def test_a3_vms_get_a_gvnic_and_the_others_keep_the_default_nic(deploy, config, nic_type):
    nic = deploy(config).one("compute/instance:Instance").inputs["networkInterfaces"][0]
    assert nic.get("nicType") == nic_type


def test_single_vm_declares_no_fleet_or_secret_resources(any_stack):
    assert not any_stack.of_type("InstanceTemplate")
    assert not any_stack.of_type("RegionInstanceGroupManager")
    assert not any_stack.of_type("GlobalForwardingRule")
    assert not any_stack.of_type("secretmanager/secret:Secret")


@pytest.mark.parametrize(
    ("config", "gcp", "key", "fix"),
    [
        ({"gpuType": "nvidia-l4"}, {}, "machineType", "e.g. machineType: g2-standard-8"),
        (
            {"machineType": "g2-standard-8", "gpuType": "nvidia-tesla-t4"},
            {},
            "machineType",
            "e.g. machineType: n1-standard-8",
        ),
        ({"gpuType": "nvidia-h200"}, {}, "gpuType", "use one of nvidia-tesla-t4,"),
        ({"machineType": "a2-highgpu-1g", "gpuCount": "2"}, {}, "gpuCount", "a2-highgpu-2g"),
        ({"machineType": "a2-bigger-1g"}, {}, "machineType", "e.g. machineType: n1-standard-8"),
        ({"gpuCount": "3"}, {}, "gpuCount", "use one of 1, 2, 4"),
        ({"bootDiskGb": "20"}, {}, "bootDiskGb", "use at least 50"),
        ({}, {"zone": "us-central1"}, "gcp:zone", "e.g. gcp:zone: us-central1-a"),
        ({}, {"zone": "us-central1-e"}, "gcp:zone", "use one of us-central1-a, us-central1-b"),
        ({}, {"project": ""}, "gcp:project", "pulumi config set gcp:project"),
        ({"sshSourceRanges": "everywhere"}, {}, "sshSourceRanges", "203.0.113.7/32"),
        ({"spot": "sometimes"}, {}, "spot", "e.g. spot: true"),
        ({"labels": '{"Team": "x"}'}, {}, "labels", "e.g. labels: {team: speech}"),
        ({"gputype": "nvidia-l4"}, {}, "gputype", "did you mean gpuType?"),
        ({"machineType": "a3-highgpu-1g"}, {}, "spot", "set spot: true (or machineType: a3-highgpu-8g)"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_invalid_stack_fails_with_one_clear_error(deploy, config, gcp, key, fix):
    with pytest.raises(Exception, match=re.escape(fix)) as failure:
        deploy(config, gcp)
    assert type(failure.value).__name__ == "ConfigError"
    message = str(failure.value)
    assert message.startswith(f"config {key}: "), message
    assert "\n" not in message
    assert failure.value.declared_before_failure == [], "validation must precede resources"


def test_api_key_appears_in_no_resource_of_a_single_vm(deploy):
    deployment = deploy({"apiKey": "sk-never-in-metadata"})
    assert all("sk-never-in-metadata" not in repr(r.inputs) for r in deployment.resources)
