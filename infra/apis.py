"""The Google APIs the stack's resources call, switched on by the stack itself.

A new project has none of them on (only Service Usage, which switches the others on), so `pulumi up` would
stop at its first VM. Every other resource waits for them (`depends_on`, passed to each component's
children). They stay on when the stack is destroyed (`disable_on_destroy=False`): other stacks and tools in
the project may use them, and switching Compute Engine off deletes what it holds.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

# API -> what of this stack calls it
APIS: dict[str, str] = {
    "compute.googleapis.com": "VMs, disks, addresses, firewall, load balancer",
    "iam.googleapis.com": "the hosts' service account",
    "cloudresourcemanager.googleapis.com": "the service account's project roles",
    "oslogin.googleapis.com": "SSH users and keys (enable-oslogin)",
    "iap.googleapis.com": "SSH through Google's IAP tunnel",
}
FLEET_APIS: dict[str, str] = {
    "secretmanager.googleapis.com": "the fleet's API key, Docker Hub token and job database password",
    "sqladmin.googleapis.com": "the fleet's job database (Cloud SQL)",
    "servicenetworking.googleapis.com": "the job database's private IP (private services access)",
    "storage.googleapis.com": "the fleet's job bucket (audio and results)",
}


def required_apis(fleet: bool) -> tuple[str, ...]:
    return tuple(APIS) + (tuple(FLEET_APIS) if fleet else ())


def enable_apis(name: str, project: str, apis: tuple[str, ...]) -> list[gcp.projects.Service]:
    return [
        gcp.projects.Service(
            f"{name}-{api.split('.')[0]}", project=project, service=api, disable_on_destroy=False
        )
        for api in apis
    ]


def child_options(parent: pulumi.Resource, opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """A component's children: parented to it, and after whatever it was told to wait for (the APIs).
    Pulumi passes a component's depends_on to none of its children itself."""
    return pulumi.ResourceOptions(parent=parent, depends_on=opts.depends_on if opts else None)
