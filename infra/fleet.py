"""Fleet mode: a regional managed instance group of GPU VMs behind Google's global HTTP load balancer.

Each VM is the single VM's shape (host.py) without a public address; its startup script starts the
service container from `dockerImage`. Google's managed pieces do the rest: the group spreads VMs
over the region's GPU zones and recreates broken ones (auto-healing on /readyz), the autoscaler
sizes it by load-balancer traffic, and a new image tag rolls out surge-first, so capacity never drops.

    client -> global address :80 -> forwarding rule -> HTTP proxy -> URL map -> backend service
           -> regional instance group (named port http:80) -> container :5000 on each GPU VM
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

import host
from apis import child_options
from config import FleetConfig, StackConfig

HTTP_PORT = 80
HTTPS_PORT = 443
READY_PATH = "/readyz"  # 200 only once the model is loaded and warmed


@dataclass(frozen=True)
class FleetArgs:
    config: StackConfig
    subnet: pulumi.Input[str]
    service_account_email: pulumi.Input[str]
    service_account_member: pulumi.Input[str]  # "serviceAccount:<email>"


class Fleet(pulumi.ComponentResource):
    def __init__(self, name: str, args: FleetArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("whisper:infra:Fleet", name, None, opts)
        cfg, fleet = args.config, args.config.fleet
        assert fleet is not None, "Fleet needs config.fleet"
        child = child_options(self, opts)
        secret = self._api_key_secret(name, cfg, args.service_account_member, child)
        pull_secret = None
        if cfg.dockerhub_token is not None:
            # Docker Hub limits anonymous pulls per IPv4 address (https://docs.docker.com/docker-hub/usage/),
            # and the VMs share Cloud NAT's addresses: they log in with this token to pull (startup.sh).
            pull_secret = self._secret(
                f"{name}-dockerhub-token",
                f"{cfg.name_prefix}-dockerhub-token",
                cfg.dockerhub_token,
                cfg,
                args.service_account_member,
                child,
            )
        self.template = instance_template(name, cfg, args, (secret, pull_secret), child)
        self.lb_check = _readyz_check(f"{name}-lb-check", interval=10, unhealthy=3, opts=child)
        # Auto-healing recreates a VM: judge more slowly than the load balancer, which only
        # stops sending traffic.
        self.heal_check = _readyz_check(f"{name}-heal-check", interval=30, unhealthy=4, opts=child)
        self.group = self._group(name, cfg, fleet, child)
        if fleet.autoscaled:
            self.autoscaler = self._autoscaler(name, cfg, fleet, child)
        self.backend = self._backend(name, fleet, child)
        self.ip = self._frontend(name, cfg, child)
        self.group_name = self.group.name
        self.register_outputs({"ip": self.ip, "groupName": self.group_name})

    def _api_key_secret(
        self, name: str, cfg: StackConfig, member: pulumi.Input[str], opts: pulumi.ResourceOptions
    ) -> gcp.secretmanager.Secret | None:
        """The API key lives in Secret Manager; only the hosts' account may read that one secret.
        It never goes into metadata, which any process on the VM (and any viewer) can read."""
        if cfg.api_key is None:  # config.py refused this unless allowUnauthenticated is true
            pulumi.log.warn("apiKey is not set and allowUnauthenticated is true: the fleet serves anyone")
            return None
        return self._secret(f"{name}-api-key", f"{cfg.name_prefix}-api-key", cfg.api_key, cfg, member, opts)

    def _secret(
        self,
        name: str,
        secret_id: str,
        data: pulumi.Input[str],
        cfg: StackConfig,
        member: pulumi.Input[str],
        opts: pulumi.ResourceOptions,
    ) -> gcp.secretmanager.Secret:
        """A Secret Manager secret with one version that only the hosts' account may read."""
        secret = gcp.secretmanager.Secret(
            name,
            secret_id=secret_id,
            replication=gcp.secretmanager.SecretReplicationArgs(
                auto=gcp.secretmanager.SecretReplicationAutoArgs()
            ),
            labels=dict(cfg.labels),
            opts=opts,
        )
        gcp.secretmanager.SecretVersion(f"{name}-version", secret=secret.id, secret_data=data, opts=opts)
        gcp.secretmanager.SecretIamMember(
            f"{name}-reader",
            secret_id=secret.id,
            role="roles/secretmanager.secretAccessor",
            member=member,
            opts=opts,
        )
        return secret

    def _group(
        self, name: str, cfg: StackConfig, fleet: FleetConfig, opts: pulumi.ResourceOptions
    ) -> gcp.compute.RegionInstanceGroupManager:
        # A regional group's fixed surge must be 0 or at least its number of zones.
        surge = max(len(fleet.zones), 1)
        return gcp.compute.RegionInstanceGroupManager(
            f"{name}-group",
            region=cfg.region,
            base_instance_name=cfg.name_prefix,
            versions=[
                gcp.compute.RegionInstanceGroupManagerVersionArgs(
                    name="primary", instance_template=self.template.self_link_unique
                )
            ],
            distribution_policy_zones=list(fleet.zones),
            # BALANCED: spread over the zones, but create VMs where GPUs are in stock when a
            # zone runs out instead of waiting for it.
            distribution_policy_target_shape="BALANCED",
            # The autoscaler owns the size when there is one.
            target_size=None if fleet.autoscaled else fleet.min_replicas,
            named_ports=[gcp.compute.RegionInstanceGroupManagerNamedPortArgs(name="http", port=HTTP_PORT)],
            auto_healing_policies=gcp.compute.RegionInstanceGroupManagerAutoHealingPoliciesArgs(
                health_check=self.heal_check.id, initial_delay_sec=fleet.autoheal_delay_sec
            ),
            update_policy=gcp.compute.RegionInstanceGroupManagerUpdatePolicyArgs(
                type="PROACTIVE",
                minimal_action="REPLACE",
                replacement_method="SUBSTITUTE",
                max_surge_fixed=surge,  # new VMs first ...
                max_unavailable_fixed=0,  # ... and no old VM leaves before one is ready
                # BALANCED shape requires redistribution off.
                instance_redistribution_type="NONE",
                min_ready_sec=60,
            ),
            wait_for_instances=False,
            opts=opts,
        )

    def _autoscaler(
        self, name: str, cfg: StackConfig, fleet: FleetConfig, opts: pulumi.ResourceOptions
    ) -> gcp.compute.RegionAutoscaler:
        return gcp.compute.RegionAutoscaler(
            f"{name}-autoscaler",
            region=cfg.region,
            target=self.group.id,
            autoscaling_policy=gcp.compute.RegionAutoscalerAutoscalingPolicyArgs(
                min_replicas=fleet.min_replicas,
                max_replicas=fleet.max_replicas,
                # A new VM's first minutes (driver, image pull, model load) say nothing of load.
                cooldown_period=fleet.cooldown_sec,
                load_balancing_utilization=(
                    gcp.compute.RegionAutoscalerAutoscalingPolicyLoadBalancingUtilizationArgs(
                        target=fleet.target_utilization
                    )
                ),
            ),
            opts=opts,
        )

    def _backend(
        self, name: str, fleet: FleetConfig, opts: pulumi.ResourceOptions
    ) -> gcp.compute.BackendService:
        return gcp.compute.BackendService(
            f"{name}-backend",
            load_balancing_scheme="EXTERNAL_MANAGED",
            protocol="HTTP",
            port_name="http",
            # Long files take minutes; the default 30 s would cut them off. The whole response must come
            # within this: the service's own deadline (REQUEST_TIMEOUT + 1 s per audio second) ends first.
            timeout_sec=fleet.request_timeout_sec,
            health_checks=self.lb_check.id,
            # Draining: a VM leaving the group (update, scale-in) gets no new requests and as long to finish
            # what it has as its own drain on SIGTERM, which comes next; longer would only delay the update.
            connection_draining_timeout_sec=host.GRACEFUL_TIMEOUT_SEC,  # the containers' GRACEFUL_TIMEOUT
            backends=[
                gcp.compute.BackendServiceBackendArgs(
                    group=self.group.instance_group,
                    # RATE: the utilisation the autoscaler targets is requests/s per VM.
                    balancing_mode="RATE",
                    max_rate_per_instance=fleet.max_rate_per_instance,
                    capacity_scaler=1.0,
                )
            ],
            opts=opts,
        )

    def _frontend(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
        """Without `domain`: HTTP on 80 to the backend. With it: a Google-managed certificate and an HTTPS
        proxy on 443 to the backend, and port 80 only redirects to https:// (301)."""
        address = gcp.compute.GlobalAddress(f"{name}-ip", labels=dict(cfg.labels), opts=opts)
        url_map = gcp.compute.URLMap(f"{name}-urlmap", default_service=self.backend.id, opts=opts)
        if cfg.domain:
            # Google provisions it once the domain's DNS A record points at `address` (minutes to an hour).
            cert = gcp.compute.ManagedSslCertificate(
                f"{name}-cert",
                managed=gcp.compute.ManagedSslCertificateManagedArgs(domains=[cfg.domain]),
                opts=opts,
            )
            https = gcp.compute.TargetHttpsProxy(
                f"{name}-https-proxy", url_map=url_map.id, ssl_certificates=[cert.id], opts=opts
            )
            self._rule(f"{name}-https", cfg, address, HTTPS_PORT, https.id, opts)
            url_map = gcp.compute.URLMap(
                f"{name}-redirect",
                default_url_redirect=gcp.compute.URLMapDefaultUrlRedirectArgs(
                    https_redirect=True, strip_query=False, redirect_response_code="MOVED_PERMANENTLY_DEFAULT"
                ),
                opts=opts,
            )
        proxy = gcp.compute.TargetHttpProxy(f"{name}-proxy", url_map=url_map.id, opts=opts)
        self._rule(f"{name}-http", cfg, address, HTTP_PORT, proxy.id, opts)
        return address.address

    def _rule(self, name, cfg: StackConfig, address, port: int, target, opts) -> None:
        gcp.compute.GlobalForwardingRule(
            name,
            load_balancing_scheme="EXTERNAL_MANAGED",
            ip_protocol="TCP",
            ip_address=address.id,
            port_range=str(port),
            target=target,
            labels=dict(cfg.labels),
            opts=opts,
        )


def instance_template(
    name: str,
    cfg: StackConfig,
    args: FleetArgs,
    secrets: tuple[gcp.secretmanager.Secret | None, gcp.secretmanager.Secret | None],
    opts: pulumi.ResourceOptions,
) -> gcp.compute.InstanceTemplate:
    """Templates are immutable: a new image tag makes a new template (auto-named, created
    before the old one is deleted) and the group rolls to it."""
    attributes, scopes = _attributes_and_scopes(cfg, *secrets)
    return gcp.compute.InstanceTemplate(
        f"{name}-template",
        machine_type=cfg.machine_type,
        disks=[
            gcp.compute.InstanceTemplateDiskArgs(
                boot=True,
                auto_delete=True,
                source_image=cfg.image,
                disk_size_gb=cfg.boot_disk_gb,
                disk_type="pd-balanced",
            )
        ],
        guest_accelerators=host.accelerators(cfg, gcp.compute.InstanceTemplateGuestAcceleratorArgs),
        # A preempted spot VM is deleted; the group recreates it when capacity returns.
        scheduling=host.scheduling(cfg, gcp.compute.InstanceTemplateSchedulingArgs, "DELETE"),
        shielded_instance_config=host.shielded(gcp.compute.InstanceTemplateShieldedInstanceConfigArgs),
        # No access config: no public address. Egress goes through Cloud NAT (network.py).
        network_interfaces=[
            gcp.compute.InstanceTemplateNetworkInterfaceArgs(subnetwork=args.subnet, nic_type=cfg.nic_type)
        ],
        service_account=gcp.compute.InstanceTemplateServiceAccountArgs(
            email=args.service_account_email, scopes=scopes
        ),
        metadata=host.metadata(attributes),
        tags=[host.SERVICE_TAG],
        labels=dict(cfg.labels),
        opts=opts,
    )


def _attributes_and_scopes(cfg: StackConfig, secret, pull_secret) -> tuple[dict, list[str]]:
    """A VM's own metadata (the image tag is all it needs: the image carries its model) and its scopes;
    secrets by name only, their values stay in Secret Manager."""
    attributes = {"docker-image": cfg.docker_image}
    scopes = list(host.BASE_SCOPES)
    if secret is not None:
        attributes["api-key-secret"] = secret.secret_id
    if pull_secret is not None:
        attributes["dockerhub-username"] = cfg.dockerhub_username
        attributes["dockerhub-token-secret"] = pull_secret.secret_id
    if secret is not None or pull_secret is not None:
        scopes.append(host.SECRET_SCOPE)
    return attributes, scopes


def _readyz_check(
    name: str, interval: int, unhealthy: int, opts: pulumi.ResourceOptions
) -> gcp.compute.HealthCheck:
    return gcp.compute.HealthCheck(
        name,
        check_interval_sec=interval,
        timeout_sec=5,
        healthy_threshold=1,
        unhealthy_threshold=unhealthy,
        http_health_check=gcp.compute.HealthCheckHttpHealthCheckArgs(port=HTTP_PORT, request_path=READY_PATH),
        opts=opts,
    )
