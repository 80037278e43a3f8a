"""schemathesis against the running server's own /openapi.json: no 5xx, every response as documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import requests
from reliability_helpers import API_KEY, auth, ready

ST = str(Path(sys.executable).with_name("st"))
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "ignored_auth",
    ]
)


def summary(output: str) -> str:
    """schemathesis's failures, each line cut short (a reproducing curl can be megabytes of query)."""
    return "\n".join(line[:300] for line in output.splitlines()[-400:])


def test_the_document_describes_both_faces(guarded):
    doc = requests.get(guarded.url + "/openapi.json", timeout=30).json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) >= {
        "/v1/audio/transcriptions",
        "/v1/audio/translations",
        "/v1/models",
        "/asr",
        "/detect-language",
        "/healthz",
        "/readyz",
    }
    form = doc["paths"]["/v1/audio/transcriptions"]["post"]["requestBody"]["content"]["multipart/form-data"]
    fields = form["schema"]["properties"]
    assert fields["response_format"]["enum"] == [
        "json",
        "text",
        "srt",
        "verbose_json",
        "vtt",
        "diarized_json",
    ]
    assert (fields["temperature"]["minimum"], fields["temperature"]["maximum"]) == (0, 1)
    served = requests.get(guarded.url + "/v1/models", headers=auth(), timeout=30).json()["data"]
    assert fields["model"]["enum"] == [model["id"] for model in served]
    assert fields["model"]["enum"][:2] == [requests.get(guarded.url + "/readyz").json()["model"], "whisper-1"]
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    error = doc["components"]["schemas"]["Error"]["properties"]["error"]
    assert error["required"] == ["message", "type", "param", "code"]


def test_schemathesis_finds_no_5xx_and_no_schema_violation(guarded, tmp_path):
    """Bounded: a few examples per operation, the coverage, fuzzing and stateful phases, one seed."""
    cmd = [ST, "run", guarded.url + "/openapi.json", "--header", f"Authorization: Bearer {API_KEY}",
           "--checks", CHECKS, "--phases", "coverage,fuzzing,stateful", "--max-examples", "6", "--seed", "8",
           "--workers", "2", "--request-timeout", "60", "--max-failures", "5", "--no-color"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, summary(output)
    # every operation selected, the job endpoints' among them (12 since #34: 8 before)
    selected = re.search(r"Operations:\s+(\d+) selected / (\d+) total", output)
    assert selected and selected[1] == selected[2] and int(selected[1]) >= 12, output[-3000:]
    assert "passed" in output
    assert ready(guarded)
    rejected = guarded.metric("whisper_requests_total", status="401")
    assert rejected >= 1  # ignored_auth really sent requests without the key...
    assert requests.get(
        guarded.url + "/v1/models", headers=auth(), timeout=30
    ).ok  # ...and the key still works
