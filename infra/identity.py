"""The GPU hosts' own service account: write logs and metrics, nothing else.

Not the default compute account, which holds Editor on the whole project.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from apis import child_options

ROLES = ("roles/logging.logWriter", "roles/monitoring.metricWriter")


@dataclass(frozen=True)
class ServiceIdentityArgs:
    project: str
    account_id: str  # 6-30 characters, lowercase; config.StackConfig.name_prefix fits


class ServiceIdentity(pulumi.ComponentResource):
    def __init__(self, name: str, args: ServiceIdentityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("whisper:infra:ServiceIdentity", name, None, opts)
        child = child_options(self, opts)
        self.account = gcp.serviceaccount.Account(
            f"{name}-account",
            project=args.project,
            account_id=args.account_id,
            display_name="Whisper GPU hosts (logs and metrics only)",
            opts=child,
        )
        self.email = self.account.email
        self.member = self.account.email.apply(lambda email: f"serviceAccount:{email}")
        for role in ROLES:
            gcp.projects.IAMMember(
                f"{name}-{role.split('/')[1]}",
                project=args.project,
                role=role,
                member=self.member,
                opts=child,
            )
        self.register_outputs({"email": self.email})
