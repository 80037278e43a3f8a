"""openai-whisper's DecodingTask as the engine runs it: fixed for batches of several windows
(`BatchedGroups`), each window stopped at its token budget or at a loop (`bounded_task`), a shortened input
encoded as such (`short_features`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from whisper.decoding import DecodingOptions, DecodingTask, LogitFilter
from whisper.model import Whisper

from .looping import loops


class StopLoops(LogitFilter):
    """End a window's text (force end-of-text) once it has sampled its budget of tokens or its text loops
    (looping.py); rows are windows times `n_group` (beams or samples)."""

    def __init__(self, eot: int, sample_begin: int, budgets: list[int], n_group: int):
        self.eot, self.sample_begin, self.budgets, self.n_group = eot, sample_begin, budgets, n_group

    def apply(self, logits: torch.Tensor, tokens: torch.Tensor) -> None:
        for row, sampled in enumerate(tokens[:, self.sample_begin :].tolist()):
            if sampled and sampled[-1] == self.eot:
                continue
            over = len(sampled) >= self.budgets[row // self.n_group]
            if over or loops([t for t in sampled if t < self.eot]):
                logits[row] = -np.inf
                logits[row, self.eot] = 0


def bounded_task(
    task_type: type[DecodingTask], model: Whisper, options: DecodingOptions, budgets: list[int]
) -> DecodingTask:
    """A decoding task whose windows stop at their token budgets and at loops."""
    task = task_type(model, options)
    task.logit_filters.append(StopLoops(task.tokenizer.eot, task.sample_begin, budgets, task.n_group))
    return task


class BatchedGroups(DecodingTask):
    """whisper's DecodingTask with beam search and best-of sampling fixed for batches of several windows.

    Since openai/whisper#1483 the audio features are no longer repeated per beam (or sample), which only
    works by broadcasting when one window is decoded: a batch of several windows with beam_size > 1 fails
    with "The size of tensor a (30) must match the size of tensor b (6)" (openai/whisper#2197 and #2389,
    both open in 20250625). Here they are repeated per group again, for batches of more than one window; a
    single window keeps upstream's path."""

    repeated = False

    def _get_audio_features(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.shape[-1] < self.model.dims.n_audio_ctx * 2:  # shortened (DecodeOptions.context_seconds)
            features = short_features(self.model, mel.half() if self.options.fp16 else mel)
        else:
            features = super()._get_audio_features(mel)
        self.repeated = self.n_group > 1 and features.shape[0] > 1 and bool(self.options.language)
        return features.repeat_interleave(self.n_group, dim=0) if self.repeated else features

    def _detect_language(self, audio_features: torch.Tensor, tokens: torch.Tensor):
        """One language per window, not per beam (the language is given whenever features are repeated)."""
        return super()._detect_language(
            audio_features[:: self.n_group] if self.repeated else audio_features, tokens
        )


def short_features(model: Whisper, mel: torch.Tensor) -> torch.Tensor:
    """The encoder on a log-mel shorter than 30 s, with the first rows of its positional embedding, as
    whisper.cpp's audio_ctx does: a 10 s input encodes in about a third of a 30 s one. The decoder attends
    to features of any length. Upstream's forward asserts the full 1500 positions."""
    encoder = model.encoder
    x = F.gelu(encoder.conv2(F.gelu(encoder.conv1(mel)))).permute(0, 2, 1)
    x = (x + encoder.positional_embedding[: x.shape[1]]).to(x.dtype)
    for block in encoder.blocks:
        x = block(x)
    return encoder.ln_post(x)
