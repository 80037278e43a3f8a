"""The CPU call-sizing knobs (service/batching/sizing.py): full batches while only long work waits, small
calls while someone may be waiting for a short answer (issue #32)."""

from __future__ import annotations

from .knobs import Knobs, knob
from .parse import number


class SizingSettings(Knobs):
    interactive_batch_size: int = knob(
        "INTERACTIVE_BATCH_SIZE",
        1,
        number(int, 0, "1"),
        "On a CPU, windows of long files per model call while a short request (<= 30 s, or live) is queued "
        "or came within INTERACTIVE_HOLD_SECONDS; BATCH_SIZE otherwise. 0: always BATCH_SIZE.",
    )
    interactive_hold_seconds: float = knob(
        "INTERACTIVE_HOLD_SECONDS",
        10.0,
        number(float, 0, "10"),
        "Seconds after a short request during which more are expected (calls stay small on a CPU).",
    )
