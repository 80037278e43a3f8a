"""One GPU VM with a static public address: the default shape of a stack."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

import host
from config import StackConfig


@dataclass(frozen=True)
class GpuVmArgs:
    config: StackConfig
    subnet: pulumi.Input[str]
    service_account_email: pulumi.Input[str]


class GpuVm(pulumi.ComponentResource):
    def __init__(self, name: str, args: GpuVmArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("whisper:infra:GpuVm", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        # Static, so the URL, the Ansible inventory and DNS survive a stop or a replacement.
        self.address = gcp.compute.Address(
            f"{name}-ip", region=cfg.region, labels=dict(cfg.labels), opts=child
        )
        self.instance = gcp.compute.Instance(
            f"{name}-instance",
            zone=cfg.zone,
            machine_type=cfg.machine_type,
            boot_disk=_boot_disk(cfg),
            guest_accelerators=host.accelerators(cfg, gcp.compute.InstanceGuestAcceleratorArgs),
            scheduling=host.scheduling(cfg, gcp.compute.InstanceSchedulingArgs, "STOP"),
            shielded_instance_config=host.shielded(gcp.compute.InstanceShieldedInstanceConfigArgs),
            network_interfaces=[
                gcp.compute.InstanceNetworkInterfaceArgs(
                    subnetwork=args.subnet,
                    nic_type=cfg.nic_type,  # GVNIC on A3 (config.py)
                    access_configs=[
                        gcp.compute.InstanceNetworkInterfaceAccessConfigArgs(nat_ip=self.address.address)
                    ],
                )
            ],
            service_account=gcp.compute.InstanceServiceAccountArgs(
                email=args.service_account_email, scopes=list(host.BASE_SCOPES)
            ),
            metadata=host.metadata(),
            tags=[host.SERVICE_TAG],
            labels=dict(cfg.labels),
            # Machine type and GPU changes need a stopped VM; let Pulumi stop and start it.
            allow_stopping_for_update=True,
            opts=child,
        )
        self.ip = self.address.address
        self.instance_name = self.instance.name
        self.instance_id = self.instance.instance_id
        self.register_outputs(
            {"ip": self.ip, "instanceName": self.instance_name, "instanceId": self.instance_id}
        )


def _boot_disk(cfg: StackConfig) -> gcp.compute.InstanceBootDiskArgs:
    return gcp.compute.InstanceBootDiskArgs(
        initialize_params=gcp.compute.InstanceBootDiskInitializeParamsArgs(
            image=cfg.image, size=cfg.boot_disk_gb, type="pd-balanced"
        )
    )
