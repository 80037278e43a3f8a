"""How live sessions decode (service/api/realtime/decoding.py): the context a turn is decoded with."""

from __future__ import annotations

from .knobs import Knobs, knob
from .parse import number


class LiveDecodingSettings(Knobs):
    realtime_context_chars: int = knob(
        "REALTIME_CONTEXT_CHARS",
        0,
        number(int, 0, "200"),
        "A live turn's decodes are prompted with the last this many characters of the session's text "
        "(after the session's own prompt); 0: off (with tiny.en it cost WER, docs/performance.md).",
    )
