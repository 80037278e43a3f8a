"""A Secret Manager secret that only the hosts' service account may read: the fleet's API key, its Docker Hub
token and its job database's password. The VMs read each at boot (startup.sh secret_value); none of them is
ever written into metadata, which any process on the VM (and any project viewer) can read."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_gcp as gcp


def readable_secret(
    name: str,
    secret_id: str,
    data: pulumi.Input[str],
    labels: Mapping[str, str],
    member: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> gcp.secretmanager.Secret:
    """A secret with one version (`data`, a Pulumi secret) and one reader (`member`)."""
    secret = gcp.secretmanager.Secret(
        name,
        secret_id=secret_id,
        replication=gcp.secretmanager.SecretReplicationArgs(
            auto=gcp.secretmanager.SecretReplicationAutoArgs()
        ),
        labels=dict(labels),
        opts=opts,
    )
    gcp.secretmanager.SecretVersion(
        f"{name}-version", secret=secret.id, secret_data=pulumi.Output.secret(data), opts=opts
    )
    gcp.secretmanager.SecretIamMember(
        f"{name}-reader",
        secret_id=secret.id,
        role="roles/secretmanager.secretAccessor",
        member=member,
        opts=opts,
    )
    return secret
