"""Whisper on Google Cloud GPUs: one GPU VM (default) or a fleet behind Google's load balancer.

Config is read and validated first (config.py), so a bad value stops here before anything is
created. Outputs are camelCase; `make outputs`, `make deploy` and the Ansible inventory read them.
"""

import pulumi

from apis import enable_apis, required_apis
from config import HEALTH_CHECK_RANGES, StackConfig
from fleet import Fleet, FleetArgs
from gpu_vm import GpuVm, GpuVmArgs
from host import SERVICE_TAG
from identity import ServiceIdentity, ServiceIdentityArgs
from jobs_store import JobsStore, JobsStoreArgs
from network import Ingress, Network, NetworkArgs

cfg = StackConfig.from_pulumi()
is_fleet = cfg.fleet is not None

# Logical names start with `whisper-<stack>`, and so do the GCP names Pulumi derives from them:
# several stacks can share one project and stay told apart in the console.
prefix = cfg.name_prefix
# The APIs first (a new project has them off); everything else waits for them.
apis = enable_apis(prefix, cfg.project, required_apis(is_fleet))
after_apis = pulumi.ResourceOptions(depends_on=apis)
identity = ServiceIdentity(prefix, ServiceIdentityArgs(project=cfg.project, account_id=prefix), after_apis)

# Port 80 (and 443 with a `domain`: 80 then only redirects and answers ACME challenges) is all that is
# open to the world: on the VM itself, or, in a fleet, on the load balancer, whose front ends and health
# checkers are then the only sources allowed to the VMs. Grafana and Prometheus stay on the VM's loopback
# (make dashboards tunnels to them over IAP).
public_ports = (80, 443) if cfg.domain else (80,)
ingress = (
    Ingress("ssh", (22,), cfg.ssh_source_ranges, "SSH (default: Google IAP only)"),
    Ingress("http", public_ports, () if is_fleet else cfg.http_source_ranges, "The Whisper API"),
    Ingress("lb", (80,), HEALTH_CHECK_RANGES if is_fleet else (), "Load balancer and checks"),
)
if not cfg.domain:
    pulumi.log.warn("domain is not set: the API is plain HTTP and API keys cross the network in clear text")


def public_url(ip: pulumi.Output[str]) -> pulumi.Output[str]:
    return (
        pulumi.Output.from_input(f"https://{cfg.domain}") if cfg.domain else ip.apply(lambda a: f"http://{a}")
    )


network = Network(
    prefix,
    NetworkArgs(region=cfg.region, service_tag=SERVICE_TAG, ingress=ingress, egress_nat=is_fleet),
    after_apis,
)

pulumi.export("mode", cfg.mode)
pulumi.export("project", cfg.project)
# What one VM costs per running hour (pricing.py, or pricePerHour): `make cost` and docs/provisioning.md.
if cfg.price is None:
    pulumi.log.warn(
        f"no list price for {cfg.machine_type} with {cfg.gpu_type} in infra/pricing.py: set pricePerHour "
        "(USD per running hour) to see the cost per audio hour"
    )
pulumi.export("pricePerHour", cfg.price.per_hour if cfg.price else None)
pulumi.export("priceBasis", f"{cfg.price.basis}, {cfg.price.provisioning}" if cfg.price else "unknown")
if is_fleet:
    # Background jobs: any VM answers for any job, so rows and audio live off the VMs (jobs_store.py).
    jobs = JobsStore(
        f"{prefix}-jobs",
        JobsStoreArgs(config=cfg, network=network.vpc.id, service_account_member=identity.member),
        after_apis,
    )
    fleet = Fleet(
        f"{prefix}-fleet",
        FleetArgs(
            config=cfg,
            subnet=network.subnet.id,
            service_account_email=identity.email,
            service_account_member=identity.member,
            jobs=jobs,
        ),
        after_apis,
    )
    pulumi.export("ip", fleet.ip)
    pulumi.export("url", public_url(fleet.ip))
    pulumi.export("groupName", fleet.group_name)
    pulumi.export("region", cfg.region)
    # What a rollout needs in GPU quota (deploy/stack.py says it before waiting): the group surges one VM per
    # zone with none unavailable (fleet.py), so up to maxReplicas + len(fleetZones) VMs run at once.
    pulumi.export("fleetZones", list(cfg.fleet.zones))
    pulumi.export("gpuType", cfg.gpu_type)
    pulumi.export("gpuCount", cfg.gpu_count)
    pulumi.export("maxReplicas", cfg.fleet.max_replicas)
    pulumi.export("jobsBucket", jobs.bucket_url)
    pulumi.export("jobsDatabaseInstance", jobs.instance.connection_name)
else:
    vm = GpuVm(
        f"{prefix}-vm",
        GpuVmArgs(
            config=cfg,
            subnet=network.subnet.id,
            service_account_email=identity.email,
            service_account_member=identity.member,
        ),
        after_apis,
    )
    pulumi.export("ip", vm.ip)
    pulumi.export("url", public_url(vm.ip))
    # For `fab deploy`: the proxy's ACME certificate name, and whether a deploy without API_KEYS is intended.
    pulumi.export("domain", cfg.domain or "")
    # `docker run --gpus` for `fab deploy` (DEPLOY_GPUS overrides): none on a CPU-only host.
    pulumi.export("gpus", "all" if cfg.has_gpu else "none")
    pulumi.export("allowUnauthenticated", cfg.allow_unauthenticated)
    pulumi.export(
        "sshCommand",
        vm.instance_name.apply(
            lambda name: (
                f"gcloud compute ssh {name} --zone {cfg.zone} --project {cfg.project} --tunnel-through-iap"
            )
        ),
    )
    pulumi.export("instanceName", vm.instance_name)
    # A replacement keeps the name and the static address but not the id: deploy/sshroute.py drops the old
    # VM's host key from known_hosts when this changes.
    pulumi.export("instanceId", vm.instance_id)
    pulumi.export("zone", cfg.zone)
    pulumi.export("idleStopMinutes", cfg.idle_stop_minutes or 0)
