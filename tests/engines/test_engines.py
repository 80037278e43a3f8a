"""Both engines at the engine boundary, on the same random model and the same audio.

With the float32 conversion the two engines compute the same function (the converter checks the logits), so
greedy decoding must choose the same tokens and, through the shared split_segments, the same segments.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bench.forced import forcing
from service.engines import DecodeOptions, ModelUnavailable, Thresholds, WindowResult, create_engine
from service.engines.faster_whisper import FasterWhisperEngine, resolve_compute_type
from service.engines.looping import token_budget
from service.settings import SettingsError, from_env
from service.transcript import Segment

SAMPLE_RATE = 16000


def test_create_engine_serves_a_converted_directory_with_the_device_default(converted):
    settings = from_env(
        {
            "WHISPER_ENGINE": "faster-whisper",
            "WHISPER_MODEL": str(converted.destination),
            "WHISPER_DEVICE": "cpu",
        }
    )
    engine = create_engine(settings)
    assert isinstance(engine, FasterWhisperEngine)
    assert (engine.name, engine.device, engine.precision) == ("faster-whisper", "cpu", "int8")
    assert engine.model_name == converted.destination.name
    engine.load()
    engine.warmup()
    assert engine.is_multilingual and engine.text_ctx == 96
    with forcing(engine, 5):
        result = engine.decode([np.zeros(SAMPLE_RATE, np.float32)], DecodeOptions(language="en"))
    assert len(result) == 1 and len(result[0].tokens) == 5
    assert engine.memory() == {}


def test_a_compute_type_the_device_cannot_run_is_refused(converted):
    with pytest.raises(ValueError, match="WHISPER_COMPUTE_TYPE=float16 is not supported on cpu"):
        resolve_compute_type("float16", "cpu")
    assert resolve_compute_type("default", "cpu") == "int8"
    assert resolve_compute_type("float32", "cpu") == "float32"
    with pytest.raises(SettingsError, match="WHISPER_COMPUTE_TYPE"):
        from_env({"WHISPER_ENGINE": "faster-whisper", "WHISPER_COMPUTE_TYPE": "int4"})


def test_a_pt_checkpoint_is_refused_with_the_convert_command(source_checkpoint):
    settings = from_env({"WHISPER_ENGINE": "faster-whisper", "WHISPER_MODEL": str(source_checkpoint)})
    with pytest.raises(ModelUnavailable, match=r"make convert SRC=.*test\.pt DST=.*test-ct2/"):
        create_engine(settings)


def test_out_of_memory_errors_are_recognised():
    assert FasterWhisperEngine.is_out_of_memory(RuntimeError("CUDA failed with error out of memory"))
    assert not FasterWhisperEngine.is_out_of_memory(RuntimeError("No position encodings are defined"))
    assert not FasterWhisperEngine.is_out_of_memory(ValueError("out of memory"))


def test_language_probabilities_agree(openai_engine, faster_engine, windows):
    reference, ours = openai_engine.detect_language(windows), faster_engine.detect_language(windows)
    assert len(ours) == len(windows)
    for expected, got in zip(reference, ours):
        assert set(got) == set(expected) and len(got) == 99
        assert math.isclose(sum(got.values()), 1.0, abs_tol=1e-3)
        assert max(abs(got[code] - p) for code, p in expected.items()) < 1e-3


@pytest.mark.parametrize(
    "options",
    [
        DecodeOptions(language="en"),
        DecodeOptions(language="de", task="translate", prompt="Vorher gesagter Text"),
        DecodeOptions(language="en", word_timestamps=True),
        DecodeOptions(language=None),  # each window's own language, as openai-whisper does
    ],
    ids=["greedy", "prompt-translate", "words", "detect"],
)
def test_both_engines_give_the_same_tokens_and_segments(openai_engine, faster_engine, windows, options):
    reference, ours = openai_engine.decode(windows, options), faster_engine.decode(windows, options)
    assert len(ours) == len(reference) == len(windows)
    for window, expected, got in zip(windows, reference, ours):
        assert got.tokens == expected.tokens and got.tokens
        assert got.text == expected.text
        assert got.compression_ratio == pytest.approx(expected.compression_ratio)
        assert got.looped == expected.looped and got.ended == expected.ended
        if not got.looped and len(got.tokens) < token_budget(len(window) / SAMPLE_RATE, 224):
            # CTranslate2 reports only the score of all it generated, so a decode cut afterwards (looping.py)
            # has that sequence's average on faster-whisper
            assert got.avg_logprob == pytest.approx(expected.avg_logprob, abs=1e-3)
        assert got.no_speech_prob == pytest.approx(expected.no_speech_prob, abs=1e-3)
        assert [segment_fields(s) for s in got.segments] == [segment_fields(s) for s in expected.segments]
        assert_well_formed(got, len(window) / SAMPLE_RATE, options.word_timestamps)


def segment_fields(segment: Segment) -> tuple:
    words = (
        None
        if segment.words is None
        else [(w.word, w.start, w.end, round(w.probability, 3)) for w in segment.words]
    )
    return segment.start, segment.end, segment.text, segment.tokens, words


def assert_well_formed(result: WindowResult, seconds: float, words: bool) -> None:
    assert isinstance(result, WindowResult) and result.segments
    previous_end = 0.0
    for segment in result.segments:
        assert 0.0 <= previous_end <= segment.start <= segment.end <= seconds + 0.02
        assert segment.tokens and all(t < 50257 for t in segment.tokens)
        assert (segment.words is not None) == words
        for word in segment.words or []:
            assert segment.start - 0.02 <= word.start <= word.end <= segment.end + 0.02
            assert 0.0 <= word.probability <= 1.0
        previous_end = segment.end


@pytest.mark.parametrize("tokens", [1, 7, 32, 48])
@pytest.mark.parametrize("prompt", [None, "some earlier words of the same file"])
def test_forced_token_counts_are_exact_on_both_engines(openai_engine, faster_engine, windows, tokens, prompt):
    options = DecodeOptions(language="en", prompt=prompt)
    for engine in (openai_engine, faster_engine):
        with forcing(engine, tokens):
            assert [len(r.tokens) for r in engine.decode(windows, options)] == [tokens] * 3, engine.name


def test_a_window_decodes_the_same_alone_and_in_a_batch(faster_engine, windows):
    """Batching across requests must not change a request's tokens or word timings."""
    options = DecodeOptions(language="en", word_timestamps=True)
    batched = faster_engine.decode(windows, options)
    for window, in_batch in zip(windows, batched):
        (alone,) = faster_engine.decode([window], options)
        assert alone.tokens == in_batch.tokens
        assert [segment_fields(s) for s in alone.segments] == [segment_fields(s) for s in in_batch.segments]


def test_sampling_and_beam_search_follow_the_options(faster_engine, windows):
    sampled = faster_engine.decode(windows, DecodeOptions(language="en", temperature=0.8, best_of=2))
    assert all(r.temperature == 0.8 and 0 < len(r.tokens) <= 48 for r in sampled)
    beam = faster_engine.decode(windows[:1], DecodeOptions(language="en", beam_size=3))
    assert beam[0].temperature == 0.0 and 0 < len(beam[0].tokens) <= 48


def test_sequential_transcription_gives_absolute_monotonic_segments(openai_engine, faster_engine, windows):
    audio = np.concatenate(windows[:2])  # 42 s: two windows
    options = DecodeOptions(language="en")
    for engine in (openai_engine, faster_engine):
        with forcing(engine, 8):
            language, segments = engine.transcribe(audio, options, (0.0, 0.2), Thresholds(), True)
        assert language == "en" and segments, engine.name
        starts = [segment.start for segment in segments]
        assert starts == sorted(starts) and segments[-1].end <= len(audio) / SAMPLE_RATE + 0.02
        assert all(isinstance(s, Segment) and not s.words for s in segments), segments[:2]
        assert all(math.isfinite(s.avg_logprob) and 0 <= s.no_speech_prob <= 1 for s in segments)


def test_sampling_is_repeatable_for_the_same_audio(openai_engine, windows):
    """Fallback temperatures sample; the seed comes from the audio, so one request always gets one text.
    (openai-whisper only: CTranslate2 seeds its per-thread generators once, at their first use.)"""
    options = DecodeOptions(language="en", temperature=0.8)
    first = [r.tokens for r in openai_engine.decode(windows, options)]
    openai_engine.decode(windows[1:], options)  # other work in between moves the global generator on
    assert [r.tokens for r in openai_engine.decode(windows, options)] == first


@pytest.fixture(scope="module")
def real_openai_engine(tiny_en):
    from service.engines.openai_whisper import OpenAIWhisperEngine
    from service.settings import Settings

    engine = OpenAIWhisperEngine(Settings(whisper_model=str(tiny_en), whisper_device="cpu"))
    engine.load()
    return engine


def test_openai_whisper_beam_search_decodes_a_batch_as_it_decodes_each_window(real_openai_engine, tmp_path):
    """openai-whisper 20250625 fails on beam search over a batch of several windows (openai/whisper#2197);
    the engine's BatchedGroups task repairs it, and each window gets the text it gets alone."""
    from tools import speech

    windows = [speech.read_wav(speech.clip(tmp_path, i, speech.VOICES[i]).path) for i in range(3)]
    options = DecodeOptions(language="en", beam_size=5)
    batched = real_openai_engine.decode(windows, options)
    alone = [real_openai_engine.decode([w], options)[0] for w in windows]
    assert [r.tokens for r in batched] == [r.tokens for r in alone]
    assert all(speech.wer(speech.SENTENCES[i], r.text) < 0.5 for i, r in enumerate(batched))  # real text


def test_openai_whisper_best_of_sampling_works_in_a_batch(real_openai_engine, tmp_path):
    from tools import speech

    windows = [speech.read_wav(speech.clip(tmp_path, i).path) for i in range(2)]
    sampled = real_openai_engine.decode(windows, DecodeOptions(language="en", temperature=0.4, best_of=3))
    assert all(r.temperature == 0.4 and r.text for r in sampled)


def test_the_service_ships_no_benchmark_hook():
    """Forced token counts are bench/forced.py's (a subclass the bench installs), not the image's."""
    root = Path(__file__).resolve().parents[2] / "service"
    found = [
        str(p)
        for p in root.rglob("*.py")
        if "force_tokens" in (text := p.read_text()) or "FORCE_TOKENS" in text
    ]
    assert not found, found
