"""A live client for /v1/realtime, written with OpenAI's own SDK: streams 16 kHz audio as pcm16 at 24 kHz in
100 ms appends at real-time pace, and records every server event with the time it came.

Used by tests/realtime and bench/realtime.py. `stream()` returns when every committed item has its
`completed` or `failed` event, or when `timeout` seconds have passed.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from openai import OpenAI

CHUNK_SECONDS = 0.1
TAIL_SILENCE_SECONDS = 1.5  # after the speech: longer than silence_duration_ms, so the last turn ends

SERVER_VAD = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}


def transcription_session(turn_detection: dict | None = SERVER_VAD, **transcription) -> dict:
    """session.update's `session` in the GA shape: pcm16 at 24 kHz, English, the given turn detection."""
    return {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "whisper-1", "language": "en", **transcription},
                "turn_detection": turn_detection,
            }
        },
    }


def pcm24k(audio: np.ndarray) -> bytes:
    """16 kHz float32 -> 24 kHz s16le, as a microphone client would send it."""
    n = int(len(audio) * 1.5)
    resampled = np.interp(np.arange(n) / 1.5, np.arange(len(audio)), audio)
    return (np.clip(resampled, -1, 1) * 32767).astype("<i2").tobytes()


@dataclass
class Events:
    """Server events as dicts, each with `_t`: time.monotonic() when it arrived."""

    items: list[dict] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def add(self, event: dict) -> None:
        with self.lock:
            self.items.append(event)
            self.lock.notify_all()

    def of(self, kind: str) -> list[dict]:
        with self.lock:
            return [e for e in self.items if e["type"] == kind]

    def settled(self) -> bool:
        """Every committed item has its completed or failed event."""
        ends = ("completed", "failed")
        done = {
            e["item_id"] for k in ends for e in self.of(f"conversation.item.input_audio_transcription.{k}")
        }
        return {e["item_id"] for e in self.of("input_audio_buffer.committed")} <= done

    def wait(self, ready, timeout: float) -> bool:
        with self.lock:
            return self.lock.wait_for(ready, timeout)


def connect(base_url: str, api_key: str | None = None):
    client = OpenAI(api_key=api_key or "unused", base_url=base_url + "/v1", max_retries=0)
    return client.realtime.connect(model="whisper-1", extra_query={"intent": "transcription"})


def stream(
    base_url: str,
    audio: np.ndarray,
    session: dict | None = None,
    api_key: str | None = None,
    timeout: float = 60.0,
    pace: float = 1.0,
) -> Events:
    """One session: configure, stream `audio` (16 kHz float32) then TAIL_SILENCE_SECONDS of silence at
    `pace` times real time, wait until every committed item is settled (or `timeout`), close."""
    events = Events()
    tail = np.zeros(int(TAIL_SILENCE_SECONDS * 16000), np.float32)
    data = pcm24k(np.concatenate([audio, tail]))
    with connect(base_url, api_key) as conn:
        reader = threading.Thread(target=_read, args=(conn, events), daemon=True)
        reader.start()
        conn.session.update(session=session or transcription_session())
        _send_paced(conn, data, pace)
        deadline = time.monotonic() + timeout
        events.wait(lambda: events.settled() and bool(events.of("input_audio_buffer.committed")), timeout)
        events.wait(events.settled, max(0.0, deadline - time.monotonic()))
    reader.join(5)
    return events


def _send_paced(conn, data: bytes, pace: float) -> None:
    step = int(24000 * 2 * CHUNK_SECONDS)
    began = time.monotonic()
    for i, offset in enumerate(range(0, len(data), step)):
        conn.input_audio_buffer.append(audio=base64.b64encode(data[offset : offset + step]).decode())
        wait = began + (i + 1) * CHUNK_SECONDS / pace - time.monotonic()
        if wait > 0:
            time.sleep(wait)


def _read(conn, events: Events) -> None:
    try:
        for event in conn:
            record = event.model_dump()
            record["_t"] = time.monotonic()
            events.add(record)
    except Exception as error:  # the connection closed under the reader: that ends the stream
        events.add({"type": "_closed", "reason": repr(error), "_t": time.monotonic()})
    else:
        events.add({"type": "_closed", "reason": "closed", "_t": time.monotonic()})
