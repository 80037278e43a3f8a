"""Response writers: one function per format, chosen through a dict (like openai-whisper's utils.py).

Each takes a `Transcript` and returns (body, content type with its charset). Subtitle writers keep cues well
formed whatever the text holds: no cue text contains a blank line or an arrow, and times never run backwards.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable

from . import subtitles
from .audio import AUDIO_TOKENS_PER_SECOND
from .languages import LANGUAGES
from .subtitles import Layout
from .transcript import Segment, Transcript, Word

JSON = "application/json"


def usage(t: Transcript) -> dict:
    """OpenAI's duration usage: whole seconds of input audio, rounded up."""
    return {"type": "duration", "seconds": t.billed_seconds}


def token_usage(t: Transcript) -> dict:
    """OpenAI's token usage (what the stream's done event carries): encoder positions in, text tokens out."""
    audio_tokens = math.ceil(round(t.duration * AUDIO_TOKENS_PER_SECOND, 6))  # 35.2 s: 1760, not 1761
    output_tokens = sum(len(s.tokens) for s in t.segments)
    return {
        "type": "tokens",
        "input_tokens": audio_tokens,
        "output_tokens": output_tokens,
        "total_tokens": audio_tokens + output_tokens,
        "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": 0},
    }


def logprobs(segments: Iterable[Segment]) -> list[dict]:
    """Each text token's log-probability in OpenAI's shape, from the segments' `logprobs` (token, logprob)
    pairs where the engine recorded them."""
    return [
        {"token": token, "logprob": float(logprob), "bytes": list(token.encode("utf-8"))}
        for s in segments
        for token, logprob in (getattr(s, "logprobs", None) or ())
    ]


def to_json(t: Transcript, *, include_logprobs: bool = False, **_) -> tuple[str, str]:
    body = {"text": t.text, "usage": usage(t)}
    if include_logprobs:
        body["logprobs"] = logprobs(t.segments)
    return json.dumps(body, ensure_ascii=False), JSON


def segment_dict(index: int, s: Segment, *, words: bool = False) -> dict:
    """A segment in OpenAI's verbose_json shape (openai-whisper's transcribe() result, with `words`)."""
    out = {
        "id": index,
        "seek": s.seek,
        "start": round(s.start, 3),
        "end": round(s.end, 3),
        "text": s.text,
        "tokens": list(s.tokens),
        "temperature": float(s.temperature),
        "avg_logprob": float(s.avg_logprob),
        "compression_ratio": float(s.compression_ratio),
        "no_speech_prob": float(s.no_speech_prob),
    }
    if s.speaker is not None:
        out["speaker"] = s.speaker
    if words and s.words is not None:
        out["words"] = [
            {
                "word": w.word,
                "start": round(w.start, 3),
                "end": round(w.end, 3),
                "probability": round(float(w.probability), 4),
                **({"speaker": w.speaker} if w.speaker is not None else {}),
            }
            for w in s.words
        ]
    return out


def word_dicts(words: Iterable[Word]) -> list[dict]:
    """Words in verbose_json's top-level `words` shape."""
    return [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)} for w in words]


def verbose_body(
    t: Transcript, *, task: str = "transcribe", words: bool = False, segments: bool = True
) -> dict:
    """OpenAI's verbose_json; a translation's language is the output's, English, as OpenAI documents."""
    language = "english" if task == "translate" else LANGUAGES.get(t.language, t.language)
    body = {"task": task, "language": language, "duration": round(t.duration, 3), "text": t.text}
    if segments:
        body["segments"] = [segment_dict(i, s) for i, s in enumerate(t.segments)]
    if words:
        body["words"] = word_dicts(t.words)
    body["usage"] = usage(t)
    return body


def to_verbose_json(
    t: Transcript, *, task: str = "transcribe", words: bool = False, segments: bool = True, **_
) -> tuple[str, str]:
    body = verbose_body(t, task=task, words=words, segments=segments)
    return json.dumps(body, ensure_ascii=False), JSON


def diarized_segment(index: int, s: Segment) -> dict:
    """A segment as OpenAI's TranscriptionDiarizedSegment (and the stream's transcript.text.segment)."""
    return {
        "type": "transcript.text.segment",
        "id": f"seg_{index}",
        "start": round(s.start, 3),
        "end": round(s.end, 3),
        "speaker": s.speaker or "A",
        "text": s.text.strip(),
    }


def to_diarized_json(t: Transcript, **_) -> tuple[str, str]:
    """OpenAI's diarized_json (TranscriptionDiarized): segments with speakers, duration usage."""
    body = {
        "task": "transcribe",
        "duration": round(t.duration, 3),
        "text": t.text,
        "segments": [diarized_segment(i, s) for i, s in enumerate(s for s in t.segments if s.text.strip())],
        "usage": usage(t),
    }
    return json.dumps(body, ensure_ascii=False), JSON


def to_text(t: Transcript, **_) -> tuple[str, str]:
    return t.text + "\n", "text/plain; charset=utf-8"


def to_txt(t: Transcript, **_) -> tuple[str, str]:
    """whisper-asr-webservice's txt: one line per segment."""
    return "".join(f"{text}\n" for _, _, text in cues(t, "brackets")), "text/plain; charset=utf-8"


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


def cues(t: Transcript, speakers: str = "", layout: Layout | None = None) -> list[tuple[float, float, str]]:
    """Non-empty cues with monotonic, non-negative times: one per segment, or laid out from the words
    (subtitles.py); a diarized cue's text with its speaker in the style asked for: "brackets" ("[A] text",
    as whisper-asr-webservice's whisperx engine writes srt) or "voice" (a WebVTT voice span, "<v A>text")."""
    if layout is not None and layout.active:
        raw = subtitles.laid_out(t, layout)
    else:
        raw = [(s.start, s.end, cue_text(s.text), s.speaker) for s in t.segments]
    out, last = [], 0.0
    for start, end, text, speaker in raw:
        if not text:
            continue
        if speaker is not None and speakers:
            text = (
                f"[{cue_text(speaker)}] {text}" if speakers == "brackets" else f"<v {voice(speaker)}>{text}"
            )
        start = max(float(start), last)
        end = max(float(end), start)
        out.append((start, end, text))
        last = end
    return out


def voice(name: str) -> str:
    """A speaker's name as a WebVTT voice annotation: one line, no markup characters."""
    return re.sub(r"[<>&]", "", cue_text(name)) or "?"


def to_srt(t: Transcript, layout: Layout | None = None, **_) -> tuple[str, str]:
    blocks = [
        f"{i}\n{clock(a, ',')} --> {clock(b, ',')}\n{text}\n"
        for i, (a, b, text) in enumerate(cues(t, "brackets", layout), 1)
    ]
    return "\n".join(blocks), "application/x-subrip; charset=utf-8"


def to_vtt(t: Transcript, layout: Layout | None = None, **_) -> tuple[str, str]:
    blocks = [f"{clock(a, '.')} --> {clock(b, '.')}\n{text}\n" for a, b, text in cues(t, "voice", layout)]
    return "WEBVTT\n\n" + "\n".join(blocks), "text/vtt; charset=utf-8"


def to_tsv(t: Transcript, **_) -> tuple[str, str]:
    """openai-whisper's TSV: integer milliseconds, tabs and newlines removed from the text."""
    rows = ["start\tend\ttext"]
    for a, b, text in cues(t):
        rows.append(f"{round(a * 1000)}\t{round(b * 1000)}\t{text.replace(chr(9), ' ')}")
    return "\n".join(rows) + "\n", "text/tab-separated-values; charset=utf-8"


def to_asr_json(t: Transcript, **_) -> tuple[str, str]:
    """whisper-asr-webservice's json output: openai-whisper's transcribe() result."""
    segments = [segment_dict(i, s, words=True) for i, s in enumerate(t.segments)]
    body = {"text": t.text, "segments": segments, "language": t.language}
    return json.dumps(body, ensure_ascii=False), JSON


WRITERS = {
    "json": to_json,
    "verbose_json": to_verbose_json,
    "diarized_json": to_diarized_json,
    "text": to_text,
    "txt": to_txt,
    "srt": to_srt,
    "vtt": to_vtt,
    "tsv": to_tsv,
    "asr_json": to_asr_json,
}


def render(fmt: str, t: Transcript, **options) -> tuple[str, str]:
    return WRITERS[fmt](t, **options)
