"""Response writers: one function per format, chosen through a dict (like openai-whisper's utils.py).

Each takes a Transcript and returns (body, mimetype). Subtitle writers keep cues well formed whatever the
text holds: no cue text contains a blank line or an arrow, and times never run backwards.
"""

from __future__ import annotations

import json
import re

from .transcript import Segment, Transcript

try:  # language names ship with openai-whisper's tokenizer (no torch needed to read them)
    from whisper.tokenizer import LANGUAGES
except ImportError:  # pragma: no cover - the service always has openai-whisper
    LANGUAGES = {}

OPENAI_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
ASR_OUTPUTS = ("txt", "vtt", "srt", "tsv", "json")


def usage(t: Transcript) -> dict:
    return {"type": "duration", "seconds": t.billed_seconds}


def segment_json(index: int, s: Segment, words: bool = False) -> dict:
    """One segment in openai-whisper's (and OpenAI's verbose_json) shape."""
    out = {
        "id": index, "seek": s.seek, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text,
        "tokens": list(s.tokens), "temperature": float(s.temperature), "avg_logprob": float(s.avg_logprob),
        "compression_ratio": float(s.compression_ratio), "no_speech_prob": float(s.no_speech_prob),
    }  # fmt: skip
    if words and s.words is not None:
        out["words"] = [word_json(w, probability=True) for w in s.words]
    return out


def word_json(w, probability: bool = False) -> dict:
    out = {"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)}
    if probability:
        out["probability"] = round(float(w.probability), 4)
    return out


def to_json(t: Transcript, **_) -> tuple[str, str]:
    return json.dumps({"text": t.text, "usage": usage(t)}, ensure_ascii=False), "application/json"


def to_verbose_json(t: Transcript, *, task: str = "transcribe", words: bool = False,
                    segments: bool = True, **_) -> tuple[str, str]:  # fmt: skip
    body = {
        "task": task,
        "language": LANGUAGES.get(t.language, t.language),
        "duration": round(t.duration, 3),
        "text": t.text,
    }
    if segments:
        body["segments"] = [segment_json(i, s) for i, s in enumerate(t.segments)]
    if words:
        body["words"] = [word_json(w) for w in t.words]
    body["usage"] = usage(t)
    return json.dumps(body, ensure_ascii=False), "application/json"


def to_text(t: Transcript, **_) -> tuple[str, str]:
    return t.text + "\n", "text/plain; charset=utf-8"


def clock(seconds: float, separator: str, always_hours: bool = True) -> str:
    """12.345 -> '00:00:12,345' (SRT) or '00:00:12.345' (VTT)."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    head = f"{hours:02d}:" if always_hours or hours else ""
    return f"{head}{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def cue_text(text: str) -> str:
    """One line of cue text: no line breaks (a blank line ends a cue) and no '-->' (it starts a timing)."""
    text = re.sub(r"\s*[\r\n]+\s*", " ", text).strip()
    return re.sub(r"-{2,}>", "->", text)  # not str.replace: "--->" would become "-->" again


def cues(t: Transcript) -> list[tuple[float, float, str]]:
    """Non-empty segments with monotonic, non-negative times."""
    out, last = [], 0.0
    for s in t.segments:
        text = cue_text(s.text)
        if not text:
            continue
        start = max(float(s.start), last)
        end = max(float(s.end), start)
        out.append((start, end, text))
        last = end
    return out


def to_srt(t: Transcript, **_) -> tuple[str, str]:
    blocks = [
        f"{i}\n{clock(a, ',')} --> {clock(b, ',')}\n{text}\n" for i, (a, b, text) in enumerate(cues(t), 1)
    ]
    return "\n".join(blocks), "application/x-subrip; charset=utf-8"


def to_vtt(t: Transcript, **_) -> tuple[str, str]:
    blocks = [f"{clock(a, '.')} --> {clock(b, '.')}\n{text}\n" for a, b, text in cues(t)]
    return "WEBVTT\n\n" + "\n".join(blocks), "text/vtt; charset=utf-8"


def to_tsv(t: Transcript, **_) -> tuple[str, str]:
    """openai-whisper's TSV: integer milliseconds, tabs and newlines removed from the text."""
    rows = ["start\tend\ttext"]
    for a, b, text in cues(t):
        rows.append(f"{round(a * 1000)}\t{round(b * 1000)}\t{text.replace(chr(9), ' ')}")
    return "\n".join(rows) + "\n", "text/tab-separated-values; charset=utf-8"


def to_asr_json(t: Transcript, **_) -> tuple[str, str]:
    """whisper-asr-webservice's json output: openai-whisper's transcribe() result."""
    segments = [segment_json(i, s, words=True) for i, s in enumerate(t.segments)]
    body = {"text": t.text, "segments": segments, "language": t.language}
    return json.dumps(body, ensure_ascii=False), "application/json"


WRITERS = {
    "json": to_json,
    "verbose_json": to_verbose_json,
    "text": to_text,
    "txt": to_text,
    "srt": to_srt,
    "vtt": to_vtt,
    "tsv": to_tsv,
    "asr_json": to_asr_json,
}


def render(fmt: str, t: Transcript, **options) -> tuple[str, str]:
    return WRITERS[fmt](t, **options)
