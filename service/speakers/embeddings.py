"""Speaker embeddings of speech: resemblyzer's GE2E voice encoder, whose weights ship inside its wheel.

The encoder (a 3-layer LSTM over 40-band mels, 256-d L2-normed output) was trained on 1.6 s partial
utterances. Each speech region is cut into pieces of at most PIECE_SECONDS; a piece's embedding is the mean of
its 1.6 s windows (HOP_FRAMES apart), as resemblyzer's embed_utterance does, and all windows of a file go
through the encoder in batches (on the GPU when there is one). A piece shorter than a window is tiled to a
window's length, so that no neighbour's voice or silence enters its embedding.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE
from ..intake.vad import Region

FRAME_SAMPLES = SAMPLE_RATE // 100  # resemblyzer's mel step: 10 ms
WINDOW_FRAMES = 160  # 1.6 s: the partial utterance length GE2E was trained on
HOP_FRAMES = 40  # 0.4 s between windows
PIECE_SECONDS = 3.0  # a longer speech region is cut into pieces at most this long, each embedded alone
MIN_REGION_SAMPLES = SAMPLE_RATE // 4  # regions shorter than 0.25 s carry too little voice to embed
MERGE_AGREE = 0.7  # cosine similarity a piece needs to its touching neighbours' mean to join them
BATCH_WINDOWS = 256  # windows per encoder call
EMBEDDING_SIZE = 256


@dataclass(frozen=True)
class Windows:
    """Embedded pieces of a file's speech: one row of `vectors` per (start, end) span in seconds."""

    vectors: np.ndarray  # (n, 256) float32, L2-normed
    spans: np.ndarray  # (n, 2) float64 seconds: the part of the file each window speaks for


@dataclass(frozen=True)
class Encoder:
    """A speaker encoder as the diarizer uses it: pieces of a file's speech embedded, a reference clip
    embedded, and how alike touching pieces of one voice must be to merge (its own cosine scale)."""

    name: str
    embed: Callable[[np.ndarray, list[Region]], Windows]
    embed_clip: Callable[[np.ndarray], np.ndarray]
    merge_agree: float
    size: int  # an embedding's length


_encoder = None
_lock = threading.Lock()


def encoder():
    """The voice encoder, loaded once per process; on CUDA when torch sees a GPU."""
    global _encoder
    with _lock:
        if _encoder is None:
            import torch
            from resemblyzer import VoiceEncoder

            device = "cuda" if torch.cuda.is_available() else "cpu"
            _encoder = VoiceEncoder(device=device, verbose=False)
        return _encoder


def mel(audio: np.ndarray) -> np.ndarray:
    """resemblyzer's mel spectrogram (frames, 40) of 16 kHz audio."""
    from resemblyzer.audio import wav_to_mel_spectrogram

    return wav_to_mel_spectrogram(audio.astype(np.float32))


def loudness_normalized(audio: np.ndarray) -> np.ndarray:
    """Raised (never lowered) to resemblyzer's -30 dBFS, as its preprocess_wav does before embedding."""
    from resemblyzer.audio import normalize_volume
    from resemblyzer.hparams import audio_norm_target_dBFS

    audio = audio.astype(np.float32)
    if not np.any(audio):  # digital silence: its loudness is -inf dBFS and the gain would be inf (NaN audio)
        return audio
    return normalize_volume(audio, audio_norm_target_dBFS, increase_only=True)


def pieces(region: Region) -> list[Region]:
    """A region cut into equal pieces of at most PIECE_SECONDS: each piece is one voice's turn or part."""
    count = max(1, math.ceil((region.end - region.start) / (PIECE_SECONDS * SAMPLE_RATE)))
    bounds = np.linspace(region.start, region.end, count + 1).round().astype(int)
    return [Region(int(a), int(b)) for a, b in zip(bounds, bounds[1:])]


def piece_windows(audio: np.ndarray, piece: Region) -> list[np.ndarray]:
    """A piece's mel windows of WINDOW_FRAMES, HOP_FRAMES apart; a piece shorter than a window is tiled to
    a window's length, so that only its own voice is heard."""
    frames = mel(audio[piece.start : piece.end])
    if len(frames) <= WINDOW_FRAMES:
        return [np.resize(frames, (WINDOW_FRAMES, frames.shape[1]))]
    starts = list(range(0, len(frames) - WINDOW_FRAMES + 1, HOP_FRAMES))
    if starts[-1] + WINDOW_FRAMES < len(frames):
        starts.append(len(frames) - WINDOW_FRAMES)
    return [frames[s : s + WINDOW_FRAMES] for s in starts]


def embed(audio: np.ndarray, regions: list[Region]) -> Windows:
    """One embedding per piece of speech (its windows' normed mean); windows go to the encoder in batches."""
    audio = loudness_normalized(audio)
    mels, owner, spans = [], [], []
    for region in regions:
        if region.end - region.start < MIN_REGION_SAMPLES:
            continue
        for piece in pieces(region):
            found = piece_windows(audio, piece)
            mels += found
            owner += [len(spans)] * len(found)
            spans.append((piece.start / SAMPLE_RATE, piece.end / SAMPLE_RATE))
    if not mels:
        return Windows(np.zeros((0, EMBEDDING_SIZE), np.float32), np.zeros((0, 2)))
    vectors = encode(np.stack(mels))
    sums = np.zeros((len(spans), vectors.shape[1]), np.float32)
    np.add.at(sums, np.asarray(owner), vectors)
    return Windows(normed(sums), np.array(spans, dtype=np.float64))


def merged(pieces: Windows, agree: float = MERGE_AGREE) -> Windows:
    """Touching pieces (cut from one speech region) whose voices agree, as one piece: their normed mean.
    A longer stretch of one voice averages over more sounds, so its embedding is more its speaker's and less
    its words' (one voice's pieces measured 0.8-0.9 apart, against 0.5-0.8 between voices: docs/accuracy.md);
    a piece that disagrees (a speaker change inside a region) starts a piece of its own."""
    groups: list[list[int]] = []
    for i, (start, _) in enumerate(pieces.spans):
        last = groups[-1] if groups else None
        if last and abs(start - pieces.spans[last[-1], 1]) < 1e-6:
            if float(pieces.vectors[i] @ normed(pieces.vectors[last].mean(axis=0))) >= agree:
                last.append(i)
                continue
        groups.append([i])
    vectors = [pieces.vectors[g].mean(axis=0) for g in groups]
    spans = [(pieces.spans[g[0], 0], pieces.spans[g[-1], 1]) for g in groups]
    width = pieces.vectors.shape[1]  # the encoder's embedding size
    return Windows(normed(np.array(vectors, np.float32).reshape(-1, width)), np.array(spans).reshape(-1, 2))


def normed(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-9)


def encode(mels: np.ndarray) -> np.ndarray:
    """(n, frames, 40) mels -> (n, 256) embeddings, BATCH_WINDOWS at a time, without gradients."""
    import torch

    model = encoder()
    out = []
    with torch.inference_mode():
        for i in range(0, len(mels), BATCH_WINDOWS):
            batch = torch.from_numpy(mels[i : i + BATCH_WINDOWS]).to(model.device)
            out.append(model(batch).float().cpu().numpy())
    return np.concatenate(out)


def embed_clip(audio: np.ndarray) -> np.ndarray:
    """One L2-normed embedding of a whole clip (a known speaker's reference): its windows' mean."""
    audio = loudness_normalized(audio)
    vectors = encode(np.stack(piece_windows(audio, Region(0, len(audio)))))
    return normed(vectors.mean(axis=0))


RESEMBLYZER = Encoder("resemblyzer", embed, embed_clip, MERGE_AGREE, EMBEDDING_SIZE)
