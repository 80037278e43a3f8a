"""The files the deploy's steps share, each path written here only: on the operator's machine, and on the
host, where infra/startup.sh, Ansible, Fabric and the monitoring stack each find what another left (standard
library only, so the Makefile reads it with any python3 before a virtualenv exists, and infra/ imports it):

    python3 deploy/paths.py outputs     # the stack outputs file, relative to the current directory
"""

from __future__ import annotations

import os
import sys
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
# `make outputs` writes the Pulumi stack's outputs here; Fabric, Ansible's inventory and `make` read them
OUTPUTS = ROOT / ".deploy" / "outputs.json"
PATHS = {"outputs": OUTPUTS}

# On the host: the service account's home (its state: models, monitoring, jobs, the deploy's record)
HOST_HOME = PurePosixPath("/var/lib/whisper")
# node-exporter's textfile collector: startup.sh writes the VM's price there (compose.yml mounts it)
TEXTFILE_DIR = HOST_HOME / "textfile"
RUN_DIR = PurePosixPath("/run/whisper")  # tmpfs: startup.sh's API key file, the idle watch's clock
READY_FILE = PurePosixPath("/run/whisper-host-ready")  # tmpfs: startup.sh touches it last, Ansible waits


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in PATHS:
        print(f"usage: python3 deploy/paths.py {{{','.join(PATHS)}}}", file=sys.stderr)
        return 2
    print(os.path.relpath(PATHS[argv[0]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
