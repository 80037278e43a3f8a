"""The GPU benchmark's model: random weights of real dimensions, and the caps that give every side equal work.

No weights can be downloaded, so `random_ct2` builds an openai-whisper checkpoint of the given dimensions
with every parameter initialised (tools/checkpoints.py) and converts it offline to a float16 CTranslate2
directory (tools/convert), once, under build/bench-gpu/. Random weights give random text of random length, so:
- the service decodes exactly N tokens per window (WHISPER_FORCE_TOKENS) with temperature fallback off;
- the pipeline (in-process and in the peer server) gets end-of-text suppressed and `max_new_tokens` such that
  CTranslate2 generates N tokens per window too: CTranslate2 4.8.5 generates min(max_length // 2,
  max_length - prompt + 1) tokens (measured, service/engines/faster_whisper_ct2.py), and faster-whisper
  passes max_length = prompt + max_new_tokens (faster_whisper/transcribe.py, generate_segment_batched);
  the pipeline's prompt without timestamps is 4 tokens (start, language, task, no-timestamps).
"""

from __future__ import annotations

from pathlib import Path

PIPELINE_PROMPT = 4
NO_FALLBACK = {"temperature": "0", "compression_ratio_threshold": "100", "logprob_threshold": "-100"}


def random_ct2(directory: Path, dims: str) -> Path:
    """build/bench-gpu/<dims>-ct2/: made on first use (a few minutes for large-v3-turbo), then reused."""
    ct2 = directory / f"{dims}-ct2"
    if (ct2 / "model.bin").exists():
        return ct2
    from tools.checkpoints import build_checkpoint
    from tools.convert import convert

    checkpoint = build_checkpoint(directory / f"{dims}.pt", dims)
    convert(checkpoint, ct2, quantization="float16")
    checkpoint.unlink()
    return ct2


def equal_work(ct2: Path, tokens: int) -> tuple[dict, dict]:
    """(the service's extra request fields, the pipeline's extra options) for `tokens` per window."""
    from tokenizers import Tokenizer

    end_of_text = Tokenizer.from_file(str(ct2 / "tokenizer.json")).token_to_id("<|endoftext|>")
    max_length = max(2 * tokens, tokens + PIPELINE_PROMPT - 1)  # as max_length_for() in the service
    options = {"max_new_tokens": max_length - PIPELINE_PROMPT, "suppress_tokens": [-1, end_of_text]}
    return dict(NO_FALLBACK), options
