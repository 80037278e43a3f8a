#!/usr/bin/env python3
"""Smoke test: transcribe one clip through a running service; exit 0 when it answers like OpenAI, else 1.

    scripts/smoke.py --url http://203.0.113.7                 # a generated 2 s clip
    scripts/smoke.py --outputs stack.json                     # the stack's `url` output (make outputs)
    scripts/smoke.py --url http://127.0.0.1:5000 --file talk.wav
    scripts/smoke.py --outputs stack.json --expect-build 1a2b3c4d5e6f  # /readyz reports that build
    sudo cat ENV_FILE | scripts/smoke.py --url http://127.0.0.1:PORT --env-file -  # on the host

The API key comes from --env-file (the first of its API_KEYS), else $API_KEY, else the first of $API_KEYS,
never from the command line. Stdlib only: `fab deploy` runs it on the host with the system python3.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import struct
import sys
import time
import urllib.error
import urllib.request
import uuid
import wave
from pathlib import Path

SAMPLE_RATE = 16_000  # Hz, what Whisper resamples to anyway
CLIP_SECONDS = 2.0


def generated_clip(seconds: float = CLIP_SECONDS) -> bytes:
    """A mono 16-bit WAV: a 440 Hz tone that fades out. Any audio proves the path; the text is not checked."""
    n = int(seconds * SAMPLE_RATE)
    samples = (int(12_000 * (1 - i / n) * math.sin(2 * math.pi * 440 * i / SAMPLE_RATE)) for i in range(n))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(SAMPLE_RATE)
        clip.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return buffer.getvalue()


def api_key(env_file: str | None) -> str:
    """--env-file's first API_KEYS entry, else $API_KEY, else the first of $API_KEYS, else ''."""
    if env_file:
        text = sys.stdin.read() if env_file == "-" else Path(env_file).read_text()
        for line in text.splitlines():
            if line.startswith("API_KEYS="):
                return first_key(line.removeprefix("API_KEYS="))
        return ""
    return os.environ.get("API_KEY") or first_key(os.environ.get("API_KEYS", ""))


def stack_url(outputs: str) -> str:
    try:
        return json.loads(Path(outputs).read_text()).get("url", "")
    except (OSError, ValueError):
        return ""


def first_key(keys: str) -> str:
    return next((key.strip() for key in keys.split(",") if key.strip()), "")


def multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def transcribe(url: str, key: str, filename: str, data: bytes, timeout: float) -> dict:
    body, content_type = multipart({"model": "whisper-1", "response_format": "json"}, filename, data)
    endpoint = url.rstrip("/") + "/v1/audio/transcriptions"  # main() lets only http(s) through
    request = urllib.request.Request(endpoint, data=body, method="POST")  # noqa: S310
    request.add_header("Content-Type", content_type)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read())


def served_build(url: str, timeout: float) -> str | None:
    """The `build` /readyz reports (None: not ready or no answer)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/readyz", timeout=timeout) as response:  # noqa: S310
            return str(json.loads(response.read()).get("build", ""))
    except (OSError, ValueError):
        return None


def wait_for_build(url: str, expected: str, seconds: float, interval: float) -> str | None:
    """Poll /readyz until it reports `expected` (a load balancer may still reach an old VM for a while);
    return the last build seen when it never does, None when it matched."""
    deadline = time.monotonic() + seconds
    last = None
    for _ in range(int(seconds / interval) + 1):
        last = served_build(url, timeout=10)
        if last == expected:
            return None
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    return last if last is not None else "no ready answer"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="the service's base URL, e.g. http://203.0.113.7")
    where.add_argument("--outputs", help="read the URL from the stack outputs (`make outputs`)")
    parser.add_argument("--file", help="an audio file to send (default: a generated 2 s clip)")
    parser.add_argument("--env-file", help="read API_KEYS from this docker env file ('-' = stdin)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for the request")
    parser.add_argument("--expect-build", help="fail unless /readyz reports this build (the image tag)")
    parser.add_argument("--build-wait", type=float, default=300.0, help="seconds to wait for that build")
    parser.add_argument("--build-interval", type=float, default=5.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.outputs:
        args.url = stack_url(args.outputs)
    if not args.url.startswith(("http://", "https://")):
        print(f"smoke FAILED: the URL must start with http:// or https://, got {args.url!r}")
        return 1
    if args.expect_build:
        seen = wait_for_build(args.url, args.expect_build, args.build_wait, args.build_interval)
        if seen is not None:
            print(f"smoke FAILED: {args.url} serves build {seen!r}, not {args.expect_build!r}")
            return 1
    data = Path(args.file).read_bytes() if args.file else generated_clip()
    name = Path(args.file).name if args.file else "smoke.wav"
    started = time.monotonic()
    try:
        result = transcribe(args.url, api_key(args.env_file), name, data, args.timeout)
    except urllib.error.HTTPError as err:
        print(f"smoke FAILED: {args.url} answered {err.code}: {err.read()[:300]!r}")
        return 1
    except (OSError, ValueError) as err:
        print(f"smoke FAILED: {args.url}: {err}")
        return 1
    if not isinstance(result.get("text"), str):
        print(f"smoke FAILED: {args.url} answered without a text field: {str(result)[:300]}")
        return 1
    elapsed = time.monotonic() - started
    print(f"smoke ok: {args.url} transcribed {name} in {elapsed:.2f} s: {result['text'][:80]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
