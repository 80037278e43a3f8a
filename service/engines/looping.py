"""Stopping a decode that loops, in both engines alike.

Given a long prompt, or audio it cannot make out, Whisper can repeat one word or phrase until its token limit
(224 new tokens a window): 'word word word ...'. The compression-ratio check then rejects the text and the
window is decoded again at the next temperature, up to six times, each a full-length decode: a 2.8 s clip
with a 4000-character prompt took 107 s of model time on a CPU. So each decode is bounded twice:

- a token budget proportional to the audio it holds (`token_budget`): speech runs at 2-4 tokens a second
  (English; more for languages whose words take more tokens), so 10 a second plus a margin never cuts real
  speech short, and a full 30 s window keeps Whisper's own 224. A decode cut by its budget leaves its
  unfinished segment to be decoded again, as any early stop does (`split_segments`), so no speech is lost;
- a decode whose text ends in one n-gram repeated (`loops`) stops there (`WindowResult.looped`); its
  compression ratio (7.4 for 24 times 'word') then rejects it as openai-whisper's rule does, so the next
  temperature is tried at once (a request that raises compression_ratio_threshold keeps the text).

The openai-whisper engine applies both while sampling (a logit filter that forces end-of-text, per window of
the batch); CTranslate2 has no per-step hook, so faster-whisper's batch gets the largest budget as its
length limit and each window's tokens are cut afterwards (`bounded`) at the same place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

TOKENS_PER_SECOND = 10  # budget per second of audio: 2.5-5x the rate of fast English speech
TOKENS_MARGIN = 32  # plus this, so that a short clip keeps room for timestamps and punctuation
LOOP_TOKENS = 24  # a tail this long that repeats one n-gram is a loop ...
MAX_PERIOD = 12  # ... for n-grams of up to this many tokens (at least 3 repeats of the longest)


def token_budget(seconds: float, limit: int) -> int:
    """How many tokens a decode of `seconds` of audio may sample; `limit`: the model's own (224)."""
    return max(1, min(limit, math.ceil(seconds * TOKENS_PER_SECOND) + TOKENS_MARGIN))


def loops(text_tokens: Sequence[int]) -> bool:
    """Whether the text ends in one n-gram (n <= MAX_PERIOD) repeated over its last max(LOOP_TOKENS, 3n)
    tokens: 24 times 'word', 12 times 'no,', 3 times a 12-token sentence."""
    for period in range(1, MAX_PERIOD + 1):
        length = max(LOOP_TOKENS, 3 * period)
        if len(text_tokens) < length:
            return False
        tail = text_tokens[-length:]
        if all(tail[i] == tail[i + period] for i in range(length - period)):
            return True
    return False


def bounded(tokens: Sequence[int], eot: int, budget: int) -> tuple[list[int], bool]:
    """A window's sampled tokens as the sampling-time rules would have left them: at most `budget`, and
    ending where the text first loops; and whether it looped."""
    text: list[int] = []
    for index, token in enumerate(tokens[:budget]):
        if token < eot:
            text.append(token)
            if loops(text):
                return list(tokens[: index + 1]), True
    return list(tokens[:budget]), False
