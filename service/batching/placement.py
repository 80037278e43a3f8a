"""Where a decode's segments go, and what is left to decode: pure functions over rests (no job, no lock).

An input holds one or more rests, concatenated; `bounds` are the input times where each rest starts, and
the input's end. A segment goes to the rest it overlaps most (`owner`); one that runs more than
SEAM_SLACK_SECONDS into another rest holds words of two windows, so it is not placed and the input counts as
covered up to its start only (`place`). Then each rest is complete, or leaves a shorter rest (`settle`): a
rest that made no progress while packed is decoded alone next, so packing never ends a window early.
`pack` packs rests, in window order, into inputs of at most 30 s.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ..audio import WINDOW_SECONDS
from ..transcript import Segment

MIN_PROGRESS_SECONDS = 1.0  # a rest that covered less than this is final (no endless re-decoding)
# speech (VAD) left after an input's last timestamp worth another decode: less is usually the tail of the
# same words (Silero ends regions late, Whisper's last stamp is early), and decoding a tail alone invents
# words ("you")
MIN_SPEECH_LEFT_SECONDS = 1.0
SEAM_SLACK_SECONDS = 0.5  # how far a segment may run into the next rest of a packed input


@dataclass(frozen=True)
class Rest:
    """A window's audio from `offset` seconds to its end; an input the model decodes is one or more rests."""

    window: int
    offset: float = 0.0
    alone: bool = False  # decode it as an input of its own (it made no progress packed with others)


@dataclass
class Settled:
    """What one input's decode settled: segments placed (index of their rest, input times), windows with
    nothing left to decode, and the rests still to decode."""

    placed: list[tuple[int, Segment]] = field(default_factory=list)
    complete: list[int] = field(default_factory=list)
    rests: list[Rest] = field(default_factory=list)


def owner(bounds: Sequence[float], start: float, end: float) -> int:
    """The rest (between consecutive `bounds`) a segment from `start` to `end` overlaps most."""
    if end <= start:
        return min(max(bisect.bisect_right(bounds, start) - 1, 0), len(bounds) - 2)
    overlaps = [min(end, b) - max(start, a) for a, b in zip(bounds, bounds[1:])]
    return overlaps.index(max(overlaps))


def place(bounds: Sequence[float], segments: Sequence[Segment], consumed: float):
    """Each segment's rest, in order, up to the first that straddles a seam; how far the decode covered
    (`cut`), and per rest how far its placed segments reach."""
    placed: list[tuple[int, Segment]] = []
    cut, reach = consumed, list(bounds[:-1])
    for segment in segments:
        start, end = span(segment)
        index = owner(bounds, start, end)
        lo, hi = bounds[index], bounds[index + 1]
        if start < lo - SEAM_SLACK_SECONDS or end > hi + SEAM_SLACK_SECONDS:
            cut = min(cut, start)  # its text holds words of two windows: decode it again
            break
        placed.append((index, segment))
        reach[index] = max(reach[index], min(segment.end, hi))
    return placed, cut, reach


def span(segment: Segment) -> tuple[float, float]:
    """Where a segment's speech is: its times and where its words start (word alignment may put them
    elsewhere than the timestamps the model wrote, e.g. a sentence after a long silence stamped at its
    start); a word's end is left out, as alignment often stretches the last word into the silence after."""
    starts = [w.start for w in segment.words or ()]
    return min([segment.start, *starts]), max([segment.end, *starts])


def settle(
    rests: Sequence[Rest],
    bounds: Sequence[float],
    segments: Sequence[Segment],
    consumed: float,
    silent: bool,
    speech_after: Callable[[Rest], bool],
) -> Settled:
    """One input's decode -> Settled. `speech_after(rest)`: whether the rest still holds speech worth a
    decode (MIN_SPEECH_LEFT_SECONDS)."""
    if len(rests) > 1 and (silent or not segments):
        # One verdict on the whole input would end every rest in it: the first is judged alone next, the
        # others keep their place.
        return Settled(rests=[replace(rests[0], alone=True), *rests[1:]])
    if silent:
        return Settled(complete=[rests[0].window])
    placed, cut, reach = place(bounds, segments, consumed)
    settled = Settled(placed=placed)
    for index, rest in enumerate(rests):
        left = _left(rest, index, bounds, cut, reach[index], packed=len(rests) > 1)
        if left is None or not speech_after(left):
            settled.complete.append(rest.window)
        else:
            settled.rests.append(left)
    return settled


def _left(rest: Rest, index: int, bounds: Sequence[float], cut: float, reach: float, packed: bool):
    """What is left of the rest at `index` after a decode that covered the input up to `cut` (None: none)."""
    if cut >= bounds[index + 1]:
        return None
    reached = index == 0 or cut >= bounds[index] + SEAM_SLACK_SECONDS
    # What the decode covered: its last timestamp when it got this far (word alignment may end a segment
    # before it), else the end of this rest's placed segments
    progress = max(reach, min(cut, bounds[index + 1]) if reached else 0.0) - bounds[index]
    left = Rest(rest.window, rest.offset + max(0.0, progress))
    if not reached or progress >= MIN_PROGRESS_SECONDS:
        return left  # not reached because of the rests before it, or progress
    if packed:
        # Reached but no progress while packed with others (the model stopped, or a segment ran into the
        # next rest): decode it alone next, where the single-window rule below applies.
        return replace(left, alone=True)
    return None  # alone and no progress: final, as transcribe() ends a window


def pack(rests: Sequence[Rest], seconds: Callable[[Rest], float]) -> list[tuple[Rest, ...]]:
    """Rests packed in window order into inputs of at most 30 s (`seconds(rest)`: its length); a rest
    marked `alone` gets an input of its own."""
    inputs: list[list[Rest]] = []
    total = 0.0
    for rest in sorted(rests, key=lambda r: r.window):
        length = seconds(rest)
        if not inputs or rest.alone or inputs[-1][-1].alone or total + length > WINDOW_SECONDS:
            inputs.append([])
            total = 0.0
        inputs[-1].append(rest)
        total += length
    return [tuple(i) for i in inputs]
