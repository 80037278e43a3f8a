"""intake/windows.py: regions packed into windows, and every window time mapped back to the file."""

from __future__ import annotations

import numpy as np
import pytest

from service.audio import SAMPLE_RATE, WINDOW_SAMPLES
from service.intake.vad import Region
from service.intake.windows import (
    SPEECH_LEAD_SECONDS,
    Window,
    contiguous_windows,
    from_first_speech,
    speech_windows,
)

SR = SAMPLE_RATE
# 2 s of speech at 10 s, 3 s at 20 s: concatenated, window time 2.0 is the seam
TWO = Window((Region(10 * SR, 12 * SR), Region(20 * SR, 23 * SR)))


@pytest.mark.parametrize(
    ("seconds", "is_end", "file_seconds"),
    [
        (0.0, False, 10.0),
        (1.5, False, 11.5),
        (2.0, False, 20.0),  # a start on the seam belongs to the later region
        (2.0, True, 12.0),  # an end on the seam to the earlier one
        (4.5, True, 22.5),
        (9.0, True, 23.0),  # past the end: the window's end
        (-1.0, False, 10.0),  # before the start: its start
    ],
)
def test_window_times_map_to_file_times(seconds, is_end, file_seconds):
    assert TWO.to_file_time(seconds, is_end=is_end) == pytest.approx(file_seconds)


def test_the_rest_of_a_window_is_a_window_of_its_own():
    rest = TWO.after(1.0)
    assert rest.regions == (Region(11 * SR, 12 * SR), Region(20 * SR, 23 * SR))
    assert rest.seconds == pytest.approx(4.0) and rest.to_file_time(1.0) == pytest.approx(20.0)
    assert TWO.after(5.0).seconds == 0.0  # nothing left: an empty window at the end


def test_window_audio_is_its_regions_concatenated():
    audio = np.arange(30 * SR, dtype=np.float32)
    out = TWO.audio(audio)
    assert len(out) == TWO.samples == 5 * SR
    assert out[0] == 10 * SR and out[2 * SR] == 20 * SR


def test_speech_regions_are_packed_into_windows_of_at_most_30_s():
    audio = np.zeros(120 * SR, dtype=np.float32)
    regions = [Region(s * SR, (s + 10) * SR) for s in (0, 15, 30, 45)]  # four 10 s regions
    windows = speech_windows(regions, audio)
    assert [len(w.regions) for w in windows] == [3, 1]
    assert all(w.samples <= WINDOW_SAMPLES for w in windows)


def test_without_vad_the_file_is_cut_into_contiguous_windows_at_its_quietest_moment():
    audio = np.full(70 * SR, 0.5, dtype=np.float32)
    audio[27 * SR : 27 * SR + SR // 2] = 0.0  # a pause 27 s in
    windows = contiguous_windows(audio)
    assert all(len(w.regions) == 1 and w.samples <= WINDOW_SAMPLES for w in windows)
    assert windows[0].regions[0].end / SR == pytest.approx(27.0, abs=0.3)
    assert windows[-1].regions[0].end == len(audio)


def test_without_vad_a_window_starts_just_before_its_first_speech():
    """Issue 30: 15 s of silence at a window's start became ' 3.0.0.0' and the sentence after it was lost."""
    sr, lead = SAMPLE_RATE, round(SPEECH_LEAD_SECONDS * SAMPLE_RATE)
    window = Window((Region(25 * sr, 45 * sr),))
    assert from_first_speech(window, [Region(2 * sr, 5 * sr), Region(41 * sr, 44 * sr)]).regions == (
        Region(41 * sr - lead, 45 * sr),
    )
    assert from_first_speech(window, [Region(24 * sr, 27 * sr)]) == window  # speech across the cut
    assert from_first_speech(window, [Region(25 * sr + 100, 27 * sr)]).start == 25 * sr  # never before it
    assert from_first_speech(window, [Region(2 * sr, 5 * sr)]) == window  # no speech: decoded whole


def test_the_audio_constants_are_whispers_own():
    """service/audio.py owns the window's time constants: openai-whisper's, which the engines load."""
    import whisper.audio
    import whisper.tokenizer

    from service import audio

    assert (audio.SAMPLE_RATE, audio.HOP_LENGTH, audio.WINDOW_SECONDS) == (
        whisper.audio.SAMPLE_RATE,
        whisper.audio.HOP_LENGTH,
        whisper.audio.CHUNK_LENGTH,
    )
    assert (audio.WINDOW_SAMPLES, audio.WINDOW_FRAMES) == (whisper.audio.N_SAMPLES, whisper.audio.N_FRAMES)
    assert audio.AUDIO_TOKENS_PER_SECOND == whisper.audio.TOKENS_PER_SECOND
    tokenizer = whisper.tokenizer.get_tokenizer(multilingual=False)
    last = tokenizer.encoding.encode("<|30.00|>", allowed_special="all")
    assert last == [tokenizer.timestamp_begin + audio.TIMESTAMP_TOKENS - 1]
