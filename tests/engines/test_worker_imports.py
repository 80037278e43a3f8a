"""A faster-whisper worker must not load torch: it is about 300 MiB of resident memory that the engine never
uses (docs/performance.md, "Measurements behind the code")."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import sys
from service import create_app
app = create_app()
scheduler = app.extensions["scheduler"]
import time
deadline = time.monotonic() + 120
while not scheduler.ready and time.monotonic() < deadline:
    time.sleep(0.1)
client = app.test_client()
answer = client.post("/v1/audio/transcriptions", data={"file": (open(sys.argv[1], "rb"), "a.wav")})
print(answer.status_code, sorted(m for m in ("torch", "whisper") if m in sys.modules))
"""


def test_faster_whisper_worker_never_imports_torch(tiny_en_ct2, tmp_path):
    from tools import speech

    clip = speech.clip(tmp_path, 0)
    env = {
        **os.environ,
        "WHISPER_ENGINE": "faster-whisper",
        "WHISPER_MODEL": str(tiny_en_ct2),
        "VAD": "true",
        "JOBS_DIR": str(tmp_path / "jobs"),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(clip.path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "200 []", done.stdout
