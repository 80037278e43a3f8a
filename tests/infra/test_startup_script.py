"""infra/startup.sh: lint, and real runs against fake system commands.

The script is run by the real bash; only the commands that need a GPU VM (curl to the metadata
server and Secret Manager, docker, nvidia-smi, apt/dpkg, systemctl, nvidia-ctk) are stand-ins on
PATH that record their arguments. Paths the script writes to are pointed into tmp_path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from service.settings import Settings

from .conftest import infra_module

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "startup.sh"
API_KEY = "sk-test-4f9a"  # the value the fake Secret Manager returns
TOKEN = "ya29.fake-access-token"
IMAGE = "myuser/whisper-gpu:1a2b3c4"

FAKE_CURL = r"""#!/usr/bin/env python3
# Fake curl: the GCE metadata server, Secret Manager and downloads, from files under $FAKE.
import base64, json, os, pathlib, sys
fake = pathlib.Path(os.environ["FAKE"])
with open(fake / "calls.log", "a") as log:
    log.write("curl " + " ".join(sys.argv[1:]) + "\n")
args = sys.argv[1:]
url = next(a for a in args if a.startswith("http"))
out = args[args.index("-o") + 1] if "-o" in args else None
if "/guest-attributes/" in url:
    assert args[args.index("-X") + 1] == "PUT", args
    with open(fake / "guest-attributes.log", "a") as log:
        log.write(url.split("/guest-attributes/", 1)[1] + "=" + args[args.index("--data") + 1] + "\n")
elif "/attributes/" in url or url.endswith("/project/project-id"):
    value = fake / "metadata" / url.rsplit("/", 1)[1]
    if not value.exists():
        sys.exit(22)  # curl -f on a 404
    sys.stdout.write(value.read_text())
elif url.endswith("/service-accounts/default/token"):
    print(json.dumps({"access_token": os.environ["FAKE_TOKEN"], "expires_in": 3599}))
elif "/secrets/" in url:
    header = next(a for a in args if a.startswith("@"))
    seen = pathlib.Path(header[1:]).read_text()
    (fake / "auth-header-seen").write_text(seen)
    stored = fake / "secrets" / url.split("/secrets/", 1)[1].split("/", 1)[0]
    value = stored.read_text() if stored.exists() else os.environ["FAKE_API_KEY"]
    key = base64.b64encode(value.encode()).decode()
    print(json.dumps({"name": url, "payload": {"data": key}}))
elif url.endswith("/gpg") or url.endswith("/gpgkey"):  # apt repository keys
    pathlib.Path(out).write_text("fake key")
elif url.endswith("cuda_installer.pyz"):
    pathlib.Path(out).write_text(
        "import pathlib, sys\n"
        f"pathlib.Path({str(fake)!r}, 'driver-installed').touch()\n"
        f"open({str(fake / 'calls.log')!r}, 'a').write('installer ' + ' '.join(sys.argv[1:]) + '\\n')\n"
        "import os\n"
        f"pathlib.Path({str(fake)!r}, 'installer-apt-config').write_text(os.environ.get('APT_CONFIG', ''))\n"
    )
else:
    sys.exit(f"fake curl: unexpected URL {url}")
"""

FAKE_DOCKER = r"""#!/usr/bin/env bash
# Fake docker: records calls; `run` snapshots the env file; `inspect` answers from $FAKE/container.
echo "docker $*" >>"$FAKE/calls.log"
if [ "$1" = "--config" ]; then echo "$2" >>"$FAKE/docker-configs"; fi
case "${*}" in
  *" login "*) cat >"$FAKE/login-stdin"; ls -ld "$2" >"$FAKE/login-config-dir" ;;
esac
[ "$1" = "--config" ] && shift 2
case "$1" in
  inspect) [ -f "$FAKE/container" ] && cat "$FAKE/container" || exit 1 ;;
  run)
    while [ $# -gt 0 ]; do
      case "$1" in --env-file) cp "$2" "$FAKE/env-at-run"; shift ;; esac
      last="$1"; shift
    done
    echo "$last true" >"$FAKE/container" ;;
esac
"""

FAKE_NVIDIA_SMI = """#!/usr/bin/env bash
echo "nvidia-smi $*" >>"$FAKE/calls.log"
[ -f "$FAKE/driver-installed" ] || exit 9
case "$*" in *driver_version*) cat "$FAKE/driver-version" 2>/dev/null || echo 580.82.07 ;; esac
"""

FAKE_NVIDIA_CTK = """#!/usr/bin/env bash
echo "nvidia-ctk $*" >>"$FAKE/calls.log"
if [ "$1 $2" = "runtime configure" ]; then
  echo '{"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}' >"$DOCKER_DAEMON_JSON"
fi
"""

FAKE_DPKG_QUERY = """#!/usr/bin/env bash
# Fake dpkg-query -W -f=... PACKAGE: every package is installed except those listed in $FAKE/missing-packages.
echo "dpkg-query $*" >>"$FAKE/calls.log"
package="${*: -1}"
if grep -qx "$package" "$FAKE/missing-packages" 2>/dev/null; then
  echo "dpkg-query: no packages found matching $package" >&2
  exit 1
fi
echo "install ok installed"
"""

RECORD_ONLY = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >>"$FAKE/calls.log"
"""


@pytest.fixture
def host(tmp_path: Path):
    """A fake GPU host: stand-in commands on PATH and a metadata server fed from files."""
    fake = tmp_path / "fake"
    bin_dir = tmp_path / "bin"
    (fake / "metadata").mkdir(parents=True)
    bin_dir.mkdir()
    stubs = {
        "curl": FAKE_CURL,
        "docker": FAKE_DOCKER,
        "nvidia-smi": FAKE_NVIDIA_SMI,
        "nvidia-ctk": FAKE_NVIDIA_CTK,
        "dpkg-query": FAKE_DPKG_QUERY,
        **{name: RECORD_ONLY for name in ("apt-get", "systemctl", "install", "dpkg")},
    }
    for name, body in stubs.items():
        path = bin_dir / name
        path.write_text(body)
        path.chmod(0o755)
    (fake / "metadata" / "project-id").write_text("demo-project")
    for apt_dir in ("keyrings", "sources.list.d"):  # exist on Ubuntu; `install -d` is a stub here
        (tmp_path / apt_dir).mkdir()
    (fake / "driver-installed").touch()
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text('{"runtimes": {"nvidia": {}}}')
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE": str(fake),
        "FAKE_TOKEN": TOKEN,
        "FAKE_API_KEY": API_KEY,
        "INSTALLER_DIR": str(tmp_path / "installer"),
        "APT_KEYRINGS": str(tmp_path / "keyrings"),
        "APT_SOURCES": str(tmp_path / "sources.list.d"),
        "RUN_DIR": str(tmp_path / "run"),
        "READY_FILE": str(tmp_path / "host-ready"),
        "DOCKER_DAEMON_JSON": str(daemon_json),
        "DEV_CHAR_RULE": str(tmp_path / "udev" / "71-nvidia-dev-char.rules"),
        "METADATA_URL": "http://metadata.invalid/computeMetadata/v1",
        "SECRETS_URL": "https://secretmanager.invalid/v1",
        "TEXTFILE_DIR": str(tmp_path / "textfile"),
        "SYSTEMD_DIR": str(tmp_path / "systemd"),
        "IDLE_STOP_DIR": str(tmp_path / "idle-stop"),
    }
    (tmp_path / "systemd").mkdir()
    return FakeHost(fake, env, tmp_path)


class FakeHost:
    def __init__(self, fake: Path, env: dict[str, str], root: Path):
        self.fake, self.env, self.root = fake, env, root

    def set_metadata(self, **attributes: str) -> None:
        for key, value in attributes.items():
            (self.fake / "metadata" / key.replace("_", "-")).write_text(value)

    def lack_packages(self, *packages: str) -> None:
        (self.fake / "missing-packages").write_text("".join(f"{p}\n" for p in packages))

    def boot(self, ok: bool = True) -> subprocess.CompletedProcess:
        script = self.root / "startup-script"  # as the stack writes it into the VM's metadata
        script.write_text(infra_module("host").startup_script())
        result = subprocess.run(
            ["bash", str(script)], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert (result.returncode == 0) == ok, result.stdout + result.stderr
        return result

    def guest_states(self) -> list[str]:
        log = self.fake / "guest-attributes.log"
        return log.read_text().splitlines() if log.exists() else []

    def calls(self, command: str = "") -> list[str]:
        log = self.fake / "calls.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [line for line in lines if line.startswith(command)]


def test_script_parses_with_bash_n():
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_script_passes_shellcheck():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck missing: run scripts/system-deps.sh test"
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_single_vm_host_is_prepared_but_runs_no_service(host):
    result = host.boot()
    assert "no docker-image attribute" in result.stdout
    assert host.calls("docker run") == []
    assert host.calls("apt-get") == []  # everything already there: nothing installed


def test_fleet_host_starts_the_image_on_port_80_with_gpus(host):
    host.set_metadata(docker_image=IMAGE, api_key_secret="whisper-dev-key")
    host.boot()
    (run,) = host.calls("docker run")
    args = run.split()
    assert args[-1] == IMAGE
    assert "--gpus all" in run
    assert args[args.index("-p") + 1] == f"80:{Settings().port}"  # the service's own default, filled in
    assert args[args.index("--restart") + 1] == "unless-stopped"
    env = (host.fake / "env-at-run").read_text().splitlines()
    stop_timeout = int(args[args.index("--stop-timeout") + 1])
    # gunicorn drains before docker kills it; the model and the rest come baked in the image
    assert env == [f"GRACEFUL_TIMEOUT={stop_timeout - 5}", f"API_KEYS={API_KEY}"]
    assert "-v" not in args and "--volume" not in args  # a mount would hide the baked model
    assert host.calls(f"docker pull -q {IMAGE}")


def test_api_key_and_token_never_appear_in_arguments_or_output_and_leave_no_file(host):
    host.set_metadata(docker_image=IMAGE, api_key_secret="whisper-dev-key")
    result = host.boot()
    calls = "\n".join(host.calls())
    assert API_KEY not in calls and API_KEY not in result.stdout + result.stderr
    assert TOKEN not in calls and TOKEN not in result.stdout + result.stderr
    assert (host.fake / "auth-header-seen").read_text().strip() == f"Authorization: Bearer {TOKEN}"
    secret_call = next(c for c in host.calls("curl") if "/secrets/" in c)
    assert "/projects/demo-project/secrets/whisper-dev-key/versions/latest:access" in secret_call
    leftovers = [p for p in (host.root / "run").iterdir()]
    assert leftovers == [], f"secret material left behind: {leftovers}"


def test_without_a_secret_the_service_runs_without_api_keys(host):
    host.set_metadata(docker_image=IMAGE)
    host.boot()
    env = (host.fake / "env-at-run").read_text()
    assert "API_KEYS" not in env
    assert env.splitlines() == ["GRACEFUL_TIMEOUT=20"]
    assert not any("/secrets/" in c for c in host.calls("curl"))


def test_second_boot_changes_nothing(host):
    host.set_metadata(docker_image=IMAGE, api_key_secret="whisper-dev-key")
    host.boot()
    before = len(host.calls())
    second = host.boot()
    new_calls = host.calls()[before:]
    assert "already runs" in second.stdout
    changes = [c for c in new_calls if not c.startswith("systemctl cat ")]  # `cat` only reads a unit
    assert not [c for c in changes if c.split()[0] in ("apt-get", "systemctl", "nvidia-ctk")]
    assert not [c for c in new_calls if c.startswith(("docker run", "docker pull", "docker rm"))]


def test_a_new_image_replaces_the_running_container(host):
    host.set_metadata(docker_image=IMAGE)
    host.boot()
    host.set_metadata(docker_image="myuser/whisper-gpu:5e6f7a8")
    host.boot()
    runs = host.calls("docker run")
    assert [r.split()[-1] for r in runs] == [IMAGE, "myuser/whisper-gpu:5e6f7a8"]
    assert host.calls("docker rm -f whisper")


def test_docker_gets_the_nvidia_runtime_once(host):
    Path(host.env["DOCKER_DAEMON_JSON"]).write_text("{}")
    host.boot()
    assert host.calls("nvidia-ctk runtime") == [
        f"nvidia-ctk runtime configure --runtime=docker --config={host.env['DOCKER_DAEMON_JSON']}"
    ]
    assert host.calls("systemctl restart") == ["systemctl restart docker"]
    host.boot()
    assert len(host.calls("nvidia-ctk runtime")) == 1
    assert len(host.calls("systemctl restart")) == 1


def test_missing_driver_is_installed_with_the_pinned_installer_and_branch_once(host):
    (host.fake / "driver-installed").unlink()
    host.boot()
    assert host.calls("installer") == [
        "installer install_driver --installation-mode=binary --installation-branch=lts"
    ]
    downloads = [c for c in host.calls("curl") if "cuda_installer.pyz" in c]
    assert len(downloads) == 1
    assert (
        "https://github.com/GoogleCloudPlatform/compute-gpu-installation/releases/download/"
        "cuda-installer-v1.7.1/cuda_installer.pyz" in downloads[0]
    )
    assert "latest" not in downloads[0]
    host.boot()  # the driver answers now: no second install
    assert len(host.calls("installer")) == 1


def test_the_driver_installer_waits_for_the_apt_lock_like_the_script_does(host):
    (host.fake / "driver-installed").unlink()
    host.boot()
    config = (host.fake / "installer-apt-config").read_text()
    assert config, "the installer ran without APT_CONFIG: its apt-get calls fail at once on a held lock"
    # apt itself reads the file the installer's apt-get calls get.
    read = subprocess.run(
        ["apt-config", "shell", "T", "DPkg::Lock::Timeout"],
        env={**os.environ, "APT_CONFIG": config},
        capture_output=True,
        text=True,
        check=True,
    )
    assert read.stdout.strip() == "T='600'"


def test_nvidias_dev_char_rule_is_installed_and_applied_once(host):
    # NVIDIA's fix for containers losing the GPU after `systemctl daemon-reload` (toolkit issue #48).
    host.boot()
    rule = Path(host.env["DEV_CHAR_RULE"]).read_text()
    assert rule == (
        'ACTION=="add", DEVPATH=="/bus/pci/drivers/nvidia", '
        'RUN+="/usr/bin/nvidia-ctk system create-dev-char-symlinks --create-all"\n'
    )
    links = ["nvidia-ctk system create-dev-char-symlinks --create-all"]
    assert host.calls("nvidia-ctk system") == links  # this boot's links: the driver is bound already
    host.boot()
    assert host.calls("nvidia-ctk system") == links  # the rule is there: nothing again


def test_a_cpu_only_host_gets_docker_but_no_nvidia_toolkit_or_driver(host):
    (host.fake / "driver-installed").unlink()  # no driver, and none will be installed
    host.lack_packages("nvidia-container-toolkit")
    host.set_metadata(whisper_gpu="none")  # the stack's attribute for gpuType: none (infra/host.py)
    result = host.boot()
    assert "CPU-only host" in result.stdout
    assert host.guest_states() == ["whisper/state=booting", "whisper/state=ready"]
    assert not host.calls("installer") and not host.calls("nvidia-") and not host.calls("apt-get")
    assert not Path(host.env["DEV_CHAR_RULE"]).exists()


def test_the_host_reports_booting_then_ready_and_leaves_a_marker(host):
    host.boot()
    assert host.guest_states() == ["whisper/state=booting", "whisper/state=ready"]
    assert (host.root / "host-ready").exists()


def test_a_driver_older_than_580_stops_the_script_before_ready(host):
    (host.fake / "driver-version").write_text("570.133.20\n")
    result = host.boot(ok=False)
    assert "driver 570.133.20 is older than 580" in result.stdout
    assert host.guest_states() == ["whisper/state=booting"]
    assert not (host.root / "host-ready").exists()


DOCKER_PACKAGES = [
    "docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin",
]  # fmt: skip


def test_a_host_without_docker_gets_the_engine_compose_and_buildx(host):
    # docker-compose-plugin is only a Recommends of docker-ce, which --no-install-recommends skips, and the
    # monitoring role runs `docker compose`: the script names every package of Docker's own install line
    # (https://docs.docker.com/engine/install/ubuntu/).
    host.lack_packages(*DOCKER_PACKAGES)
    host.boot()
    (install,) = [c for c in host.calls("apt-get") if " install " in f" {c} "]
    assert install.split()[-len(DOCKER_PACKAGES) :] == DOCKER_PACKAGES
    assert "--no-install-recommends" in install
    sources = (host.root / "sources.list.d" / "docker.list").read_text()
    assert "https://download.docker.com/linux/" in sources


def test_a_host_from_the_old_script_gets_compose_and_buildx_on_its_next_boot(host):
    # The old script installed docker-ce, docker-ce-cli and containerd.io only, and skipped Docker whenever a
    # `docker` command existed (here: the stub on PATH).
    host.lack_packages("docker-buildx-plugin", "docker-compose-plugin")
    host.boot()
    installs = [c for c in host.calls("apt-get") if " install " in f" {c} "]
    assert len(installs) == 1 and installs[0].split()[-len(DOCKER_PACKAGES) :] == DOCKER_PACKAGES
    (host.fake / "missing-packages").unlink()
    before = len(host.calls("apt-get"))
    host.boot()  # all there now: nothing more to install
    assert len(host.calls("apt-get")) == before


DOCKERHUB_TOKEN = "dckr_pat_fake-pull-token"


def test_a_fleet_host_logs_in_to_docker_hub_before_the_pull_when_a_token_secret_is_set(host):
    # Docker Hub counts anonymous pulls per IP, and fleet VMs share Cloud NAT's addresses.
    (host.fake / "secrets").mkdir()
    (host.fake / "secrets" / "whisper-dev-dockerhub-token").write_text(DOCKERHUB_TOKEN)
    host.set_metadata(
        docker_image=IMAGE,
        api_key_secret="whisper-dev-key",
        dockerhub_username="alice",
        dockerhub_token_secret="whisper-dev-dockerhub-token",
    )
    result = host.boot()
    docker = host.calls("docker")
    login = next(i for i, c in enumerate(docker) if " login " in c)
    pull = next(i for i, c in enumerate(docker) if " pull " in c)
    assert login < pull
    assert docker[login].split()[3:] == ["login", "--username", "alice", "--password-stdin"]
    assert (host.fake / "login-stdin").read_text().strip() == DOCKERHUB_TOKEN
    (config,) = set((host.fake / "docker-configs").read_text().split())  # login and pull share one config
    assert docker[pull].split()[1:3] == ["--config", config]
    assert (host.fake / "login-config-dir").read_text().startswith("drwx------")
    assert not Path(config).exists()  # the credentials go with the pull
    everything = "\n".join(host.calls()) + result.stdout + result.stderr
    assert DOCKERHUB_TOKEN not in everything
    env = (host.fake / "env-at-run").read_text()
    assert DOCKERHUB_TOKEN not in env and env.splitlines()[-1] == f"API_KEYS={API_KEY}"


# ---------------------------------------------------------------- price metric and idle watch (single VM)

PRICE_LABELS = (
    'machine_type="n1-standard-8",gpu_type="nvidia-tesla-t4",gpu_count="1",'
    'provisioning="on-demand",basis="list"'
)


def test_the_stack_price_becomes_a_metric_for_node_exporter(host):
    host.set_metadata(whisper_price_per_hour="0.7487", whisper_price_labels=PRICE_LABELS)
    host.boot()
    text = (host.root / "textfile" / "whisper_price.prom").read_text()
    assert f"vm_price_dollars_per_hour{{{PRICE_LABELS}}} 0.7487\n" in text
    assert "# TYPE vm_price_dollars_per_hour gauge" in text
    assert not (host.root / "textfile" / "whisper_price.prom.tmp").exists()


def test_a_price_removed_from_the_stack_removes_the_metric(host):
    host.set_metadata(whisper_price_per_hour="0.7487", whisper_price_labels=PRICE_LABELS)
    host.boot()
    (host.fake / "metadata" / "whisper-price-per-hour").unlink()
    host.boot()
    assert not (host.root / "textfile" / "whisper_price.prom").exists()


def test_idle_stop_minutes_installs_the_watch_as_a_timer(host):
    script = (ROOT / "infra" / "idle_stop.py").read_text()
    host.set_metadata(whisper_idle_stop_minutes="45", whisper_idle_stop_script=script)
    result = host.boot()
    assert (host.root / "idle-stop" / "idle_stop.py").read_text() == script
    service = (host.root / "systemd" / "whisper-idle-stop.service").read_text()
    assert f"ExecStart=/usr/bin/python3 {host.root}/idle-stop/idle_stop.py" in service
    timer = (host.root / "systemd" / "whisper-idle-stop.timer").read_text()
    assert "OnUnitActiveSec=1min" in timer
    assert "systemctl enable --now whisper-idle-stop.timer" in host.calls("systemctl")
    assert "stops itself after 45 minutes" in result.stdout
    # Only after the host is ready: the driver install reboots, and the watch's clock starts at each boot.
    assert host.guest_states()[-1] == "whisper/state=ready"


def test_without_idle_stop_minutes_the_watch_is_removed(host):
    host.set_metadata(whisper_idle_stop_minutes="45", whisper_idle_stop_script="print()")
    host.boot()
    (host.fake / "metadata" / "whisper-idle-stop-minutes").unlink()
    host.boot()
    assert not (host.root / "systemd" / "whisper-idle-stop.timer").exists()
    assert "systemctl disable --now whisper-idle-stop.timer" in host.calls("systemctl")


def test_no_idle_watch_without_the_setting(host):
    host.boot()
    assert not (host.root / "systemd" / "whisper-idle-stop.timer").exists()
    assert not [c for c in host.calls("systemctl") if "whisper-idle-stop" in c]
