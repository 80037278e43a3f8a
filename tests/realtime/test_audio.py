"""The formats a live client sends, turned into 16 kHz float32 (service/api/realtime/audio.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.api.realtime import audio

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # Python 3.11's own G.711 codec: the reference (removed in 3.13)


@pytest.mark.parametrize(
    ("fmt", "decode"), [("g711_ulaw", audioop.ulaw2lin), ("g711_alaw", audioop.alaw2lin)]
)
def test_g711_tables_agree_with_pythons_codec_on_every_byte(fmt, decode):
    every = bytes(range(256))
    expected = np.frombuffer(decode(every, 2), "<i2") / 32768.0
    assert np.array_equal(audio.samples(every, fmt), expected.astype(np.float32))


def test_pcm16_with_a_torn_sample_is_refused():
    with pytest.raises(ValueError, match="odd number of bytes"):
        audio.samples(b"\x00\x01\x02", "pcm16")


@given(cuts=st.lists(st.integers(0, 2400), max_size=12), rate=st.sampled_from([24000, 8000]))
@settings(max_examples=80, deadline=None)
def test_a_stream_cut_anywhere_resamples_to_the_same_samples(cuts, rate):
    signal = np.sin(np.arange(2400) * 0.05).astype(np.float32)
    whole = audio.Resampler(rate).feed(signal)
    stream = audio.Resampler(rate)
    bounds = [0, *sorted(cuts), len(signal)]
    pieces = [stream.feed(signal[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    assert np.allclose(np.concatenate(pieces), whole, atol=1e-6)
    assert len(whole) == int((len(signal) - 1) * 16000 / rate) + 1


@pytest.mark.parametrize("rate", [24000, 8000])
def test_a_tone_keeps_its_pitch(rate):
    seconds, hz = 1.0, 440.0
    tone = np.sin(2 * np.pi * hz * np.arange(int(rate * seconds)) / rate).astype(np.float32)
    out = audio.Resampler(rate).feed(tone)
    peak = np.argmax(np.abs(np.fft.rfft(out))) * 16000 / len(out)
    assert abs(peak - hz) <= 2
