"""Decompression bombs against the real server with the default MAX_AUDIO_SECONDS (3 h): a few KB that
decode to more than that are refused with 400 `audio_too_long`, and the worker's memory barely moves.

Memory is the worker's peak RSS (VmHWM, reset through /proc/PID/clear_refs) less its RSS before: before
the fix these bombs grew it by 1.3-1.6 GiB alone and 4.7-5.3 GiB four at once (docs/reliability.md). The
bounds below are wide (a decoded 3 h at 16 kHz is 690 MB as float32): they hold on a slow or a fast machine.
Time is measured by `python -m bench.bombs`, not asserted here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from reliability_helpers import assert_error, ready

from bench.bombs import flac_silence, status_kib, wav_1hz, without_declared_length, worker_of

ENDPOINT = "/v1/audio/transcriptions"
MIB = 1024  # KiB in a MiB: /proc/PID/status counts KiB


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    flac = flac_silence()
    return {"wav-1hz": wav_1hz(), "flac-declared": flac, "flac-lying": without_declared_length(flac)}


def peak_growth_mib(service, send) -> int:
    """The worker's peak RSS growth while `send()` runs, in MiB."""
    pid = worker_of(service.process.pid).pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = status_kib(pid, "VmRSS")
    send()
    return (status_kib(pid, "VmHWM") - before) // MIB


def post(service, body: bytes) -> requests.Response:
    return requests.post(service.url + ENDPOINT, files={"file": ("bomb", body)}, timeout=300)


@pytest.mark.parametrize("name", ["wav-1hz", "flac-declared"])
def test_a_bomb_whose_header_says_too_long_is_refused_before_decoding(service, bombs, name):
    post(service, bombs[name])  # warm: first-request allocations are not the bomb's
    answers = []
    growth = peak_growth_mib(service, lambda: answers.append(post(service, bombs[name])))
    error = assert_error(answers[0], 400, "audio_too_long")
    assert "MAX_AUDIO_SECONDS" in error["message"]
    assert growth < 100, f"worker grew {growth} MiB"
    assert service.metric("whisper_queue_audio_seconds") == 0  # never queued
    assert ready(service)


@pytest.mark.parametrize("at_once", [1, 4])
def test_a_bomb_that_declares_no_length_is_stopped_at_the_limit_in_bounded_memory(service, bombs, at_once):
    body = bombs["flac-lying"]
    post(service, body)
    with ThreadPoolExecutor(at_once) as pool:
        answers = []
        growth = peak_growth_mib(
            service, lambda: answers.extend(pool.map(lambda _: post(service, body), range(at_once)))
        )
    for resp in answers:
        assert_error(resp, 400, "audio_too_long")
    assert growth < 300, f"worker grew {growth} MiB with {at_once} at once"
    assert ready(service)
