"""Stop `make deploy` (and its steps) at the start when a tool or credential is missing.

    python -m deploy.preflight docker pulumi gcloud gcloud-credentials fab ansible dockerhub

Prints one line per missing thing, each with the command that fixes it, and exits 1; silent exit 0 when
everything is there. It only looks: it runs no tool and reads no credential's content.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from deploy.config import ROOT

VENV_BIN = ROOT / ".venv" / "bin"


def gcloud_credentials(env: Mapping[str, str]) -> bool:
    """Application Default Credentials as Pulumi's gcp provider finds them (a key file or a gcloud login)."""
    if env.get("GOOGLE_CREDENTIALS"):
        return True
    key_file = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_file:
        return Path(key_file).is_file()
    config_dir = env.get("CLOUDSDK_CONFIG") or str(Path(env.get("HOME", "~")) / ".config" / "gcloud")
    return (Path(config_dir) / "application_default_credentials.json").is_file()


def on_path(tool: str, env: Mapping[str, str]) -> bool:
    return shutil.which(tool, path=env.get("PATH")) is not None


# name -> (is it there?, the one line that fixes it)
CHECKS: dict[str, tuple[Callable[[Mapping[str, str]], bool], str]] = {
    "docker": (
        lambda env: on_path("docker", env),
        "install Docker Engine: https://docs.docker.com/engine/install/",
    ),
    "pulumi": (
        lambda env: on_path("pulumi", env),
        "install the Pulumi CLI: curl -fsSL https://get.pulumi.com | sh",
    ),
    # The CLI itself: OS Login (user, key), the IAP tunnel and the fleet's rollout wait all run it.
    "gcloud": (
        lambda env: on_path("gcloud", env),
        "install the Google Cloud CLI: https://cloud.google.com/sdk/docs/install, then gcloud auth login",
    ),
    "gcloud-credentials": (gcloud_credentials, "run: gcloud auth application-default login"),
    "fab": (lambda env: (VENV_BIN / "fab").is_file(), "run: make install"),
    "ansible": (lambda env: (VENV_BIN / "ansible-playbook").is_file(), "run: make install"),
    "dockerhub": (
        lambda env: bool(env.get("DOCKERHUB_USERNAME") and env.get("DOCKERHUB_TOKEN")),
        "export DOCKERHUB_USERNAME=<user> DOCKERHUB_TOKEN=<access token> (hub.docker.com, "
        "Account settings, Personal access tokens)",
    ),
}
LABELS = {"gcloud-credentials": "gcloud credentials", "dockerhub": "Docker Hub credentials"}


def missing(names: list[str], env: Mapping[str, str] = os.environ) -> list[str]:
    """One line per missing tool: what is missing and how to fix it."""
    lines = []
    for name in names:
        present, fix = CHECKS[name]
        if not present(env):
            lines.append(f"missing {LABELS.get(name, name)}: {fix}")
    return lines


def main(argv: list[str]) -> int:
    unknown = [name for name in argv if name not in CHECKS]
    if unknown:
        print(f"unknown check(s) {unknown}; known: {', '.join(CHECKS)}", file=sys.stderr)
        return 2
    lines = missing(argv)
    for line in lines:
        print(line, file=sys.stderr)
    return 1 if lines else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
