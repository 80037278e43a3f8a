"""The formats a Realtime client may send, turned into the service's 16 kHz mono float32 as they arrive.

OpenAI's transcription sessions take `audio/pcm` (16-bit little-endian mono at 24 kHz; the beta name is
`pcm16`), `audio/pcmu` and `audio/pcma` (G.711 mu-law and A-law at 8 kHz; `g711_ulaw`, `g711_alaw`). Each
frame is resampled to 16 kHz by linear interpolation, carried across frames so that a stream cut anywhere
gives the same samples. (Linear interpolation lets a little of 8-12 kHz alias into the band at 24 kHz; speech
holds little energy there and Whisper's mel filters stop at 8 kHz.)
"""

from __future__ import annotations

import numpy as np

from ...audio import SAMPLE_RATE

# the beta name of each format -> (GA name, input rate in Hz)
FORMATS = {
    "pcm16": ("audio/pcm", 24000),
    "g711_ulaw": ("audio/pcmu", 8000),
    "g711_alaw": ("audio/pcma", 8000),
}
BETA_NAMES = {ga: beta for beta, (ga, _) in FORMATS.items()}


def _ulaw_table() -> np.ndarray:
    """ITU-T G.711 mu-law: byte -> linear sample in [-1, 1)."""
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return (np.where(u & 0x80, 0x84 - magnitude, magnitude - 0x84) / 32768.0).astype(np.float32)


def _alaw_table() -> np.ndarray:
    """ITU-T G.711 A-law: byte -> linear sample in [-1, 1)."""
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent, mantissa = (a & 0x70) >> 4, a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1))
    return (np.where(a & 0x80, magnitude, -magnitude) / 32768.0).astype(np.float32)


TABLES = {"g711_ulaw": _ulaw_table(), "g711_alaw": _alaw_table()}


def samples(data: bytes, fmt: str) -> np.ndarray:
    """One frame's bytes as float32 samples at the format's own rate; ValueError on a torn pcm16 sample."""
    if fmt == "pcm16":
        if len(data) % 2:
            raise ValueError("audio/pcm is 16-bit: the frame has an odd number of bytes")
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
    return TABLES[fmt][np.frombuffer(data, np.uint8)]


class Resampler:
    """A stream at `rate` Hz -> 16 kHz, frame by frame: output sample k is input time k * rate / 16000."""

    def __init__(self, rate: int):
        self.step = rate / SAMPLE_RATE
        self.received = 0  # input samples so far
        self.produced = 0  # output samples so far
        self.last = np.zeros(0, np.float32)  # the previous frame's last sample

    def feed(self, frame: np.ndarray) -> np.ndarray:
        if self.step == 1.0:
            return frame
        x = np.concatenate([self.last, frame])
        first = self.received - len(self.last)  # input index of x[0]
        self.received += len(frame)
        if not len(x):
            return x
        end = int((self.received - 1) / self.step)  # the last output sample the input reaches
        ks = np.arange(self.produced, end + 1)
        self.produced = max(self.produced, end + 1)
        self.last = x[-1:]
        return np.interp(ks * self.step - first, np.arange(len(x)), x).astype(np.float32)
