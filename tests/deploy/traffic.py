"""Client traffic against a deployed host's public port (tests/deploy/test_fabric_deploy.py): one
transcription of the smoke test's clip, and a bounded loop of readiness probes and transcriptions, counted,
that runs while a deploy switches colours."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import requests

from scripts.smoke import generated_clip
from tests.deploy.conftest import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}
CLOSE = {"Connection": "close"}  # a fresh connection per request: a refused connect shows up as a failure
LOAD_MAX_SECONDS = 240  # the client loop's hard bound
LOAD_MAX_REQUESTS = 5000


def transcribe(base_url: str, headers: dict | None = None, timeout: float = 60) -> requests.Response:
    files = {"file": ("clip.wav", generated_clip(), "audio/wav")}
    data = {"model": "whisper-1", "response_format": "json"}
    return requests.post(
        f"{base_url}/v1/audio/transcriptions",
        files=files,
        data=data,
        headers={**(headers or AUTH), **CLOSE},
        timeout=timeout,
    )


@dataclass
class Load:
    """A bounded client loop against the public port: readiness probes and transcriptions, counted."""

    url: str
    ok: int = 0
    transcribed: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def probe_loop(self) -> None:
        deadline = time.monotonic() + LOAD_MAX_SECONDS
        for _ in range(LOAD_MAX_REQUESTS):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            self.record(lambda: requests.get(f"{self.url}/readyz", timeout=10, headers=CLOSE))
            time.sleep(0.02)

    def transcribe_loop(self) -> None:
        deadline = time.monotonic() + LOAD_MAX_SECONDS
        for _ in range(LOAD_MAX_REQUESTS):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            if self.record(lambda: transcribe(self.url)):
                self.transcribed += 1

    def record(self, call) -> bool:
        try:
            response = call()
        except requests.RequestException as err:
            self.failures.append(f"{type(err).__name__}: {err}")
            return False
        if response.status_code != 200:
            self.failures.append(f"{response.status_code}: {response.text[:200]}")
            return False
        self.ok += 1
        return True

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=f) for f in (self.probe_loop, self.transcribe_loop)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=90)
