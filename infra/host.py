"""The GPU host's shape, shared by the single VM and the fleet's instance template.

Both declare the same GPUs, scheduling, Shielded VM settings, scopes and startup script, so a
fleet instance is the single VM copied N times. Pulumi's Instance and InstanceTemplate take
different Args classes with the same fields, hence the class parameter.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from service.settings import STOP_MARGIN_SECONDS, Settings  # the editable install (make install) provides it

from config import StackConfig

sys.path.append(str(Path(__file__).resolve().parents[1]))  # the repo root: deploy/ is a package there
from deploy import paths  # noqa: E402 (after the path it needs)
from deploy.config import DeployConfig, image_facts  # noqa: E402

IDLE_STOP_SCRIPT = Path(__file__).with_name("idle_stop.py")
SERVICE_TAG = "whisper-gpu"  # network tag: every firewall rule targets this tag, every VM has it
STARTUP_SCRIPT = Path(__file__).with_name("startup.sh")
# Seconds docker gives the container to stop: a spot preemption leaves about 30 before the power goes.
# Rolling updates and scale-in drain through the load balancer first (connection draining, fleet.py).
STOP_TIMEOUT_SEC = 25
GRACEFUL_TIMEOUT_SEC = STOP_TIMEOUT_SEC - STOP_MARGIN_SECONDS  # the containers' GRACEFUL_TIMEOUT: 20 s
# CUDA 13.0's minimum driver branch (the image is CUDA 13): the Dockerfile's ARG owns it; startup.sh checks it
DRIVER_MIN_MAJOR = image_facts()["MIN_DRIVER_MAJOR"]

# Write logs and metrics, read Cloud Storage, nothing else. The identity's IAM roles are the real limit;
# the scopes keep a stolen token from reaching any other API even if a role is added later by hand.
# Storage read: Google's driver installer (startup.sh) copies the driver from its public gs:// bucket with
# `gsutil cp` whenever gsutil exists, which Ubuntu's GCE images ship (cuda_installer's download_file,
# https://github.com/GoogleCloudPlatform/compute-gpu-installation/blob/main/linux/cuda_installer/os_installers/__init__.py);
# without a storage scope that copy is refused and the driver never installs. The scope rather than hiding
# gsutil from the installer (a PATH trick that depends on where the image puts gsutil and on the installer's
# internals): the account holds no Storage role, so it reads only public objects such as Google's installer
# files (https://cloud.google.com/storage/docs/oauth-scopes: read-only allows reading data, nothing else).
STORAGE_READ_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
BASE_SCOPES = (
    STORAGE_READ_SCOPE,
    "https://www.googleapis.com/auth/logging.write",
    "https://www.googleapis.com/auth/monitoring.write",
)
# Secret Manager publishes no narrower scope; IAM limits the account to one secret (fleet.py).
SECRET_SCOPE = "https://www.googleapis.com/auth/cloud-platform"  # noqa: S105 (a scope URL)


# Idle stop (single VM): the one permission its custom role holds, and the scope its API call needs. Compute
# Engine publishes no narrower scope that can stop a VM (compute.readonly cannot); the role is the limit.
STOP_SELF_PERMISSIONS = ("compute.instances.stop",)
COMPUTE_SCOPE = "https://www.googleapis.com/auth/compute"


def stop_self_role_id(cfg: StackConfig) -> str:
    """A custom role id per stack (letters, digits, _ and . only): whisper_dev_stop_self."""
    return f"{cfg.name_prefix.replace('-', '_')}_stop_self"


def vm_scopes(cfg: StackConfig) -> list[str]:
    return [*BASE_SCOPES, COMPUTE_SCOPE] if cfg.idle_stop_minutes else list(BASE_SCOPES)


def vm_metadata(cfg: StackConfig) -> dict[str, str]:
    """The single VM's own attributes: its price (startup.sh writes it for Prometheus) and the idle watch."""
    extra: dict[str, str] = {}
    if not cfg.has_gpu:  # startup.sh then installs no toolkit and no driver
        extra["whisper-gpu"] = "none"
    if cfg.price is not None:
        extra["whisper-price-per-hour"] = f"{cfg.price.per_hour:g}"
        extra["whisper-price-labels"] = price_labels(cfg)
    if cfg.idle_stop_minutes:
        extra["whisper-idle-stop-minutes"] = str(cfg.idle_stop_minutes)
        extra["whisper-idle-stop-script"] = idle_stop_script()
    return extra


def price_labels(cfg: StackConfig) -> str:
    """The price metric's labels, in Prometheus' text format (startup.sh writes them as they are)."""
    assert cfg.price is not None
    labels = {
        "machine_type": cfg.machine_type,
        "gpu_type": cfg.gpu_type or "none",
        "gpu_count": str(cfg.gpu_count),
        "provisioning": cfg.price.provisioning,
        "basis": cfg.price.basis,
    }
    return ",".join(f'{key}="{value}"' for key, value in labels.items())


def startup_script() -> str:
    """startup.sh as the VM runs it, its facts filled in from their owners rather than copied into it: the
    container's port is the service's own default (the image sets no PORT), the stop timeouts and the
    minimum driver are this module's, the host's paths deploy/paths.py's."""
    return filled(
        STARTUP_SCRIPT,
        SERVICE_PORT=Settings().port,
        STOP_TIMEOUT=STOP_TIMEOUT_SEC,
        GRACEFUL_TIMEOUT=GRACEFUL_TIMEOUT_SEC,
        DRIVER_MIN_MAJOR=DRIVER_MIN_MAJOR,
        RUN_DIR=paths.RUN_DIR,
        READY_FILE=paths.READY_FILE,
        TEXTFILE_DIR=paths.TEXTFILE_DIR,
    )


def idle_stop_script() -> str:
    """idle_stop.py as the VM runs it: the blue and green metrics ports where `fab deploy` publishes them
    (the deploy's knobs, DEPLOY_BLUE_METRICS_PORT and DEPLOY_GREEN_METRICS_PORT, read as it reads them)."""
    cfg = DeployConfig.from_env()
    return filled(
        IDLE_STOP_SCRIPT,
        BLUE_METRICS_PORT=cfg.blue.metrics_port,
        GREEN_METRICS_PORT=cfg.green.metrics_port,
        RUN_DIR=paths.RUN_DIR,
    )


def filled(path: Path, **values: object) -> str:
    """The file's text with each @NAME@ replaced by its value."""
    text = path.read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace(f"@{name}@", str(value))
    return text


def metadata(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """`startup-script` in metadata, not `metadata_startup_script`: that field recreates the VM
    on every edit, while a metadata change is applied in place and runs at the next boot."""
    # Guest attributes: the startup script reports whisper/state there (deploy/stack.py waits for it).
    return {
        "startup-script": startup_script(),
        "enable-oslogin": "TRUE",
        "enable-guest-attributes": "TRUE",
        **(extra or {}),
    }


def accelerators(cfg: StackConfig, args_cls: type) -> list[Any] | None:
    """Guest accelerators only where GPUs are attached (n1); g2/a2/a3 machine types carry theirs
    and declaring them there shows a diff on every `pulumi up`."""
    if not cfg.attaches_gpus:
        return None
    return [args_cls(type=cfg.gpu_type, count=cfg.gpu_count)]


def scheduling(cfg: StackConfig, args_cls: type, spot_termination: str) -> Any:
    """GPUs cannot live-migrate, so host maintenance stops a GPU VM (TERMINATE) in every mode; a CPU-only VM
    migrates live (MIGRATE, Google's default), unless it is Spot, which must TERMINATE."""
    if cfg.spot:
        return args_cls(
            provisioning_model="SPOT",
            preemptible=True,
            automatic_restart=False,
            on_host_maintenance="TERMINATE",
            instance_termination_action=spot_termination,
        )
    return args_cls(
        provisioning_model="STANDARD",
        preemptible=False,
        automatic_restart=True,
        on_host_maintenance="TERMINATE" if cfg.has_gpu else "MIGRATE",
    )


def shielded(args_cls: type) -> Any:
    """vTPM and integrity monitoring on. Secure Boot off: the NVIDIA kernel module is built on
    the VM at first boot and is not signed with a key the firmware trusts, so it would not load."""
    return args_cls(enable_secure_boot=False, enable_vtpm=True, enable_integrity_monitoring=True)
