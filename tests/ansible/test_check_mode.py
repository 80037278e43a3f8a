"""What cannot run here runs in --check mode: the NVIDIA driver, the container toolkit and Docker's own
apt repository (no GPU, no init system). The run goes through every GPU task on top of the converged
sandbox, reports what it would change, and must write nothing.

get_url asks the server even in check mode, and NVIDIA's and Docker's servers are out of reach here: a
loopback server stands in for them (the narrowest seam), and the paths it was asked for prove that the
roles build the download URLs the vendors publish."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .conftest import run_playbook

# What a real GPU run would create; check mode must leave each exactly as it found it.
HOST_FILES = (
    Path("/etc/apt/sources.list.d/docker.list"),
    Path("/etc/apt/sources.list.d/nvidia-container-toolkit.list"),
    Path("/etc/apt/keyrings/docker.asc"),
    Path("/etc/apt/keyrings/nvidia-container-toolkit.asc"),
    Path("/var/cache/cuda-keyring_1.1-1_all.deb"),
)
# The download paths on the vendors' servers (Debian 12, x86_64), as their install guides give them.
VENDOR_PATHS = {
    "/linux/debian/gpg",  # download.docker.com
    "/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb",  # developer.download.nvidia.com
    "/libnvidia-container/gpgkey",  # nvidia.github.io
}
GPU_VARS = {
    "whisper_gpu_enabled": True,
    "docker_install_engine": True,
    # This machine's kernel is not Debian's, so its own headers package does not exist here.
    "nvidia_driver_headers_packages": ["linux-headers-amd64"],
}
WOULD_CHANGE = (
    "nvidia_driver : Install the kernel headers the driver module builds against",
    "nvidia_driver : Download NVIDIA's CUDA repository keyring package",
    "docker : Download Docker's apt signing key",
    "docker : Add Docker's apt repository",
    "nvidia_container_toolkit : Download NVIDIA's container toolkit signing key",
    "nvidia_container_toolkit : Add NVIDIA's container toolkit apt repository",
)


class VendorServer(BaseHTTPRequestHandler):
    """Answers every GET and HEAD with a few bytes and records the path."""

    requested: set[str] = set()

    def do_GET(self):  # noqa: N802 (the http.server API)
        self.requested.add(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "4")
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(b"test")

    do_HEAD = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def vendor_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), VendorServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def check_run(sandbox, second_run, vendor_url):
    before = {path: path.exists() for path in HOST_FILES}
    urls = {
        "docker_apt_repository_url": f"{vendor_url}/linux/debian",
        "nvidia_driver_cuda_repo_url": f"{vendor_url}/compute/cuda/repos",
        "nvidia_container_toolkit_repo_url": f"{vendor_url}/libnvidia-container/stable/deb",
    }
    return run_playbook(sandbox, "--check", "--diff", extra_vars=GPU_VARS | urls), before


def test_check_run_succeeds(check_run):
    result, _ = check_run
    assert result.returncode == 0, result.output[-4000:]


@pytest.mark.parametrize("task", WOULD_CHANGE)
def test_check_run_reports_the_gpu_host_changes(check_run, task):
    result, _ = check_run
    assert result.tasks.get(task) == {"changed"}, f"{task}: {result.tasks.get(task)}"


def test_roles_ask_for_the_vendors_download_paths(check_run):
    assert VendorServer.requested == VENDOR_PATHS


def test_apt_sources_agree_with_startup_sh(check_run, vendor_url):
    # infra/startup.sh writes the same two file names, so each repository is listed once whoever wrote
    # it last (apt refuses one repository with two keys: "Conflicting values set for option Signed-By");
    # the Docker line is even character for character the script's.
    result, _ = check_run
    docker = (
        f"deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] {vendor_url}/linux/debian bookworm stable"
    )
    toolkit = (
        "deb [signed-by=/etc/apt/keyrings/nvidia-container-toolkit.asc] "
        f"{vendor_url}/libnvidia-container/stable/deb/$(ARCH) /"
    )
    added = [line[1:] for line in result.output.splitlines() if line.startswith("+deb ")]
    assert added == [docker, toolkit], added


def test_check_run_changes_nothing_else(check_run):
    result, _ = check_run
    assert sorted(result.changed_tasks()) == sorted(WOULD_CHANGE)


def test_present_nvidia_runtime_is_not_configured_again(check_run):
    result, _ = check_run
    assert result.tasks["nvidia_container_toolkit : Register the nvidia runtime with Docker"] == {"skipping"}


def test_check_run_writes_nothing(check_run):
    _, before = check_run
    assert {path: path.exists() for path in HOST_FILES} == before


def test_gpu_detection_follows_the_pci_bus(sandbox):
    vendors = [path.read_text().strip() for path in Path("/sys/bus/pci/devices").glob("*/vendor")]
    expected = "0x10de" in vendors or Path("/usr/bin/nvidia-smi").exists()
    result = run_playbook(sandbox, "--check", "--tags", "gpu_detect", sandbox_vars=False)
    assert result.returncode == 0, result.output[-4000:]
    assert f"msg: 'GPU work: {'on' if expected else 'off'}'" in result.output, result.output[-2000:]
