"""A dedicated VPC, its subnet and the firewall rules: what may reach the GPU hosts, and from where."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from apis import child_options

SUBNET_RANGE = "10.10.0.0/24"  # private addresses of the GPU hosts; room for a large fleet


@dataclass(frozen=True)
class Ingress:
    """One firewall rule: TCP `ports` from `sources` to hosts carrying the service tag."""

    name: str
    ports: tuple[int, ...]
    sources: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class NetworkArgs:
    region: str
    service_tag: str
    ingress: tuple[Ingress, ...]  # rules with no sources are not created (closed)
    egress_nat: bool = False  # Cloud NAT for hosts without public addresses (the fleet)


class Network(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("whisper:infra:Network", name, None, opts)
        child = child_options(self, opts)
        # Not `default`: its pre-made rules open SSH, RDP and ICMP to the whole internet.
        self.vpc = gcp.compute.Network(f"{name}-vpc", auto_create_subnetworks=False, opts=child)
        self.subnet = gcp.compute.Subnetwork(
            f"{name}-subnet",
            network=self.vpc.id,
            region=args.region,
            ip_cidr_range=SUBNET_RANGE,
            private_ip_google_access=True,
            opts=child,
        )
        self.firewalls = [
            self._allow(name, rule, args.service_tag, child) for rule in args.ingress if rule.sources
        ]
        if args.egress_nat:
            self._nat(name, args.region, child)
        self.register_outputs({"network": self.vpc.id, "subnet": self.subnet.id})

    def _allow(
        self, name: str, rule: Ingress, tag: str, opts: pulumi.ResourceOptions
    ) -> gcp.compute.Firewall:
        return gcp.compute.Firewall(
            f"{name}-allow-{rule.name}",
            network=self.vpc.id,
            direction="INGRESS",
            description=rule.description,
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(p) for p in rule.ports])],
            source_ranges=list(rule.sources),
            target_tags=[tag],
            opts=opts,
        )

    def _nat(self, name: str, region: str, opts: pulumi.ResourceOptions) -> None:
        """Outbound internet (driver, image pull, model download) for hosts with no public IP."""
        router = gcp.compute.Router(f"{name}-router", network=self.vpc.id, region=region, opts=opts)
        self.nat = gcp.compute.RouterNat(
            f"{name}-nat",
            router=router.name,
            region=region,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            opts=opts,
        )
