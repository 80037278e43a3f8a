"""The one SSH route to the single GPU VM: user, key and proxy, for Fabric, the Ansible inventory and the
dashboards tunnel alike.

The stack's `sshCommand` output says how the VM is reached. For `gcloud compute ssh NAME --tunnel-through-iap`
(the default: port 22 is open to Google's IAP range only, and the VM uses OS Login):
  - the login is the POSIX user OS Login derives from your Google account (alice@example.com ->
    alice_example_com), read with `gcloud compute os-login describe-profile`, not the laptop's $USER;
  - the key is gcloud's (~/.ssh/google_compute_engine); it is created when missing and added to your OS Login
    profile when the profile lacks it (`gcloud compute os-login ssh-keys add`), which is what a first
    `gcloud compute ssh` would have done;
  - the connection goes through `gcloud compute start-iap-tunnel NAME 22 --listen-on-stdin` as ProxyCommand.
A replaced VM keeps its static address but gets a new host key, which StrictHostKeyChecking=accept-new (and
Fabric) would refuse: when the stack's `instanceId` output changes, the address's known_hosts entry goes.
A plain `ssh [-p PORT] [-i KEY] [user@]host` command is used as it is. WHISPER_SSH_USER and WHISPER_SSH_KEY
override the user and the key (no gcloud call then for the user).

    python -m deploy.sshroute show                      # the route, one line per field
    python -m deploy.sshroute tunnel -L PORT:127.0.0.1:PORT ...   # exec ssh -N with the route's options
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from deploy.config import ConfigError, stack_outputs

GCLOUD_KEY = Path("~/.ssh/google_compute_engine")  # the key `gcloud compute ssh` makes and uses
KNOWN_HOSTS = Path(".ssh/known_hosts")  # under HOME: OpenSSH's default, and what Fabric's paramiko loads
KNOWN_INSTANCES = Path(".ssh/whisper_known_instances.json")  # under HOME: address -> the VM's instance id
SSH_PORT = 22
Runner = Callable[[list[str]], str]  # runs a command, returns its stdout, raises ConfigError on failure


@dataclass(frozen=True)
class SshRoute:
    host: str
    user: str | None = None  # None: ~/.ssh/config or the local user decide
    key_file: str | None = None
    port: int | None = None
    proxy_command: str | None = None  # Google's IAP tunnel, when port 22 is closed to the internet

    def connection_options(self) -> list[str]:
        """Host key policy and proxy as OpenSSH options (Ansible's ssh_common_args)."""
        options = ["-o", "StrictHostKeyChecking=accept-new"]  # a new VM's key once; a changed one never
        if self.proxy_command:
            options += ["-o", f"ProxyCommand={self.proxy_command}"]
        if self.key_file:
            # Only this key, as `gcloud compute ssh` does: OpenSSH offers every agent key before an
            # IdentityFile, and sshd's MaxAuthTries (6) ends the session ("Too many authentication failures").
            options += ["-o", "IdentitiesOnly=yes"]
        return options

    def ssh_options(self) -> list[str]:
        """Every option of the route for the ssh command line (the dashboards tunnel)."""
        options = self.connection_options()
        if self.key_file:
            options += ["-i", self.key_file]
        if self.port:
            options += ["-p", str(self.port)]
        return options

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host


def run_command(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except FileNotFoundError:
        raise ConfigError(
            f"{command[0]} not found: install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install)"
        ) from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ConfigError(f"{shlex.join(command[:4])} failed: {last}")
    return done.stdout


def gcloud_options(words: list[str]) -> dict[str, str | None]:
    """`--name value`, `--name=value` and bare `--flag` words as a dict (positionals dropped)."""
    options: dict[str, str | None] = {}
    for index, word in enumerate(words):
        if not word.startswith("--"):
            continue
        name, sep, value = word.partition("=")
        following = words[index + 1] if index + 1 < len(words) else ""
        if sep:
            options[name] = value
        elif following and not following.startswith("--"):
            options[name] = following
        else:
            options[name] = None
    return options


def iap_proxy_command(instance: str, zone: str, project: str | None) -> str:
    words = ["gcloud", "compute", "start-iap-tunnel", instance, str(SSH_PORT), "--listen-on-stdin"]
    words += ["--zone", zone, "--verbosity", "warning"]
    return shlex.join(words + (["--project", project] if project else []))


def plain_route(host: str, words: list[str], env: Mapping[str, str]) -> SshRoute:
    """`ssh [-p PORT] [-i KEY] [user@]host`."""
    port = key = user = None
    for flag, value in zip(words, [*words[1:], ""]):
        if flag == "-p":
            port = int(value)
        elif flag == "-i":
            key = value
    if words and "@" in words[-1]:
        user = words[-1].split("@", 1)[0]
    return SshRoute(
        host=host,
        user=env.get("WHISPER_SSH_USER") or user,
        key_file=env.get("WHISPER_SSH_KEY") or key,
        port=port,
    )


def os_login_profile(run: Runner) -> dict:
    return json.loads(run(["gcloud", "compute", "os-login", "describe-profile", "--format=json"]) or "{}")


def os_login_user(profile: Mapping) -> str:
    """The POSIX username of the profile's primary account (OS Login derives it from the Google account)."""
    accounts = profile.get("posixAccounts") or []
    primary = next((a for a in accounts if a.get("primary")), accounts[0] if accounts else None)
    if not primary or not primary.get("username"):
        raise ConfigError(
            "your OS Login profile has no POSIX account yet: run gcloud compute os-login describe-profile "
            "after gcloud auth login (it needs roles/compute.osAdminLogin on the project)"
        )
    return primary["username"]


def ensure_key(key_file: Path, profile: Mapping, run: Runner) -> bool:
    """Create gcloud's key when missing; add its public half to the OS Login profile when it lacks it.
    True when it added the key (the profile read before is then stale)."""
    public = key_file.with_name(key_file.name + ".pub")
    if not key_file.exists():
        key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "rsa", "-b", "3072", "-N", "", "-f", str(key_file)])
    key_body = public.read_text().split()[1]
    registered = [k.get("key", "") for k in (profile.get("sshPublicKeys") or {}).values()]
    if any(key_body in key for key in registered):
        return False
    run(["gcloud", "compute", "os-login", "ssh-keys", "add", f"--key-file={public}"])
    return True


def gcloud_route(host: str, words: list[str], env: Mapping[str, str], home: Path, run: Runner) -> SshRoute:
    """`gcloud compute ssh NAME --zone Z [--project P] [--tunnel-through-iap]`: OS Login and IAP."""
    options = gcloud_options(words[3:])
    instance = next(w for w in words[3:] if not w.startswith("--") and w not in options.values())
    key = Path(env.get("WHISPER_SSH_KEY") or home / GCLOUD_KEY.relative_to("~"))
    user = env.get("WHISPER_SSH_USER")
    if not user or not env.get("WHISPER_SSH_KEY"):
        profile = os_login_profile(run)
        # Key first, user second: the OS Login profile holds the POSIX account
        # (https://cloud.google.com/sdk/gcloud/reference/compute/os-login), and the API provisions it when
        # a key is imported (users.importSshPublicKey; users.projects.provisionPosixAccount), so a Google
        # account that never used OS Login has none until its first key is added.
        if not env.get("WHISPER_SSH_KEY") and ensure_key(key, profile, run):
            profile = os_login_profile(run)
        user = user or os_login_user(profile)
    proxy = None
    if "--tunnel-through-iap" in options:
        proxy = iap_proxy_command(instance, options.get("--zone") or "", options.get("--project"))
    return SshRoute(host=host, user=user, key_file=str(key), proxy_command=proxy)


def route(
    outputs: Mapping | None = None,
    env: Mapping[str, str] = os.environ,
    home: Path | None = None,
    run: Runner = run_command,
) -> SshRoute:
    """The route to the stack's VM, from its outputs (`ip`, `sshCommand`)."""
    outputs = stack_outputs() if outputs is None else outputs
    if outputs.get("mode") == "fleet":
        raise ConfigError("the stack runs in fleet mode: its VMs configure themselves and have no SSH route")
    if not outputs.get("ip"):
        raise ConfigError("the stack outputs have no `ip`; run: make infra (or pass --host)")
    home = home or Path.home()
    if outputs.get("instanceId"):
        forget_replaced_host(outputs["ip"], str(outputs["instanceId"]), home, run)
    words = shlex.split(outputs.get("sshCommand") or "")
    if words[:3] == ["gcloud", "compute", "ssh"]:
        return gcloud_route(outputs["ip"], words, env, home, run)
    if words and words[0] != "ssh":
        raise ConfigError(f"sshCommand {outputs['sshCommand']!r} is neither ssh nor gcloud compute ssh")
    return plain_route(outputs["ip"], words[1:], env)


def forget_replaced_host(host: str, instance_id: str, home: Path, run: Runner) -> None:
    """Drop `host`'s known_hosts entry when the stack's VM behind that address is a new one.

    A replaced VM (new boot disk, new host key) keeps its static address, so StrictHostKeyChecking=accept-new,
    and Fabric, would refuse it as a changed key. The instance id (stack output `instanceId`) tells a
    replacement from the same VM; a changed key on the same id is still refused."""
    record = home / KNOWN_INSTANCES
    seen = json.loads(record.read_text()) if record.exists() else {}
    if seen.get(host) == instance_id:
        return
    known_hosts = home / KNOWN_HOSTS
    if host in seen and known_hosts.exists():
        run(["ssh-keygen", "-R", host, "-f", str(known_hosts)])
    record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    record.write_text(json.dumps({**seen, host: instance_id}, indent=1))


def tunnel_command(target: SshRoute, forwards: list[str], ssh: str = "ssh") -> list[str]:
    """ssh -N with the route's options and one -L per forward (LOCAL:HOST:REMOTE)."""
    command = [*shlex.split(ssh), "-N", "-o", "ExitOnForwardFailure=yes", *target.ssh_options()]
    for forward in forwards:
        command += ["-L", forward]
    return [*command, target.destination]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("show", "tunnel"):
        print("usage: python -m deploy.sshroute show | tunnel -L SPEC [-L SPEC ...]", file=sys.stderr)
        return 2
    try:
        target = route()
    except ConfigError as err:
        print(f"ssh route: {err}", file=sys.stderr)
        return 1
    if argv[0] == "show":
        for name in ("host", "user", "key_file", "port", "proxy_command"):
            print(f"{name}: {getattr(target, name) or '-'}")
        return 0
    forwards = [value for flag, value in zip(argv[1:], argv[2:]) if flag == "-L"]
    command = tunnel_command(target, forwards, os.environ.get("TUNNEL_SSH") or "ssh")
    sys.stdout.flush()
    os.execvp(command[0], command)  # noqa: S606 (an argument list, no shell)
    return 1  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
