"""CTranslate2's side of the faster-whisper engine: which device and compute type, how many decoder positions,
openai-whisper's decoding rules as `generate()` options, and CTranslate2's results in the service's terms
(log-probabilities, segments, a precomputed alignment)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens

from ..transcript import Segment, Word
from .base import DecodeOptions
from .segments import untimed_suppressed

OFFICIAL_TEXT_CTX = 448  # decoder positions of every official Whisper model
DEFAULT_COMPUTE_TYPE = {"cuda": "float16", "cpu": "int8"}


def resolve_device(requested: str, index: int = 0) -> tuple[str, int]:
    """("cuda", n) or ("cpu", 0), as CTranslate2 sees the machine (no torch needed)."""
    gpus = ctranslate2.get_cuda_device_count()
    if requested == "auto":
        requested = "cuda" if gpus else "cpu"
    if requested == "cuda":
        if not gpus:
            raise RuntimeError("WHISPER_DEVICE=cuda but CTranslate2 sees no CUDA device")
        return "cuda", index % gpus
    return "cpu", 0


def resolve_compute_type(requested: str, device: str) -> str:
    """WHISPER_COMPUTE_TYPE, or the device's default; refuse a type the device cannot run."""
    compute_type = DEFAULT_COMPUTE_TYPE[device] if requested == "default" else requested
    supported = ctranslate2.get_supported_compute_types(device)
    if compute_type not in supported:
        raise ValueError(
            f"WHISPER_COMPUTE_TYPE={compute_type} is not supported on {device}: "
            f"use one of {', '.join(sorted(supported))}"
        )
    return compute_type


def text_context(model_path: str) -> int:
    """Decoder positions: `tools.convert` records them in config.json; official models have 448."""
    config = Path(model_path) / "config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("n_text_ctx", OFFICIAL_TEXT_CTX))
    return OFFICIAL_TEXT_CTX


@contextlib.contextmanager
def given_alignment(model: WhisperModel, alignment: list[dict]) -> Iterator[None]:
    """Make `model.add_word_timestamps` use an alignment computed beforehand (for one window)."""
    model.find_alignment = lambda *args, **kwargs: [alignment]
    try:
        yield
    finally:
        del model.find_alignment


def step_logprobs(result, tokens: list[int]) -> list[float]:
    """Each chosen token's log-probability under the distribution it was chosen from."""
    out = []
    for row, token in zip(result.logits[0], tokens):
        logits = np.asarray(row, dtype=np.float32)
        top = logits.max()
        out.append(float(logits[token] - top - np.log(np.exp(logits - top).sum())))
    return out


def mean_logprob(result, tokens: list[int]) -> float:
    """openai-whisper's avg_logprob: the sum over the tokens and end-of-text, divided by their count."""
    cumulative = result.scores[0] * len(tokens)  # scores are length-normalised (length_penalty 1)
    return cumulative / (len(tokens) + 1)


def segment_of(s) -> Segment:
    """A segment of faster-whisper's transcribe() (absolute times already)."""
    words = (
        tuple(Word(w.word, w.start, w.end, w.probability) for w in s.words) if s.words is not None else None
    )
    return Segment(
        start=float(s.start),
        end=float(s.end),
        text=s.text,
        tokens=tuple(s.tokens),
        words=words,
        temperature=float(s.temperature),
        avg_logprob=float(s.avg_logprob),
        compression_ratio=float(s.compression_ratio),
        no_speech_prob=float(s.no_speech_prob),
        seek=int(s.seek),
    )


def max_length_for(prompt_length: int, tokens: int) -> int:
    """The `max_length` for which CTranslate2 generates `tokens` new tokens (unless end-of-text comes first).

    CTranslate2's Whisper generates min(max_length // 2, max_length - prompt_length + 1) tokens (measured
    with 4.8.5 for prompts of 3 to 23 tokens), so the larger of the two bounds that give `tokens` is taken.
    """
    return max(2 * tokens, tokens + prompt_length - 1)


def ct2_options(
    tokenizer: Tokenizer,
    options: DecodeOptions,
    prompt_length: int,
    budget: int,
    text_ctx: int,
) -> dict:
    """openai-whisper's decoding rules in CTranslate2's terms (greedy/beam at 0, sampling above)."""
    suppress = list(get_suppressed_tokens(tokenizer, [-1]))
    if not options.timestamps:
        suppress += untimed_suppressed(tokenizer)
    # at most `budget` new tokens (looping.py), never more than text_ctx / 2, like whisper's sample_len
    max_length = min(text_ctx, max_length_for(prompt_length, budget))
    common = dict(
        return_logits_vocab=options.logprobs,  # include[]=logprobs: each step's distribution
        max_length=max_length,
        suppress_tokens=suppress,
        suppress_blank=True,
        return_scores=True,
        return_no_speech_prob=True,
        max_initial_timestamp_index=50,  # openai-whisper: first stamp <= 1 s
    )
    if options.temperature > 0:
        return {
            **common,
            "beam_size": 1,
            "num_hypotheses": options.best_of or 1,
            "sampling_topk": 0,
            "sampling_temperature": options.temperature,
        }
    return {**common, "beam_size": options.beam_size or 1, "patience": 1.0}
