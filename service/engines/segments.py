"""A window's tokens as segments, the same whichever engine decoded them: cut at timestamp pairs as
openai-whisper's transcribe() cuts them, with each text token's log-probability; and the tokens untimed
decoding suppresses."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from ..audio import TIME_PRECISION, TIMESTAMP_TOKENS
from ..transcript import Segment


class TimestampTokenizer(Protocol):
    """What split_segments needs of a tokenizer; openai-whisper's and faster-whisper's both have it."""

    eot: int  # end of text; every token id below it is text
    timestamp_begin: int  # <|0.00|>; every token id from here on is a timestamp (0.02 s steps)

    def decode(self, tokens: list[int]) -> str: ...


def split_segments(
    tokens: list[int], tokenizer: TimestampTokenizer, window_seconds: float
) -> tuple[list[Segment], float, bool]:
    """Cut one window's tokens into segments at timestamp pairs, like openai-whisper's transcribe(); how
    much of the window they cover; and whether they end with a single timestamp (`WindowResult.ended`).

    Shared by both engines so that the same tokens give the same segments whichever engine decoded them.
    As in transcribe(), text after the last closing timestamp is an unfinished segment: it is dropped and
    the window counts as covered up to that timestamp only, so the caller decodes the rest again (nothing
    is lost). Without any closing timestamp the text becomes one segment that ends with the window. Times
    are clamped into [0, window] and made monotonic, so segments never overlap.
    """
    spans = _timed_spans(tokens, tokenizer)
    if not spans:
        return [], window_seconds, False
    text = [t for t in tokens if t < tokenizer.eot or t >= tokenizer.timestamp_begin]
    ended = len(text) >= 2 and text[-1] >= tokenizer.timestamp_begin > text[-2]
    closed = [p for p in spans if p[1] is not None]
    consumed = window_seconds
    if closed and spans[-1][1] is None:  # unfinished text after the last pair: decode it again
        spans, consumed = closed, min(max(p[1] for p in closed), window_seconds)
    elif closed and spans[-1][1] is not None:
        consumed = min(spans[-1][1], window_seconds)
    segments: list[Segment] = []
    previous_end = 0.0
    for span_start, span_end, span_tokens in spans:
        start = previous_end if span_start is None else span_start
        start = min(max(start, previous_end), window_seconds)
        end = window_seconds if span_end is None else min(span_end, window_seconds)
        end = max(end, start)
        segments.append(
            Segment(round(start, 3), round(end, 3), tokenizer.decode(span_tokens), tuple(span_tokens))
        )
        previous_end = end
    return segments, consumed, ended


def _timed_spans(tokens: list[int], tokenizer: TimestampTokenizer):
    """(start or None, end or None, text tokens) between timestamp tokens: each span of text a segment
    may become (spans without text left out)."""
    begin = tokenizer.timestamp_begin
    spans: list[tuple[float | None, float | None, list[int]]] = []
    start: float | None = None
    current: list[int] = []
    for token in tokens:
        if token >= begin:
            stamp = (token - begin) * TIME_PRECISION
            if current:  # a closing timestamp
                spans.append((start, stamp, current))
                start, current = None, []
            else:  # an opening timestamp (the second of a pair)
                start = stamp
        elif token < tokenizer.eot:
            current.append(token)
    if current:
        spans.append((start, None, current))
    return spans


def untimed_suppressed(tokenizer: TimestampTokenizer) -> list[int]:  # <|notimestamps|>, the timestamps
    return list(range(tokenizer.timestamp_begin - 1, tokenizer.timestamp_begin + TIMESTAMP_TOKENS))


def with_logprobs(
    segments: list[Segment], tokens: list[int], token_logprobs: list[float], tokenizer: TimestampTokenizer
) -> list[Segment]:
    """Each segment with its text tokens' (text, log-probability): `token_logprobs[i]` belongs to
    `tokens[i]`; a segment's tokens are the next text tokens of the window, in order."""
    text = [(t, lp) for t, lp in zip(tokens, token_logprobs) if t < tokenizer.eot]
    out, position = [], 0
    for segment in segments:
        mine = text[position : position + len(segment.tokens)]
        position += len(segment.tokens)
        pairs = tuple((tokenizer.decode([t]), float(lp)) for t, lp in mine)
        out.append(replace(segment, logprobs=pairs))
    return out
