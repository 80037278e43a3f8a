"""Whisper on Google Cloud GPUs: one GPU VM (default) or a fleet behind Google's load balancer.

Config is read and validated first (config.py), so a bad value stops here before anything is
created. Outputs are camelCase; `make outputs`, `make deploy` and the Ansible inventory read them.
"""

import pulumi

from config import HEALTH_CHECK_RANGES, StackConfig
from fleet import Fleet, FleetArgs
from gpu_vm import GpuVm, GpuVmArgs
from host import SERVICE_TAG
from identity import ServiceIdentity, ServiceIdentityArgs
from network import Ingress, Network, NetworkArgs

cfg = StackConfig.from_pulumi()
is_fleet = cfg.fleet is not None

# Logical names start with `whisper-<stack>`, and so do the GCP names Pulumi derives from them:
# several stacks can share one project and stay told apart in the console.
prefix = cfg.name_prefix
identity = ServiceIdentity(prefix, ServiceIdentityArgs(project=cfg.project, account_id=prefix))

# Port 80 is the only port open to the world: on the VM itself, or, in a fleet, on the load
# balancer, whose front ends and health checkers are then the only sources allowed to the VMs.
ingress = (
    Ingress("ssh", (22,), cfg.ssh_source_ranges, "SSH (default: Google IAP only)"),
    Ingress("monitoring", (3000, 9090), cfg.monitoring_source_ranges, "Grafana and Prometheus"),
    Ingress("http", (80,), () if is_fleet else cfg.http_source_ranges, "The Whisper API"),
    Ingress("lb", (80,), HEALTH_CHECK_RANGES if is_fleet else (), "Load balancer and checks"),
)
network = Network(
    prefix,
    NetworkArgs(region=cfg.region, service_tag=SERVICE_TAG, ingress=ingress, egress_nat=is_fleet),
)

pulumi.export("mode", cfg.mode)
if is_fleet:
    fleet = Fleet(
        f"{prefix}-fleet",
        FleetArgs(
            config=cfg,
            subnet=network.subnet.id,
            service_account_email=identity.email,
            service_account_member=identity.member,
        ),
    )
    pulumi.export("ip", fleet.ip)
    pulumi.export("url", fleet.ip.apply(lambda ip: f"http://{ip}"))
    pulumi.export("groupName", fleet.group_name)
    pulumi.export("region", cfg.region)
else:
    vm = GpuVm(
        f"{prefix}-vm",
        GpuVmArgs(config=cfg, subnet=network.subnet.id, service_account_email=identity.email),
    )
    pulumi.export("ip", vm.ip)
    pulumi.export("url", vm.ip.apply(lambda ip: f"http://{ip}"))
    pulumi.export(
        "sshCommand",
        vm.instance_name.apply(
            lambda name: (
                f"gcloud compute ssh {name} --zone {cfg.zone} --project {cfg.project} --tunnel-through-iap"
            )
        ),
    )
    pulumi.export("instanceName", vm.instance_name)
    pulumi.export("zone", cfg.zone)
