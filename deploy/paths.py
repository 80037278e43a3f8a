"""The operator's files the deploy steps share, each path written here only (standard library only, so the
Makefile reads it with any python3 before a virtualenv exists):

    python3 deploy/paths.py outputs     # the stack outputs file, relative to the current directory
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `make outputs` writes the Pulumi stack's outputs here; Fabric, Ansible's inventory and `make` read them
OUTPUTS = ROOT / ".deploy" / "outputs.json"
PATHS = {"outputs": OUTPUTS}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in PATHS:
        print(f"usage: python3 deploy/paths.py {{{','.join(PATHS)}}}", file=sys.stderr)
        return 2
    print(os.path.relpath(PATHS[argv[0]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
