"""One GPU VM with a static public address: the default shape of a stack.

With idleStopMinutes it may stop itself (idle_stop.py), and nothing more: a custom role holding only
compute.instances.stop, bound on this instance alone, to the VM's own service account.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

import host
from apis import child_options
from config import StackConfig


@dataclass(frozen=True)
class GpuVmArgs:
    config: StackConfig
    subnet: pulumi.Input[str]
    service_account_email: pulumi.Input[str]
    service_account_member: pulumi.Input[str] | None = None  # "serviceAccount:<email>": idle stop binds it


class GpuVm(pulumi.ComponentResource):
    def __init__(self, name: str, args: GpuVmArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("whisper:infra:GpuVm", name, None, opts)
        cfg = args.config
        child = child_options(self, opts)
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
            network_interfaces=[_interface(cfg, args.subnet, self.address.address)],
            service_account=gcp.compute.InstanceServiceAccountArgs(
                email=args.service_account_email, scopes=host.vm_scopes(cfg)
            ),
            metadata=host.metadata(host.vm_metadata(cfg)),
            tags=[host.SERVICE_TAG],
            labels=dict(cfg.labels),
            # Machine type and GPU changes need a stopped VM; let Pulumi stop and start it.
            allow_stopping_for_update=True,
            opts=child,
        )
        if cfg.idle_stop_minutes:
            self.stop_role = _stop_self(name, cfg, self.instance, args.service_account_member, child)
        self.ip = self.address.address
        self.instance_name = self.instance.name
        self.instance_id = self.instance.instance_id
        self.register_outputs(
            {"ip": self.ip, "instanceName": self.instance_name, "instanceId": self.instance_id}
        )


def _interface(cfg, subnet, nat_ip) -> gcp.compute.InstanceNetworkInterfaceArgs:
    """The VM's one network interface: the stack's subnet, its static address as the external one."""
    return gcp.compute.InstanceNetworkInterfaceArgs(
        subnetwork=subnet,
        nic_type=cfg.nic_type,  # GVNIC on A3 (config.py)
        access_configs=[gcp.compute.InstanceNetworkInterfaceAccessConfigArgs(nat_ip=nat_ip)],
    )


def _stop_self(name, cfg, instance, member, child) -> gcp.projects.IAMCustomRole:
    """The least privilege that lets the VM stop itself: one permission, on this instance only."""
    role = gcp.projects.IAMCustomRole(
        f"{name}-stop-self-role",
        project=cfg.project,
        role_id=host.stop_self_role_id(cfg),
        title="Whisper VM stops itself when idle",
        description="compute.instances.stop only; bound on one instance to that instance's service account",
        permissions=list(host.STOP_SELF_PERMISSIONS),
        opts=child,
    )
    gcp.compute.InstanceIAMMember(
        f"{name}-stop-self",
        project=cfg.project,
        zone=cfg.zone,
        instance_name=instance.name,
        role=pulumi.Output.concat("projects/", cfg.project, "/roles/", role.role_id),
        member=member,
        opts=child,
    )
    return role


def _boot_disk(cfg: StackConfig) -> gcp.compute.InstanceBootDiskArgs:
    return gcp.compute.InstanceBootDiskArgs(
        initialize_params=gcp.compute.InstanceBootDiskInitializeParamsArgs(
            image=cfg.image, size=cfg.boot_disk_gb, type="pd-balanced"
        )
    )
