"""gpuType: none: a CPU-only host from the stack (a small model on a cheap VM). No accelerator and no driver,
the same network, firewall, Ansible and deploy path, and a price, so `make cost` has a cost per audio hour."""

from __future__ import annotations

import pytest

from .conftest import infra_module
from .test_vm_stack import open_ports

CPU = {"gpuType": "none"}


def test_a_cpu_host_has_no_accelerator_migrates_on_maintenance_and_says_so_to_its_startup_script(deploy):
    vm = deploy(CPU).one("compute/instance:Instance").inputs
    assert vm["machineType"] == "e2-standard-8"
    assert vm.get("guestAccelerators") is None
    assert vm["scheduling"]["onHostMaintenance"] == "MIGRATE"  # no GPU: live migration is allowed
    assert vm["metadata"]["whisper-gpu"] == "none"  # startup.sh: no toolkit, no driver


def test_a_spot_cpu_host_still_terminates_on_maintenance(deploy):
    vm = deploy(CPU | {"spot": "true"}).one("compute/instance:Instance").inputs
    assert vm["scheduling"]["onHostMaintenance"] == "TERMINATE"


def test_a_gpu_host_tells_its_startup_script_nothing_of_the_kind(deploy):
    assert "whisper-gpu" not in deploy({}).one("compute/instance:Instance").inputs["metadata"]


def test_the_same_firewall_and_outputs_as_the_gpu_host(deploy):
    cpu, gpu = deploy(CPU), deploy({})
    assert open_ports(cpu) == open_ports(gpu)
    assert set(cpu.outputs) == set(gpu.outputs)
    assert (cpu.outputs["gpus"], gpu.outputs["gpus"]) == ("none", "all")  # fab deploy's docker run --gpus


def test_its_price_reaches_the_vm_for_make_cost(deploy):
    cpu = deploy(CPU)
    pricing = infra_module("pricing")
    expected = pricing.vm_price("e2-standard-8", "", 0, False, False, 100)
    t4 = pricing.vm_price("n1-standard-8", "nvidia-tesla-t4", 1, True, False, 100)
    assert expected is not None and expected.per_hour < t4.per_hour
    assert cpu.outputs["pricePerHour"] == expected.per_hour
    metadata = cpu.one("compute/instance:Instance").inputs["metadata"]
    assert float(metadata["whisper-price-per-hour"]) == expected.per_hour
    assert 'gpu_type="none"' in metadata["whisper-price-labels"]
    assert 'gpu_count="0"' in metadata["whisper-price-labels"]


@pytest.mark.parametrize(
    ("keys", "key", "says"),
    [
        ({"machineType": "g2-standard-8"}, "machineType", "not a general-purpose machine type"),
        ({"gpuCount": "1"}, "gpuCount", "remove gpuCount"),
        ({"replicas": "2", "dockerImage": "u/w:1", "apiKey": "k"}, "gpuType", "single-VM shape"),
    ],
)
def test_what_a_cpu_host_cannot_be_is_refused_with_the_key(deploy, keys, key, says):
    with pytest.raises(Exception, match=f"^config {key}: .*{says}") as refused:
        deploy(CPU | keys)
    assert type(refused.value).__name__ == "ConfigError"  # one line under pulumi, no traceback
