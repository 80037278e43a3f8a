"""Fleet mode under Pulumi's mocks: a regional GPU group behind Google's global HTTP load balancer."""

from __future__ import annotations

import ipaddress
import re

import pytest
from pulumi.runtime import rpc

from .conftest import infra_module

IMAGE = "myuser/whisper-gpu:1a2b3c4"
FIXED = {"replicas": "2", "dockerImage": IMAGE, "apiKey": "sk-fleet-key"}
AUTOSCALED = {"minReplicas": "1", "maxReplicas": "4", "dockerImage": IMAGE}
HEALTH_CHECK_RANGES = {"130.211.0.0/22", "35.191.0.0/16"}
US_CENTRAL1_T4_ZONES = ["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"]


@pytest.fixture
def fleet(deploy):
    return deploy({**AUTOSCALED, "apiKey": "key-that-must-stay-secret"})


def test_the_load_balancer_chain_is_wired_to_the_group(fleet, fake_ips):
    address = fleet.one("GlobalAddress")
    rule = fleet.one("GlobalForwardingRule")
    proxy = fleet.one("TargetHttpProxy")
    url_map = fleet.one("URLMap")
    backend = fleet.one("BackendService")
    group = fleet.one("RegionInstanceGroupManager")
    assert rule.inputs["ipAddress"] == address.id
    assert rule.inputs["portRange"] == "80"
    assert rule.inputs["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    assert rule.inputs["target"] == proxy.id
    assert proxy.inputs["urlMap"] == url_map.id
    assert url_map.inputs["defaultService"] == backend.id
    assert backend.inputs["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    assert backend.inputs["portName"] == "http"
    assert backend.inputs["backends"][0]["group"].endswith(f"/{group.name}/instanceGroup")
    assert {"name": "http", "port": 80} in group.inputs["namedPorts"]
    assert fleet.outputs["ip"] == fake_ips["lb"]
    assert fleet.outputs["url"] == "http://" + fake_ips["lb"]


def test_health_checks_probe_readyz_and_feed_both_balancer_and_autohealing(fleet):
    checks = {c.id: c.inputs for c in fleet.of_type("compute/healthCheck:HealthCheck")}
    assert checks and all(
        c["httpHealthCheck"] == {"port": 80, "requestPath": "/readyz"} for c in checks.values()
    )
    backend = fleet.one("BackendService").inputs
    healing = fleet.one("RegionInstanceGroupManager").inputs["autoHealingPolicies"]
    assert backend["healthChecks"] in checks
    assert healing["healthCheck"] in checks
    # Long enough for driver install, image pull and model load before a VM is judged.
    assert healing["initialDelaySec"] >= 600


def test_backend_timeout_covers_long_files_and_an_hour_long_websocket_session(fleet):
    # Google's backend service timeout also ends a WebSocket (/v1/realtime) that has been open this long.
    assert fleet.one("BackendService").inputs["timeoutSec"] == 3600


def test_the_backend_timeout_is_a_stack_setting(deploy):
    fleet = deploy({"replicas": "2", "dockerImage": IMAGE, "apiKey": "k", "requestTimeoutSec": "7200"})
    assert fleet.one("BackendService").inputs["timeoutSec"] == 7200


def test_connection_draining_matches_the_containers_graceful_timeout(fleet):
    """The load balancer drains a leaving VM as long as gunicorn drains on SIGTERM: the GRACEFUL_TIMEOUT
    startup.sh writes into the container's env file, its STOP_TIMEOUT less the service's stop margin."""
    from service.settings import STOP_MARGIN_SECONDS

    script = fleet.one("InstanceTemplate").inputs["metadata"]["startup-script"]
    stop_timeout = int(re.search(r"^STOP_TIMEOUT=(\d+)", script, re.M).group(1))
    graceful = int(re.search(r"^GRACEFUL_TIMEOUT=(\d+)", script, re.M).group(1))
    assert (
        graceful == stop_timeout - STOP_MARGIN_SECONDS
        and 'echo "GRACEFUL_TIMEOUT=${GRACEFUL_TIMEOUT}"' in script
    )
    assert fleet.one("BackendService").inputs["connectionDrainingTimeoutSec"] == graceful


def test_only_google_front_ends_and_checkers_reach_port_80(fleet):
    sources_by_port: dict[str, set[str]] = {}
    for rule in fleet.of_type("compute/firewall:Firewall"):
        assert rule.inputs["targetTags"] == ["whisper-gpu"], rule.name
        for allow in rule.inputs["allows"]:
            for port in allow["ports"]:
                sources_by_port.setdefault(port, set()).update(rule.inputs["sourceRanges"])
    assert sources_by_port["80"] == HEALTH_CHECK_RANGES
    world = ipaddress.ip_network("0.0.0.0/0")
    assert not any(ipaddress.ip_network(src) == world for srcs in sources_by_port.values() for src in srcs)


def test_fleet_vms_have_no_public_address_and_reach_out_through_nat(fleet):
    nic = fleet.one("InstanceTemplate").inputs["networkInterfaces"][0]
    assert "accessConfigs" not in nic or nic["accessConfigs"] == []
    assert nic["subnetwork"] == fleet.one("compute/subnetwork:Subnetwork").id
    nat = fleet.one("RouterNat").inputs
    assert nat["sourceSubnetworkIpRangesToNat"] == "ALL_SUBNETWORKS_ALL_IP_RANGES"
    assert not fleet.of_type("compute/address:Address")  # the only public IP is the balancer's


def test_template_matches_the_single_vm_gpu_invariants(fleet, deploy):
    vm = deploy({"dockerImage": IMAGE}).one("compute/instance:Instance").inputs
    template = fleet.one("InstanceTemplate").inputs
    assert template["machineType"] == vm["machineType"]
    assert template["guestAccelerators"] == vm["guestAccelerators"]
    assert template["scheduling"] == vm["scheduling"]
    assert template["shieldedInstanceConfig"] == vm["shieldedInstanceConfig"]
    assert template["tags"] == vm["tags"]
    assert template["serviceAccount"]["email"] == vm["serviceAccount"]["email"]
    assert template["metadata"]["startup-script"] == vm["metadata"]["startup-script"]
    assert template["metadata"]["enable-oslogin"] == "TRUE"
    (disk,) = template["disks"]
    assert disk["sourceImage"] == vm["bootDisk"]["initializeParams"]["image"]
    assert disk["diskType"] == "pd-balanced"


def test_a3_templates_get_a_gvnic(deploy):
    h100 = {**FIXED, "machineType": "a3-highgpu-2g", "spot": "true", "fleetZones": "us-central1-a"}
    (nic,) = deploy(h100).one("InstanceTemplate").inputs["networkInterfaces"]
    assert nic["nicType"] == "GVNIC"
    (default_nic,) = deploy(FIXED).one("InstanceTemplate").inputs["networkInterfaces"]
    assert "nicType" not in default_nic


@pytest.mark.parametrize("machine", ["g2-standard-8", "a2-highgpu-1g"])
def test_bundled_gpu_templates_declare_no_accelerators(deploy, machine):
    template = deploy({**FIXED, "machineType": machine}).one("InstanceTemplate").inputs
    assert template["machineType"] == machine
    assert "guestAccelerators" not in template


def test_template_starts_the_image_and_keeps_the_api_key_out_of_metadata(fleet):
    metadata = fleet.one("InstanceTemplate").inputs["metadata"]
    secret = fleet.one("secretmanager/secret:Secret")
    assert metadata["docker-image"] == IMAGE
    assert set(metadata) == {
        "startup-script",
        "enable-oslogin",
        "enable-guest-attributes",
        "docker-image",
        "api-key-secret",
    }
    assert metadata["api-key-secret"] == secret.inputs["secretId"]
    assert all("key-that-must-stay-secret" not in str(v) for v in metadata.values())


def test_only_the_hosts_account_may_read_the_one_secret(fleet):
    secret = fleet.one("secretmanager/secret:Secret")
    version = fleet.one("SecretVersion")
    (grant,) = fleet.of_type("SecretIamMember")
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
    assert not fixed.of_type("secretmanager")
    assert "api-key-secret" not in template["metadata"]
    assert sorted(template["serviceAccount"]["scopes"]) == [
        "https://www.googleapis.com/auth/devstorage.read_only",  # the driver installer's gsutil cp
        "https://www.googleapis.com/auth/logging.write",
        "https://www.googleapis.com/auth/monitoring.write",
    ]


def test_group_spans_the_regions_gpu_zones(fleet):
    group = fleet.one("RegionInstanceGroupManager").inputs
    assert group["region"] == "us-central1"
    assert group["distributionPolicyZones"] == US_CENTRAL1_T4_ZONES
    assert group["distributionPolicyTargetShape"] in {"BALANCED", "ANY"}
    template = fleet.one("InstanceTemplate")
    # selfLinkUnique: every new template version is a new reference, so the group rolls to it.
    assert group["versions"][0]["instanceTemplate"].endswith(f"/{template.name}?uniqueId=42")


def test_rolling_update_never_lowers_capacity(fleet):
    policy = fleet.one("RegionInstanceGroupManager").inputs["updatePolicy"]
    assert policy["type"] == "PROACTIVE"
    assert policy["maxUnavailableFixed"] == 0
    # A regional group's fixed surge must be 0 or at least its zone count; 0 would block updates.
    assert policy["maxSurgeFixed"] >= len(US_CENTRAL1_T4_ZONES)
    assert policy["instanceRedistributionType"] == "NONE"


def test_autoscaler_bounds_target_and_cooldown(fleet):
    autoscaler = fleet.one("RegionAutoscaler").inputs
    group = fleet.one("RegionInstanceGroupManager")
    policy = autoscaler["autoscalingPolicy"]
    assert autoscaler["target"] == group.id
    assert (policy["minReplicas"], policy["maxReplicas"]) == (1, 4)
    assert 0 < policy["loadBalancingUtilization"]["target"] <= 1
    # A new VM's first boot (driver, reboot, pull, model load) must not read as idle capacity: no overshoot.
    assert policy["cooldownPeriod"] >= sum(infra_module("config_fleet").FIRST_BOOT_BUDGET_SEC.values())
    assert "targetSize" not in group.inputs  # the autoscaler owns the size
    backend = fleet.one("BackendService").inputs["backends"][0]
    assert backend["balancingMode"] == "RATE" and backend["maxRatePerInstance"] > 0


def test_replicas_alone_is_a_fixed_size_without_autoscaler(deploy):
    fixed = deploy(FIXED)
    assert not fixed.of_type("RegionAutoscaler")
    assert fixed.one("RegionInstanceGroupManager").inputs["targetSize"] == 2


def test_spot_fleet_deletes_preempted_vms_for_the_group_to_recreate(deploy):
    scheduling = deploy({**FIXED, "spot": "true"}).one("InstanceTemplate").inputs["scheduling"]
    assert scheduling["provisioningModel"] == "SPOT"
    assert scheduling["preemptible"] is True
    assert scheduling["automaticRestart"] is False
    assert scheduling["onHostMaintenance"] == "TERMINATE"
    assert scheduling["instanceTerminationAction"] == "DELETE"


def test_fleet_outputs(fleet):
    group = fleet.one("RegionInstanceGroupManager")
    assert set(fleet.outputs) == {
        "mode", "project", "ip", "url", "groupName", "region",
        "fleetZones", "gpuType", "gpuCount", "maxReplicas",  # the rollout's GPU need (deploy/stack.py)
        "pricePerHour", "priceBasis",  # one VM's price (infra/pricing.py)
    }  # fmt: skip
    assert fleet.outputs["mode"] == "fleet"
    assert fleet.outputs["fleetZones"] == US_CENTRAL1_T4_ZONES
    assert (fleet.outputs["gpuType"], fleet.outputs["gpuCount"]) == ("nvidia-tesla-t4", 1)
    assert fleet.outputs["maxReplicas"] == 4
    assert fleet.outputs["groupName"] == group.name
    assert not fleet.of_type("compute/instance:Instance")


def test_a_new_image_tag_changes_only_the_template(deploy):
    old = deploy(FIXED)
    new = deploy({**FIXED, "dockerImage": "myuser/whisper-gpu:5e6f7a8"})
    changed = {
        r.name for r in old.resources if r.inputs != next(n.inputs for n in new.resources if n.name == r.name)
    }
    assert changed == {old.one("InstanceTemplate").name}


@pytest.mark.parametrize(
    ("config", "key", "fix"),
    [
        ({"minReplicas": "3", "maxReplicas": "2", "dockerImage": IMAGE}, "maxReplicas", ">= 3"),
        ({"minReplicas": "0", "maxReplicas": "2", "dockerImage": IMAGE}, "minReplicas", "1"),
        ({"replicas": "2", "maxReplicas": "4", "dockerImage": IMAGE}, "replicas", "not both"),
        ({"replicas": "0", "dockerImage": IMAGE}, "replicas", "e.g. replicas: 2"),
        ({"replicas": "2"}, "dockerImage", "pulumi config set dockerImage"),
        (
            {**FIXED, "fleetZones": '["us-central1-a", "us-central1-d"]'},
            "fleetZones",
            "use one of us-central1-a, us-central1-b, us-central1-c, us-central1-f",
        ),
        ({**FIXED, "fleetZones": "europe-west4-a"}, "fleetZones", "us-central1-a"),
        (
            {**FIXED, "machineType": "g2-standard-8", "fleetZones": "us-central1-f"},
            "fleetZones",
            "use one of us-central1-a, us-central1-b, us-central1-c",
        ),
    ],
    ids=["max<min", "min0", "both", "zero", "no-image", "zone-lacks-t4", "other-region", "no-l4"],
)
def test_invalid_fleet_config_fails_clearly(deploy, config, key, fix):
    with pytest.raises(Exception, match=re.escape(fix)) as failure:
        deploy(config)
    assert str(failure.value).startswith(f"config {key}: "), str(failure.value)
    assert failure.value.declared_before_failure == []


def test_unknown_region_needs_explicit_zones(deploy):
    gcp = {"zone": "asia-northeast3-b"}
    with pytest.raises(Exception, match=r"^config fleetZones: .*asia-northeast3-a"):
        deploy(FIXED, gcp)
    zones = '["asia-northeast3-b", "asia-northeast3-c"]'
    group = deploy({**FIXED, "fleetZones": zones}, gcp).one("RegionInstanceGroupManager")
    assert group.inputs["distributionPolicyZones"] == ["asia-northeast3-b", "asia-northeast3-c"]
    assert group.inputs["updatePolicy"]["maxSurgeFixed"] == 2


def test_a_domain_gets_a_managed_certificate_https_on_443_and_a_redirect_on_80(deploy, fake_ips):
    fleet = deploy({**FIXED, "domain": "whisper.example.com"})
    cert = fleet.one("ManagedSslCertificate")
    assert cert.inputs["managed"] == {"domains": ["whisper.example.com"]}
    https = fleet.one("TargetHttpsProxy")
    assert https.inputs["sslCertificates"] == [cert.id]
    backend_map = next(m for m in fleet.of_type("URLMap") if m.inputs.get("defaultService"))
    redirect_map = next(m for m in fleet.of_type("URLMap") if m.inputs.get("defaultUrlRedirect"))
    assert https.inputs["urlMap"] == backend_map.id
    assert redirect_map.inputs["defaultUrlRedirect"]["httpsRedirect"] is True
    assert fleet.one("TargetHttpProxy").inputs["urlMap"] == redirect_map.id  # 80 only redirects
    rules = {r.inputs["portRange"]: r.inputs["target"] for r in fleet.of_type("GlobalForwardingRule")}
    assert rules == {"443": https.id, "80": fleet.one("TargetHttpProxy").id}
    assert len({r.inputs["ipAddress"] for r in fleet.of_type("GlobalForwardingRule")}) == 1
    assert fleet.outputs["url"] == "https://whisper.example.com"


def test_autohealing_waits_out_a_first_boot_by_its_budget_with_margin(deploy, infra_config):
    # A new VM installs Docker and the toolkit, builds the driver and reboots, pulls the 7.7 GB image and
    # loads the model before /readyz answers; auto-healing judging earlier recreates it in a loop.
    budget = infra_config.FIRST_BOOT_BUDGET_SEC
    assert {"driver install", "reboot", "docker and toolkit", "image pull", "model load"} <= set(budget)
    assert infra_config.DEFAULT_AUTOHEAL_DELAY_SEC >= 1.25 * sum(budget.values())
    healing = deploy(FIXED).one("RegionInstanceGroupManager").inputs["autoHealingPolicies"]
    assert healing["initialDelaySec"] == infra_config.DEFAULT_AUTOHEAL_DELAY_SEC
    assert healing["initialDelaySec"] <= 3600  # the ceiling autohealInitialDelaySec accepts


def test_a_docker_hub_token_goes_to_its_own_secret_and_the_template_names_only_it(deploy):
    # Docker Hub limits anonymous pulls per IP (https://docs.docker.com/docker-hub/usage/), and fleet VMs
    # share Cloud NAT's addresses: with a token the startup script logs in before it pulls.
    token = "dckr_pat_must-stay-secret"
    fleet = deploy({**FIXED, "dockerhubUsername": "alice", "dockerhubToken": token})
    secrets = {s.inputs["secretId"]: s for s in fleet.of_type("secretmanager/secret:Secret")}
    assert set(secrets) == {"whisper-dev-api-key", "whisper-dev-dockerhub-token"}
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
