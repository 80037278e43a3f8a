"""ansible/site.yml runs for real against this machine, twice: the first run must succeed and leave
each role's effects in place, valid by each daemon's own checker; the second must change nothing."""

from __future__ import annotations

import grp
import json
import pwd
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy import monitoring
from deploy.config import DeployConfig

from .conftest import (
    ANSIBLE_DIR,
    ROOT,
    SEEDED_DAEMON_JSON,
    STALE_RULE_FILE,
    TEST_USER,
)

CHRONY_DROPIN = Path("/etc/chrony/conf.d/whisper.conf")
MONITORING_DEFAULTS = ANSIBLE_DIR / "roles" / "monitoring" / "defaults" / "main.yml"


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def sshd_effective(config: Path) -> dict[str, str]:
    """`sshd -T`: the settings sshd would run with, lower-case keys."""
    done = run("/usr/sbin/sshd", "-T", "-f", str(config))
    assert done.returncode == 0, done.stderr
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)


def test_first_run_succeeds(first_run):
    assert first_run.returncode == 0, first_run.output[-4000:]
    assert first_run.recap["failed"] == 0 and first_run.recap["unreachable"] == 0


def test_second_run_changes_nothing(second_run):
    assert second_run.returncode == 0, second_run.output[-4000:]
    assert second_run.recap["changed"] == 0, f"changed on the second run: {second_run.changed_tasks()}"


def test_second_run_leaves_every_file_as_it_was(sandbox, second_run, converged_snapshot):
    after = {
        str(path.relative_to(sandbox.root)): path.read_bytes()
        for path in sorted(sandbox.home.rglob("*"))
        if path.is_file()
    }
    assert after == converged_snapshot


def test_gpu_and_service_tasks_were_switched_off(first_run):
    for task in (
        "nvidia_driver_check : Read the driver the startup script installed",
        "container_toolkit_check : Run nvidia-smi in a CUDA container",
        "base : Keep sshd running and enabled",
        "docker_config : Keep dockerd running and enabled",
        "monitoring : Bring the monitoring stack up",
    ):
        assert first_run.tasks[task] == {"skipping"}, task


# ---------------------------------------------------------------- base
@pytest.mark.parametrize("package", ["unattended-upgrades", "chrony"])
def test_base_packages_are_installed(first_run, package):
    done = run("dpkg-query", "-W", "-f=${Status}", package)
    assert done.stdout == "install ok installed"


def test_sshd_dropin_passes_sshd_own_check(sandbox, first_run):
    done = run("/usr/sbin/sshd", "-t", "-f", str(sandbox.sshd_dropin))
    assert done.returncode == 0, done.stderr


def test_sshd_allows_keys_only_and_keeps_root_key_login(sandbox, first_run):
    settings = sshd_effective(sandbox.sshd_dropin)
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["pubkeyauthentication"] == "yes"
    assert settings["permitrootlogin"] == "without-password"  # = prohibit-password


def test_sshd_dropin_wins_over_a_later_password_setting(sandbox, first_run, tmp_path):
    # Debian's sshd_config includes the drop-ins first and sshd keeps the first value it reads, so a
    # cloud image's own "PasswordAuthentication yes" further down must not switch passwords back on.
    main = tmp_path / "sshd_config"
    main.write_text(
        f"Include {sandbox.sshd_dropin.parent}/*.conf\nPasswordAuthentication yes\nPermitRootLogin yes\n"
    )
    settings = sshd_effective(main)
    assert settings["passwordauthentication"] == "no"
    assert settings["permitrootlogin"] == "without-password"


def test_unattended_upgrades_config_is_what_apt_reads(sandbox, first_run):
    dump = ""
    for name in ("20auto-upgrades", "52whisper-unattended-upgrades"):
        done = run("apt-config", "-c", str(sandbox.apt_conf_dir / name), "dump")
        assert done.returncode == 0, done.stderr
        dump += done.stdout
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    assert 'APT::Periodic::Update-Package-Lists "1";' in dump
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in dump
    for pattern in ("^nvidia-", "^libnvidia-", "^cuda-", "^docker-ce", "^containerd"):
        assert f'Unattended-Upgrade::Package-Blacklist:: "{pattern}";' in dump


def test_chrony_reads_the_metadata_server_from_the_dropin(first_run):
    done = run("chronyd", "-p", "-f", "/etc/chrony/chrony.conf")
    assert done.returncode == 0, done.stderr
    assert "server metadata.google.internal iburst prefer" in done.stdout.splitlines()
    assert CHRONY_DROPIN.read_text().startswith("# Ansible managed")


def test_service_account_matches_the_image_user(sandbox, first_run):
    account = pwd.getpwnam(TEST_USER)
    assert account.pw_uid == sandbox.uid
    assert grp.getgrgid(account.pw_gid).gr_name == TEST_USER
    assert grp.getgrgid(account.pw_gid).gr_gid == sandbox.uid
    assert account.pw_dir == str(sandbox.home)
    assert account.pw_shell == "/usr/sbin/nologin"
    for directory in (sandbox.home, sandbox.home / "models"):
        info = directory.stat()
        assert (info.st_uid, info.st_gid) == (sandbox.uid, sandbox.uid), directory
        assert stat.S_IMODE(info.st_mode) == 0o755, directory


# ---------------------------------------------------------------- docker
def test_daemon_json_merges_log_rotation_into_existing_settings(sandbox, first_run):
    settings = json.loads(sandbox.daemon_json.read_text())
    assert settings["runtimes"] == SEEDED_DAEMON_JSON["runtimes"]
    assert settings["log-driver"] == "json-file"
    assert settings["log-opts"] == {"compress": "true", "max-size": "50m", "max-file": "5"}


def test_service_account_may_use_docker(first_run):
    assert TEST_USER in grp.getgrnam("docker").gr_mem


# ---------------------------------------------------------------- monitoring
def test_monitoring_files_match_the_repo(sandbox, first_run):
    source = ROOT / "monitoring"
    entries = yaml.safe_load(MONITORING_DEFAULTS.read_text())["monitoring_files"]
    wanted = [
        path
        for entry in entries
        for path in ([source / entry] if (source / entry).is_file() else (source / entry).rglob("*"))
        if path.is_file()
    ]
    assert wanted, "monitoring/ holds no files to install"
    for path in wanted:
        installed = sandbox.monitoring_dir / path.relative_to(source)
        assert installed.read_bytes() == path.read_bytes(), installed
        assert stat.S_IMODE(installed.stat().st_mode) == 0o644, installed


def test_the_files_made_from_the_deploys_ports_are_installed_and_kept(sandbox, first_run, second_run):
    """compose's host.env and Prometheus' targets: what deploy.monitoring renders, never removed as stale."""
    generated = monitoring.host_files(DeployConfig())
    assert set(generated) >= {monitoring.HOST_ENV, "prometheus/targets/whisper.json"}
    for name, text in generated.items():
        assert (sandbox.monitoring_dir / name).read_text() == text, name


def test_every_bind_mount_of_the_compose_stack_is_installed(sandbox, first_run):
    compose = yaml.safe_load((sandbox.monitoring_dir / "compose.yml").read_text())
    sources = [
        volume.split(":", 1)[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    ]
    assert sources, "compose.yml mounts nothing from its folder"
    for source in sources:
        assert (sandbox.monitoring_dir / source).exists(), f"compose.yml mounts {source}, not installed"


def test_files_removed_from_the_repo_leave_the_host(sandbox, first_run):
    assert not (sandbox.monitoring_dir / STALE_RULE_FILE).exists()
    assert not (sandbox.monitoring_dir / "prometheus" / "tests").exists()


def test_installed_prometheus_config_passes_promtool(sandbox, first_run):
    done = run("promtool", "check", "config", str(sandbox.monitoring_dir / "prometheus/prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_grafana_password_is_generated_once_and_private(sandbox, first_run, second_run):
    env_file = sandbox.monitoring_dir / ".env"
    name, _, password = env_file.read_text().strip().partition("=")
    assert name == "GRAFANA_ADMIN_PASSWORD"
    assert len(password) >= 32 and password.replace("-", "").replace("_", "").isalnum()
    info = env_file.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == 0
    assert password not in first_run.output + second_run.output
