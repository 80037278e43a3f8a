"""How live sessions decode (service/api/realtime/decoding.py): the context a turn is decoded with, and the
length of its model input."""

from __future__ import annotations

from .knobs import Knobs, knob
from .parse import boolean, number


class LiveDecodingSettings(Knobs):
    realtime_context_chars: int = knob(
        "REALTIME_CONTEXT_CHARS",
        0,
        number(int, 0, "200"),
        "A live turn's decodes are prompted with the last this many characters of the session's text "
        "(after the session's own prompt); 0: off (with tiny.en it cost WER, docs/performance.md).",
    )
    realtime_short_input: bool = knob(
        "REALTIME_SHORT_INPUT",
        True,
        boolean,
        "On a CPU, the decodes of a live turn server_vad found (its partials and its `completed`) use a "
        "model input of the turn's audio and at least 4 s of silence (10 s at the least) instead of 30 s: "
        "about half the time, and fewer errors on the measured turns. false: 30 s (docs/performance.md, "
        "live audio).",
    )
