"""The service sends nothing out: onnxruntime's Microsoft telemetry is off before onnxruntime is imported
(service/__init__.py). Its visible trace is the session file it writes into TMPDIR at import, which is what
this checks, in a fresh interpreter each time (the variable must be set before the import)."""

from __future__ import annotations

import os
import subprocess
import sys

# onnxruntime keeps its telemetry off where it sees a CI (CI=true, as this suite's CI runs it): these go, so
# that the interpreter is a user's machine as far as onnxruntime can tell
NOT_A_USERS_MACHINE = ("ORT_DISABLE_TELEMETRY", "CI", "GITHUB_ACTIONS", "TF_BUILD")


def files_after(code: str, tmp_dir) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_A_USERS_MACHINE}
    subprocess.run([sys.executable, "-c", code], env={**env, "TMPDIR": str(tmp_dir)}, check=True, timeout=120)
    return sorted(os.listdir(tmp_dir))


def test_importing_the_service_turns_onnxruntimes_telemetry_off(tmp_path):
    (tmp_path / "bare").mkdir()
    (tmp_path / "service").mkdir()
    # the control: onnxruntime alone starts its telemetry session (if a release drops its telemetry, this
    # line fails: then the guard in service/__init__.py and this test can go)
    assert files_after("import onnxruntime", tmp_path / "bare") == [".ses"]
    code = "import service, onnxruntime, os; assert os.environ['ORT_DISABLE_TELEMETRY'] == '1'"
    assert files_after(code, tmp_path / "service") == []


def test_the_server_process_has_it_off_for_the_vad(tmp_path):
    """The VAD's import path, as a worker takes it (service.intake.vad loads Silero through onnxruntime)."""
    code = "import service.intake.vad as vad; vad.load()"
    assert files_after(code, tmp_path) == []
