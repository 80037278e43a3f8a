"""The second embedded model, OpenAI's multilingual base (tools/embedded.py): assembled from its two PyPI
packages, imported for openai-whisper, served by both engines on espeak-ng speech in German and English."""

from __future__ import annotations

import hashlib

import pytest
import torch

from service.engines import DecodeOptions, create_engine
from service.settings import Settings
from tools import embedded, speech

GERMAN = "Guten Morgen. Das Wetter ist heute sehr schön."


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[speech.Clip, speech.Clip]:
    """A German sentence and an English one (en-us+f3: a voice the English models understand well)."""
    d = tmp_path_factory.mktemp("base")
    return speech.Clip(speech.say(d / "de.wav", GERMAN, voice="de"), GERMAN), speech.clip(d, 0, "en-us+f3")


def test_the_assembled_directory_is_the_published_model(base_ct2):
    size, sha256 = embedded.BASE_MODEL_BIN
    model_bin = base_ct2 / "model.bin"
    assert model_bin.stat().st_size == size
    assert hashlib.sha256(model_bin.read_bytes()).hexdigest() == sha256
    assert embedded.base_directory(base_ct2) == base_ct2  # assembled once: found whole, kept


def test_the_import_has_base_dims_and_is_multilingual(base_pt):
    checkpoint = torch.load(base_pt, weights_only=True)
    dims = checkpoint["dims"]
    # base's published dims: 512 wide, 8 heads, 6 layers each side, the multilingual vocabulary
    assert (dims["n_audio_state"], dims["n_audio_head"], dims["n_audio_layer"]) == (512, 8, 6)
    assert (dims["n_text_state"], dims["n_text_head"], dims["n_text_layer"]) == (512, 8, 6)
    assert dims["n_vocab"] == 51865  # multilingual (tiny.en: 51864)
    assert len(checkpoint["alignment_heads"]) == 8


@pytest.mark.parametrize("engine", ["openai-whisper", "faster-whisper"])
def test_both_engines_detect_and_transcribe_german(engine, base_pt, base_ct2, clips):
    model = base_ct2 if engine == "faster-whisper" else base_pt
    settings = Settings(
        whisper_model=str(model), whisper_engine=engine, whisper_device="cpu", whisper_compute_type="float32"
    )
    loaded = create_engine(settings)
    loaded.load()
    assert loaded.is_multilingual
    windows = [speech.read_wav(clip.path) for clip in clips]
    de, en = loaded.detect_language(windows)
    assert max(de, key=de.get) == "de" and max(en, key=en.get) == "en"
    german, english = loaded.decode(windows[:1], DecodeOptions(language="de")) + loaded.decode(
        windows[1:], DecodeOptions(language="en")
    )
    assert speech.wer(GERMAN, german.text) < 0.5, german.text  # measured 0.375 on openai-whisper
    assert speech.wer(clips[1].text, english.text) < 0.35, english.text
