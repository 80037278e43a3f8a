"""A fake GPU host for infra/startup.sh: the script is run by the real bash; only the commands that need a
GPU VM (curl to the metadata server and Secret Manager, docker, nvidia-smi, apt/dpkg, systemctl, nvidia-ctk)
are stand-ins on PATH that record their arguments, and the paths the script writes to are pointed into the
test's directory. tests/infra/conftest.py's `host` fixture gives each test one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .conftest import infra_module

API_KEY = "sk-test-4f9a"  # the value the fake Secret Manager returns
TOKEN = "ya29.fake-access-token"

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


def install_stubs(bin_dir: Path) -> None:
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


def script_env(tmp_path: Path, bin_dir: Path, fake: Path) -> dict[str, str]:
    """The stand-ins first on PATH, what they answer with, and every path the script writes under tmp_path."""
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE": str(fake),
        "FAKE_TOKEN": TOKEN,
        "FAKE_API_KEY": API_KEY,
        "INSTALLER_DIR": str(tmp_path / "installer"),
        "APT_KEYRINGS": str(tmp_path / "keyrings"),
        "APT_SOURCES": str(tmp_path / "sources.list.d"),
        "RUN_DIR": str(tmp_path / "run"),
        "READY_FILE": str(tmp_path / "host-ready"),
        "DOCKER_DAEMON_JSON": str(tmp_path / "daemon.json"),
        "DEV_CHAR_RULE": str(tmp_path / "udev" / "71-nvidia-dev-char.rules"),
        "METADATA_URL": "http://metadata.invalid/computeMetadata/v1",
        "SECRETS_URL": "https://secretmanager.invalid/v1",
        "TEXTFILE_DIR": str(tmp_path / "textfile"),
        "SYSTEMD_DIR": str(tmp_path / "systemd"),
        "IDLE_STOP_DIR": str(tmp_path / "idle-stop"),
    }


def fake_host(tmp_path: Path) -> FakeHost:
    """A fake GPU host: stand-in commands on PATH and a metadata server fed from files."""
    fake = tmp_path / "fake"
    bin_dir = tmp_path / "bin"
    (fake / "metadata").mkdir(parents=True)
    bin_dir.mkdir()
    install_stubs(bin_dir)
    (fake / "metadata" / "project-id").write_text("demo-project")
    for apt_dir in ("keyrings", "sources.list.d"):  # exist on Ubuntu; `install -d` is a stub here
        (tmp_path / apt_dir).mkdir()
    (fake / "driver-installed").touch()
    (tmp_path / "daemon.json").write_text('{"runtimes": {"nvidia": {}}}')
    env = script_env(tmp_path, bin_dir, fake)
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
