"""LocalAgreement (ufal/whisper_streaming's HypothesisBuffer): of a growing item decoded again and again,
only the words two successive decodes agree on are final, so the text sent while someone speaks is never
taken back.

Words are compared without case and punctuation ("Hello," agrees with "hello"), and each decode is aligned
with what is already final by that text's last words, not only by their count: an early decode of a turn
cut mid-word may have guessed one word as two ("we're" / "we are"), and a later decode must not repeat or
skip a word because of it.
"""

from __future__ import annotations

import re

ALIGN_WORDS = 2  # the final text's last words looked for in a new decode
ALIGN_REACH = 3  # how far from the final text's word count they are looked for


def normal(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


class LocalAgreement:
    def __init__(self):
        self.final: list[str] = []  # words sent as deltas
        self.last: list[str] = []  # the previous decode's words after `final`

    def update(self, text: str) -> str:
        """Take a decode of the whole item so far; return the newly final text ('' when none), with the
        leading space that joins it to what was sent before."""
        fresh = self._after_final(text.split())
        agreed = _agreeing(self.last, fresh)
        self.last = fresh[agreed:]
        return self._send(fresh[:agreed])

    def finish(self, text: str) -> str:
        """The item's final decode: whatever of it follows the final words."""
        return self._send(self._after_final(text.split()))

    def _after_final(self, words: list[str]) -> list[str]:
        """The words of a decode that follow the final text, found by the final text's last words."""
        n = len(self.final)
        if n == 0:
            return words
        tail = [normal(w) for w in self.final[-ALIGN_WORDS:]]
        k = len(tail)
        candidates = range(max(k, n - ALIGN_REACH), min(len(words), n + ALIGN_REACH) + 1)
        matches = [p for p in candidates if [normal(w) for w in words[p - k : p]] == tail]
        position = min(matches, key=lambda p: abs(p - n)) if matches else n
        return words[position:]

    def _send(self, words: list[str]) -> str:
        if not words:
            return ""
        delta = (" " if self.final else "") + " ".join(words)
        self.final += words
        return delta


def _agreeing(a: list[str], b: list[str]) -> int:
    """How many leading words of `a` and `b` agree."""
    n = 0
    while n < min(len(a), len(b)) and normal(a[n]) == normal(b[n]):
        n += 1
    return n
