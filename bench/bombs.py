"""Decompression bombs against a server on loopback: time to the refusal and the worker's memory growth.

    python -m bench.bombs       # starts gunicorn (random test checkpoint), default MAX_AUDIO_SECONDS
    python -m bench.bombs --at-once 4 --json build/bombs.json

Each bomb is a few KB that decodes to more than the default MAX_AUDIO_SECONDS (3 h):
  wav-1hz       8-bit WAV at 1 Hz: its header says 3 h 2 min (the issue's 10.9 KB file)
  flac-declared 1 kHz FLAC of silence in 65535-sample frames; STREAMINFO says 3 h 3 min
  flac-lying    the same with STREAMINFO's sample count zeroed: no declared length, ffmpeg must decode it
Each is sent alone, then --at-once copies at the same time. Reported per case: the statuses, the wall time
until the last answer, and the worker's peak RSS growth (VmHWM after, less VmRSS before; the peak is reset
through /proc/PID/clear_refs before each case, which needs the same user as the server).
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

from bench.loopback import local_server

BOMB_SECONDS = 10900  # just over the default MAX_AUDIO_SECONDS (10800)


def wav_1hz(seconds: int = BOMB_SECONDS) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, 1, 1, 1, 8)  # PCM, mono, 1 Hz, 1 B/s, 8-bit
    data = bytes([128]) * seconds
    return (
        b"RIFF"
        + struct.pack("<I", 36 + seconds)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + (b"data" + struct.pack("<I", seconds) + data)
    )


def flac_silence(seconds: int = BOMB_SECONDS) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bomb.flac"
        cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=1000:cl=mono"]
        cmd += ["-t", str(seconds), "-c:a", "flac", "-frame_size", "65535", "-sample_fmt", "s16", str(path)]
        subprocess.run(cmd, check=True)
        return path.read_bytes()


def without_declared_length(flac: bytes) -> bytes:
    """STREAMINFO's total samples (36 bits) and MD5 zeroed: "unknown", as a live encoder writes it."""
    out = bytearray(flac)
    info = 8  # "fLaC" + the metadata block header
    out[info + 13] &= 0xF0
    out[info + 14 : info + 34] = bytes(20)
    return bytes(out)


def bombs() -> dict[str, bytes]:
    flac = flac_silence()
    return {"wav-1hz": wav_1hz(), "flac-declared": flac, "flac-lying": without_declared_length(flac)}


def worker_of(master_pid: int) -> psutil.Process:
    children = psutil.Process(master_pid).children()
    if len(children) != 1:
        raise RuntimeError(f"expected one worker, found {len(children)}")
    return children[0]


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def send(url: str, body: bytes) -> str:
    """The answer's status and error code, e.g. "400 audio_too_long"."""
    resp = requests.post(url + "/v1/audio/transcriptions", files={"file": ("bomb", body)}, timeout=300)
    code = resp.json().get("error", {}).get("code") if resp.status_code >= 400 else ""
    return f"{resp.status_code} {code}".strip()


def one_case(url: str, pid: int, body: bytes, at_once: int) -> dict:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = status_kib(pid, "VmRSS")
    began = time.monotonic()
    with ThreadPoolExecutor(at_once) as pool:
        statuses = list(pool.map(lambda _: send(url, body), range(at_once)))
    seconds = time.monotonic() - began
    growth = status_kib(pid, "VmHWM") - before
    return {
        "at_once": at_once,
        "statuses": statuses,
        "seconds": round(seconds, 2),
        "rss_growth_mib": growth // 1024,
    }


def run(url: str, pid: int, at_once: int) -> list[dict]:
    rows = []
    for name, body in bombs().items():
        send(url, body)  # warm: first-request imports and arenas are not the bomb's cost
        for n in (1, at_once):
            rows.append({"bomb": name, "bytes": len(body), **one_case(url, pid, body, n)})
    return rows


def markdown(rows: list[dict]) -> str:
    head = "| bomb | size | at once | statuses | time to last answer | worker peak RSS growth |\n"
    head += "|---|---|---|---|---|---|\n"
    lines = []
    for r in rows:
        answers = "; ".join(sorted(set(r["statuses"])))
        lines.append(
            f"| {r['bomb']} | {r['bytes'] / 1024:.1f} KB | {r['at_once']} | {answers} | "
            f"{r['seconds']:.2f} s | {r['rss_growth_mib']} MiB |"
        )
    return head + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--at-once", type=int, default=4)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="server setting")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--log", type=Path, default=Path("build/bombs-server.log"))
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    with local_server(None, env, args.log) as (url, master_pid):
        rows = run(url, worker_of(master_pid).pid, min(args.at_once, 16))
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
