"""Step 5: the converted model against the source, on the same log-mel input."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import ConversionError
from .hf import whisper_tokenizer

# Largest disagreement accepted per stored precision: in next-token log-probabilities relative to their
# spread (so that it means the same for flat random weights and for a trained model), and in absolute
# language probability. float32 differs only by the order of floating-point sums (~1e-6); float16 storage
# rounds every weight (~1e-3).
TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 4e-2}


@dataclass(frozen=True)
class Report:
    destination: Path
    quantization: str
    language_prob_diff: float  # largest |p_source - p_converted| over all language codes
    logprob_diff: float  # largest |log p_source - log p_converted|: whole vocabulary, every step
    relative_logprob_diff: float  # the same over the spread of the source's log-probabilities
    tolerance: float  # on language_prob_diff and relative_logprob_diff


# -- 5. verification -----------------------------------------------------------------------------------------
def probe_mel(source, seed: int = 0) -> np.ndarray:
    """A fixed (1, n_mels, 3000) log-mel input: a chirp in noise, so that every mel band carries signal."""
    import whisper

    rng = np.random.default_rng(seed)
    t = np.arange(whisper.audio.N_SAMPLES, dtype=np.float32) / whisper.audio.SAMPLE_RATE
    audio = 0.3 * np.sin(2 * np.pi * (200 + 40 * t) * t) + 0.05 * rng.standard_normal(t.size)
    mel = whisper.log_mel_spectrogram(audio.astype(np.float32), n_mels=source.dims.n_mels)
    return mel.numpy()[None]


def probe_prompt(source) -> tuple[list[int], int]:
    """Start of transcript, English, transcribe, no timestamps, some text; and where the text starts."""
    tokenizer = whisper_tokenizer(source)
    text = tokenizer.encode(" Hello world, this is a test of the converter")
    sot = list(tokenizer.sot_sequence_including_notimestamps)
    if source.is_multilingual:
        sot[1] = tokenizer.encoding._special_tokens["<|en|>"]
    return sot + text, len(sot)


def source_outputs(source, mel: np.ndarray, prompt: list[int], start: int) -> tuple[dict, np.ndarray]:
    """Language probabilities and next-token log-probabilities at every prompt position from `start`."""
    import torch

    with torch.inference_mode():
        mel_tensor = torch.from_numpy(mel)
        logits = source.logits(torch.tensor([prompt]), source.embed_audio(mel_tensor))[0, start - 1 :]
        languages: dict[str, float] = {}
        if source.is_multilingual:
            _, probs = source.detect_language(mel_tensor, whisper_tokenizer(source))
            languages = probs[0]
    return languages, log_softmax(logits.float().numpy())


def converted_outputs(
    directory: Path, mel: np.ndarray, prompt: list[int], start: int
) -> tuple[dict, np.ndarray]:
    """The same from CTranslate2, where text after the start sequence is a forced prefix (a row per token)."""
    import ctranslate2

    model = ctranslate2.models.Whisper(str(directory), device="cpu", compute_type="float32")
    features = model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)))
    languages = {}
    if model.is_multilingual:
        languages = {token[2:-2]: prob for token, prob in model.detect_language(features)[0]}
    # CTranslate2 generates at most max_length / 2 tokens: room for the prefix and one free step, with
    # every logit filter off so that the rows are the raw next-token distributions.
    steps = len(prompt) - start + 1
    result = model.generate(
        features,
        [prompt],
        beam_size=1,
        max_length=2 * steps,
        return_logits_vocab=True,
        suppress_tokens=[],
        suppress_blank=False,
    )[0]
    rows = np.stack([np.asarray(row, dtype=np.float32) for row in result.logits[0][:steps]])
    return languages, log_softmax(rows)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def verify(source, destination: Path, quantization: str, tolerance: float | None = None) -> Report:
    mel, (prompt, start) = probe_mel(source), probe_prompt(source)
    source_langs, source_logprobs = source_outputs(source, mel, prompt, start)
    if not np.isfinite(source_logprobs).all():
        raise ConversionError("the source model itself produces NaN or infinite logits (weights overflow)")
    converted_langs, converted_logprobs = converted_outputs(destination, mel, prompt, start)
    if source_logprobs.shape != converted_logprobs.shape:
        raise ConversionError(
            f"converted model returned {converted_logprobs.shape} logits, not {source_logprobs.shape}"
        )
    if set(source_langs) != set(converted_langs):
        raise ConversionError("the converted model detects a different set of languages than the source")
    language_diff = max((abs(p - converted_langs[c]) for c, p in source_langs.items()), default=0.0)
    logprob_diff = float(np.abs(source_logprobs - converted_logprobs).max())
    spread = float((source_logprobs.max(axis=-1, keepdims=True) - source_logprobs).max())
    relative_diff = logprob_diff / max(spread, 1e-6)
    if not np.isfinite([language_diff, logprob_diff, spread]).all():
        raise ConversionError("the converted model produces NaN or infinite logits")
    tolerance = TOLERANCE[quantization] if tolerance is None else tolerance
    report = Report(destination, quantization, float(language_diff), logprob_diff, relative_diff, tolerance)
    if max(language_diff, relative_diff) > tolerance:
        raise ConversionError(
            f"converted model disagrees with the source: relative log-prob diff {relative_diff:.2e}, "
            f"language-prob diff {language_diff:.2e} > tolerance {tolerance:g}"
        )
    return report
