"""The local Docker engine as `fab build` and `fab push` use it: a client that can build with BuildKit, the
build command, and the registry an image reference points at.

The Dockerfile needs BuildKit (RUN --mount for the baked weights and the optional CA secret). Two clients
can give it:
- a client with the buildx plugin (Docker Desktop; docker-ce with docker-buildx-plugin): `docker build` is
  `docker buildx build` there;
- a client older than 23.0 with DOCKER_BUILDKIT=1 (Debian 12's docker.io is 20.10): BuildKit is built in.
A client of 23.0 or newer without buildx refuses DOCKER_BUILDKIT=1 ("BuildKit is enabled but the buildx
component is missing or broken"; seen with Docker CLI 28.2.2 here), so it is passed over for the next one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

# Where a second client may sit when the first on PATH lacks buildx (Debian/Ubuntu's docker.io package).
FALLBACK_CLIENTS = ("/usr/bin/docker",)
BUILDKIT_MISSING = (
    "docker build needs BuildKit: install the buildx plugin (docker-buildx-plugin with docker-ce, "
    "docker-buildx on Debian 13 / Ubuntu), or set DOCKER=/usr/bin/docker where Debian 12's docker.io is"
)
PLATFORM = "linux/amd64"  # Google's GPU VMs are x86-64; an arm64 laptop must not build for itself


class EngineError(Exception):
    """No usable Docker client or engine; the message is one line with the fix."""


def _client_version(client: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run(
            [client, "version", "--format", "{{.Client.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return None
    digits = out.stdout.strip().split("+")[0].split("-")[0].split(".")
    try:
        return tuple(int(d) for d in digits[:2])
    except ValueError:
        return None


def _has_buildx(client: str) -> bool:
    try:
        return subprocess.run([client, "buildx", "version"], capture_output=True, timeout=30).returncode == 0
    except OSError:
        return False


def buildkit_client(env: Mapping[str, str] = os.environ) -> str:
    """The docker client that builds with BuildKit: $DOCKER if set, else `docker` on PATH, else a fallback."""
    if env.get("DOCKER"):
        return env["DOCKER"]
    candidates = [c for c in (shutil.which("docker", path=env.get("PATH")), *FALLBACK_CLIENTS) if c]
    for client in dict.fromkeys(candidates):
        if not Path(client).is_file():
            continue
        if _has_buildx(client):
            return client
        version = _client_version(client)
        if version and version < (23, 0):
            return client
    raise EngineError(BUILDKIT_MISSING)


def build_command(
    client: str,
    context: str | Path,
    tags: Sequence[str],
    build_args: Mapping[str, str],
    extra_ca: str = "",
    platform: str = PLATFORM,
) -> list[str]:
    """`docker build` with BuildKit for the target platform; an extra CA travels as a secret, not a layer."""
    command = [client, "build", "--platform", platform]
    for key, value in build_args.items():
        command += ["--build-arg", f"{key}={value}"]
    if extra_ca:
        command += ["--secret", f"id=ca,src={extra_ca}"]
    for tag in tags:
        command += ["--tag", tag]
    return [*command, str(context)]


BUILDKIT_ENV = {"DOCKER_BUILDKIT": "1"}  # what a pre-23 client needs; harmless with buildx


def login_args(image: str, user: str) -> list[str]:
    """`docker login` arguments for the registry `image` lives in, the password to come on stdin."""
    registry = registry_of(image)
    return ["login", *([registry] if registry else []), "--username", user, "--password-stdin"]


def registry_of(image: str) -> str:
    """The registry host of an image reference ('' = Docker Hub), as docker itself splits it: the first path
    component is a registry when it has a dot or a colon, or is `localhost`."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return ""
