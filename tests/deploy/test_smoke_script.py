"""scripts/smoke.py against the real service: exit 0 on a transcription, 1 otherwise; the key from env/stdin.

It runs with `python -I -S` (no site-packages) because `fab deploy` runs it with the host's bare python3.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "scripts" / "smoke.py")
KEY1, KEY2 = "smoke-key-one-0123456789", "smoke-key-two-0123456789"
BUILD = "1a2b3c4d5e6f"  # the image tag /readyz reports (WHISPER_BUILD, the Dockerfile's build arg)


def smoke(*args: str, env: dict | None = None, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-I", "-S", SMOKE, *args],
        input=stdin,
        env=env or {},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def keyed_service(checkpoint, tmp_path_factory):
    # the top-level conftest's launcher; module scope so the four cases share one server
    from tests.conftest import launch

    service = launch(
        checkpoint,
        tmp_path_factory.mktemp("smoke"),
        API_KEYS=f"{KEY1},{KEY2}",
        WHISPER_FORCE_TOKENS="4",
        WHISPER_BUILD=BUILD,
    )
    yield service
    service.stop()


def test_a_key_from_the_environment_passes(keyed_service):
    result = smoke("--url", keyed_service.url, env={"API_KEY": KEY2})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"smoke ok: {keyed_service.url} transcribed smoke.wav")


def test_no_key_fails_with_the_status(keyed_service):
    result = smoke("--url", keyed_service.url)
    assert result.returncode == 1
    assert "answered 401" in result.stdout


def test_the_key_from_an_env_file_on_stdin_and_the_url_from_the_outputs(keyed_service, tmp_path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"url": keyed_service.url}))
    result = smoke(
        "--outputs", str(outputs), "--env-file", "-", stdin=f"# c\nAPI_KEYS={KEY1},{KEY2}\nWORKERS=1\n"
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_nothing_listening_fails(keyed_service):
    from tests.helpers import free_port

    result = smoke("--url", f"http://127.0.0.1:{free_port()}", env={"API_KEY": KEY1})
    assert result.returncode == 1 and result.stdout.startswith("smoke FAILED:")


def test_the_served_build_is_checked_before_the_transcription(keyed_service):
    ok = smoke("--url", keyed_service.url, "--expect-build", BUILD, env={"API_KEY": KEY1})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong_build = "--expect-build 0ld0ld0ld0ld --build-wait 1 --build-interval 0.2"
    old = smoke("--url", keyed_service.url, *wrong_build.split(), env={"API_KEY": KEY1})
    assert old.returncode == 1
    assert old.stdout.strip() == (
        f"smoke FAILED: {keyed_service.url} serves build '{BUILD}', not '0ld0ld0ld0ld'"
    )
