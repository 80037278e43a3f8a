"""The live-audio knobs (service/api/realtime/): OpenAI's Realtime transcription sessions on /v1/realtime.

Each session holds one of the worker's THREADS for its whole life, so their bound stays below THREADS
(checked at start), leaving threads for HTTP requests and probes.
"""

from __future__ import annotations

from .knobs import Knobs, knob
from .parse import number


class LiveSettings(Knobs):
    realtime_max_sessions: int = knob(
        "REALTIME_MAX_SESSIONS",
        8,
        number(int, 0, "8"),
        "Live sessions at once per worker, each holding a request thread; below THREADS. 0: off.",
    )
    realtime_idle_timeout: float = knob(
        "REALTIME_IDLE_TIMEOUT",
        60.0,
        number(float, 1, "60"),
        "Seconds a live session may send nothing before it is closed.",
    )
    realtime_max_session_seconds: float = knob(
        "REALTIME_MAX_SESSION_SECONDS",
        3600.0,
        number(float, 1, "3600"),
        "Longest a live session may stay open, in seconds (OpenAI's own limit is 60 minutes).",
    )
    realtime_max_frame_kb: int = knob(
        "REALTIME_MAX_FRAME_KB",
        1024,
        number(int, 1, "1024"),
        "Largest WebSocket message a live session accepts, in KiB; a bigger one closes it (1009).",
    )
