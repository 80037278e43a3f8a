"""The image's Python requirements, read from pyproject.toml so the image and CI install the same pins.

    python pins.py pyproject.toml faster > requirements.txt     # [project].dependencies + the `faster` extra
    python pins.py --extras-only pyproject.toml cuda12 > c.txt   # only the `cuda12` extra (pip --target)

Stdlib only: it runs in the Dockerfile before anything is installed.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def image_requirements(
    pyproject: str | Path, extras: tuple[str, ...] = ("faster",), base: bool = True
) -> list[str]:
    """The pinned requirement lines: the project's dependencies (when `base`) plus the extras."""
    project = tomllib.loads(Path(pyproject).read_text())["project"]
    lines = list(project["dependencies"]) if base else []
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return lines


def pinned_version(pyproject: str | Path, package: str) -> str:
    """Return the exact version pinned for `package` (e.g. torch) in pyproject.toml."""
    for line in image_requirements(pyproject, extras=()):
        name, sep, version = line.partition("==")
        if name.strip().lower() == package.lower() and sep:
            return version.strip()
    raise KeyError(f"{package} is not pinned with == in {pyproject}")


def main(argv: list[str]) -> int:
    base = "--extras-only" not in argv
    argv = [arg for arg in argv if arg != "--extras-only"]
    if not argv:
        print("usage: pins.py [--extras-only] PYPROJECT [EXTRA ...]", file=sys.stderr)
        return 2
    print("\n".join(image_requirements(argv[0], tuple(argv[1:]), base=base)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
