"""server_vad turn detection with the service's Silero VAD on real espeak-ng speech, fed as a live client
sends it (service/api/realtime/turns.py): one turn per sentence, each starting before its speech and ending
after it, never one turn in the silence."""

from __future__ import annotations

import numpy as np
import pytest

from service.api.realtime.config import ServerVad
from service.api.realtime.turns import Buffer, TurnDetector
from tools import speech

SR = 16000
ONSETS = (1.0, 6.5, 12.0)


@pytest.fixture(scope="module")
def three_sentences(tmp_path_factory) -> tuple[np.ndarray, list[tuple[float, float]]]:
    d = tmp_path_factory.mktemp("turns")
    parts = [(onset, i, "en-us") for i, onset in zip((0, 3, 6), ONSETS, strict=True)]
    clip = speech.sequence(d, "three", parts, total=17.0)
    lengths = [len(speech.read_wav(speech.clip(d, i, "en-us").path)) / SR for i in (0, 3, 6)]
    return speech.read_wav(clip.path), [(o, o + n) for o, n in zip(ONSETS, lengths, strict=True)]


def turns(audio: np.ndarray, chunk: int, params: ServerVad) -> list[tuple[float, float]]:
    """Feed `audio` in chunks of `chunk` samples; the (start, end) seconds of each turn found."""
    buffer, detector, found = Buffer(), TurnDetector(params), []
    for offset in range(0, len(audio), chunk):
        buffer.append(audio[offset : offset + chunk])
        change = detector.scan(buffer)
        if change == "started":
            found.append([detector.turn.start / SR, None])
        elif change == "stopped":
            found[-1][1] = detector.turn.speech_end / SR
            buffer.drop_until(detector.turn.speech_end)
            detector.end_turn()
    return [tuple(t) for t in found]


@pytest.mark.parametrize("chunk_ms", [20, 100, 250])
def test_each_sentence_is_one_turn_around_its_speech(three_sentences, chunk_ms):
    audio, sentences = three_sentences
    params = ServerVad()
    found = turns(audio, chunk_ms * SR // 1000, params)
    assert len(found) == len(sentences), found
    pad = params.prefix_padding_ms / 1000
    for (start, end), (onset, speech_end) in zip(found, sentences, strict=True):
        assert onset - pad - 0.1 <= start <= onset + 0.1, (start, onset)
        assert end is not None and speech_end - 0.3 <= end <= speech_end + pad + 0.2, (end, speech_end)


def test_silence_and_noise_start_no_turn():
    rng = np.random.default_rng(0)
    quiet = np.concatenate([np.zeros(3 * SR), rng.normal(0, 0.01, 5 * SR)]).astype(np.float32)
    assert turns(quiet, SR // 10, ServerVad()) == []


def test_a_longer_silence_setting_joins_sentences_into_one_turn(three_sentences):
    audio, _ = three_sentences
    assert len(turns(audio, SR // 10, ServerVad(silence_duration_ms=3000))) == 1
