"""The real PyPI, read the way pip reads it: the resolver's --report, and wheel file lists read from the zip's
central directory with HTTP range requests (a few kilobytes per wheel, however large the wheel)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

PIP = [sys.executable, "-m", "pip"]
TIMEOUT_S = 60  # one HTTP request
# Ubuntu 24.04 (the image's base) has glibc 2.39: every manylinux tag up to 2_39 installs there. pip's
# --platform takes the tags literally (manylinux_2_28 does not imply 2_27), so all of them are listed.
MANYLINUX = [f"manylinux_2_{minor}_x86_64" for minor in range(39, 4, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
]


def reachable(url: str = "https://pypi.org/simple/pip/") -> bool:
    try:
        with urllib.request.urlopen(url, timeout=15):
            return True
    except (urllib.error.URLError, OSError):
        return False


def isolated_env() -> dict[str, str]:
    """pip with no config file, local index or constraint: PyPI alone, as in the image build."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def build_sdist_wheels(requirements: list[str], dest: Path) -> None:
    """Pure-Python projects published only as sdists (openai-whisper) become wheels in `dest`, as pip does
    in the image, so the foreign-platform resolve (binary only) can read their dependencies."""
    subprocess.run(
        [*PIP, "wheel", "--isolated", "-q", "--no-deps", "-w", str(dest), *requirements],
        env=isolated_env(),
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )


def resolve(requirements: list[str], python_version: str, report: Path, find_links: Path | None = None):
    """pip install --dry-run for the image's platform and Python; returns pip's JSON report."""
    command = [*PIP, "install", "--isolated", "--dry-run", "--ignore-installed", "--only-binary=:all:", "-q"]
    command += [arg for tag in MANYLINUX for arg in ("--platform", tag)]
    command += ["--python-version", python_version, "--implementation", "cp", "--report", str(report)]
    if find_links:
        command += ["--find-links", str(find_links)]
    done = subprocess.run(
        command + requirements, env=isolated_env(), capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"pip could not resolve {requirements}:\n{done.stderr[-3000:]}"
    return json.loads(report.read_text())


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file; every read is one HTTP range request."""

    def __init__(self, url: str):
        self.url, self.pos = url, 0
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=TIMEOUT_S) as answer:
            self.size = int(answer.headers["Content-Length"])

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.size - self.pos)
        if count <= 0:
            return 0
        headers = {"Range": f"bytes={self.pos}-{self.pos + count - 1}"}
        request = urllib.request.Request(self.url, headers=headers)
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
            data = answer.read()
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)


def wheel_files(url: str) -> list[str]:
    """The paths a wheel installs (its .dist-info excluded), from the zip's central directory."""
    with zipfile.ZipFile(io.BufferedReader(RangeFile(url), buffer_size=1 << 16)) as wheel:
        return [name for name in wheel.namelist() if ".dist-info/" not in name and not name.endswith("/")]


def installed(report: dict) -> dict[str, dict]:
    """name -> {"version", "url", "requires"} for every distribution of a pip report."""
    return {
        item["metadata"]["name"].lower().replace("_", "-"): {
            "version": item["metadata"]["version"],
            "url": item["download_info"]["url"],
            "requires": item["metadata"].get("requires_dist") or [],
        }
        for item in report["install"]
    }
