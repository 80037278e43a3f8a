"""Speech regions -> windows: what the model decodes, and the map from window times back to file times.

A window holds at most 30 s of audio (Whisper's receptive field). With VAD, a window is the concatenation
of consecutive padded speech regions (faster-whisper's batched pipeline and WhisperX do the same): silence
between them is left out, so the model neither spends time on it nor invents words in it, and a window is
dense with speech. `Window.to_file_time` undoes the concatenation for every timestamp. Without VAD, a
window is one contiguous region, cut at the quietest moment of its last 6 s.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE, WINDOW_SAMPLES
from .vad import Region, VadParams, pad, speech_regions

FRAME = SAMPLE_RATE // 100  # 160 samples: 10 ms energy frames for finding silences
MIN_WINDOW_SECONDS = 24  # a cut is searched for in the last 6 s of each window: few windows, words intact
QUIET_FRAMES = 20  # 200 ms: the stretch whose energy decides where to cut
# Without VAD, where the speech is (VAD_*'s defaults): Whisper may end a window's text early, before a
# sentence that follows a long silence in the same window; that rest is decoded again only when it holds
# speech, so that neither the sentence is lost nor words are invented in a silence (issue #30)
SPEECH_MAP = VadParams(threshold=0.5, min_silence_ms=1000, speech_pad_ms=0)
SPEECH_LEAD_SECONDS = 0.4  # what is decoded of a silence before speech (VAD_SPEECH_PAD_MS's default)


@dataclass(frozen=True)
class Window:
    regions: tuple[Region, ...]  # of the file, in order, concatenated into the window's audio

    @property
    def samples(self) -> int:
        return sum(s.end - s.start for s in self.regions)

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    @property
    def start(self) -> int:
        return self.regions[0].start

    def audio(self, source: np.ndarray) -> np.ndarray:
        if len(self.regions) == 1:
            return source[self.start : self.regions[0].end]
        return np.concatenate([source[s.start : s.end] for s in self.regions])

    def after(self, seconds: float) -> Window:
        """The part of the window from `seconds` into its audio to its end, as a window of its own."""
        cut, position, regions = round(seconds * SAMPLE_RATE), 0, []
        for region in self.regions:
            length = region.end - region.start
            if position + length > cut:
                regions.append(Region(region.start + max(0, cut - position), region.end))
            position += length
        return Window(tuple(regions) or (Region(self.regions[-1].end, self.regions[-1].end),))

    def to_file_time(self, seconds: float, is_end: bool = False) -> float:
        """A time in the window's audio -> the same moment in the file. A time on the seam of two regions
        belongs to the earlier one when it ends something (`is_end`), to the later one when it starts."""
        offsets = self._offsets()
        sample = min(max(0, round(seconds * SAMPLE_RATE)), offsets[-1])
        index = (bisect.bisect_left if is_end else bisect.bisect_right)(offsets, sample) - 1
        index = min(max(index, 0), len(self.regions) - 1)
        region = self.regions[index]
        return (region.start + min(sample - offsets[index], region.end - region.start)) / SAMPLE_RATE

    def _offsets(self) -> list[int]:
        offsets = [0]
        for s in self.regions:
            offsets.append(offsets[-1] + s.end - s.start)
        return offsets


def speech_windows(regions: list[Region], audio: np.ndarray) -> list[Window]:
    """Padded speech regions packed in order into windows of at most 30 s of audio; a region longer than
    that is cut at its quiet moments first."""
    windows: list[Window] = []
    current: list[Region] = []
    for region in (cut for r in regions for cut in split_long(r, audio)):
        if current and sum(r.end - r.start for r in current) + region.end - region.start > WINDOW_SAMPLES:
            windows.append(Window(tuple(current)))
            current = []
        current.append(region)
    if current:
        windows.append(Window(tuple(current)))
    return windows


def contiguous_windows(audio: np.ndarray) -> list[Window]:
    """Without VAD: the whole file in windows of at most 30 s, cut at pauses."""
    return [Window((r,)) for r in split_long(Region(0, len(audio)), audio)]


def from_first_speech(window: Window, speech: list[Region]) -> Window:
    """A contiguous window from SPEECH_LEAD_SECONDS before its first speech: Whisper decodes a long silence
    at the start of a window into ' .' or ' you' and may never reach the sentence after it (issue #30: one
    15 s into a window was lost). A window without speech is left whole."""
    (region,) = window.regions
    starts = [r.start for r in speech if r.end > region.start and r.start < region.end]
    if not starts:
        return window
    lead = round(SPEECH_LEAD_SECONDS * SAMPLE_RATE)
    return Window((Region(max(region.start, max(starts[0], region.start) - lead), region.end),))


def split_long(region: Region, audio: np.ndarray) -> list[Region]:
    """A region cut into regions of at most 30 s, each cut at the quietest 200 ms found 24-30 s into it, so
    that words are not split where the speaker pauses."""
    limit, earliest = WINDOW_SAMPLES, MIN_WINDOW_SECONDS * SAMPLE_RATE
    cuts, start = [], region.start
    energy = None
    while region.end - start > limit:
        if energy is None:
            energy = _frame_energy(audio)
        lo, hi = (start + earliest) // FRAME, (start + limit) // FRAME - QUIET_FRAMES
        quiet = np.convolve(energy[lo : hi + QUIET_FRAMES], np.ones(QUIET_FRAMES), "valid")
        quietest = lo + int(np.argmin(quiet)) + QUIET_FRAMES // 2
        end = min(quietest * FRAME, start + limit)
        cuts.append(Region(start, end))
        start = end
    cuts.append(Region(start, region.end))
    return cuts


def _frame_energy(audio: np.ndarray) -> np.ndarray:
    frames = len(audio) // FRAME
    return np.square(audio[: frames * FRAME].reshape(frames, FRAME), dtype=np.float32).mean(axis=1)


def plan(
    audio: np.ndarray, vad: VadParams | None, map_speech: bool = True
) -> tuple[list[Window], list[Region]]:
    """The windows to decode and the (unpadded) speech regions of the file. Without VAD every sample is
    decoded, and the speech regions are still found (SPEECH_MAP), only to tell whether what is left of a
    window after the model stopped holds speech; `map_speech=False` (nothing will ask): everything."""
    if vad is None:
        if not map_speech:
            return contiguous_windows(audio), [Region(0, len(audio))]
        speech = speech_regions(audio, SPEECH_MAP)
        return [from_first_speech(w, speech) for w in contiguous_windows(audio)], speech
    speech = speech_regions(audio, vad)
    return speech_windows(pad(speech, vad.speech_pad_ms, len(audio)), audio), speech
