"""The decoding knobs: the scheduler's batches, bounds and deadlines (service/batching/), and voice activity
detection (service/intake/vad.py)."""

from __future__ import annotations

from . import choices
from .knobs import Knobs, knob
from .parse import Rule, boolean, choice, fraction, number

# {batch_sizes}, {untimed_beams}: the engine classes' own defaults (service/engines), which the docs fill in
_PER_DEVICE = "the engine's, {batch_sizes} (on cpu, fewer while short requests come: INTERACTIVE_BATCH_SIZE)"


class DecodingSettings(Knobs):
    # scheduler
    decode_mode: choices.DecodeMode = knob(
        "DECODE_MODE",
        "batched",
        choice(choices.DECODE_MODES),
        "batched \\| sequential (openai-whisper's transcribe()), unless a request chooses.",
    )
    batch_size: int = knob(
        "BATCH_SIZE",
        0,
        number(int, 0, "16"),
        "Inputs per model call (each <= 30 s of one request's audio); 0: " + _PER_DEVICE,
    )
    batch_wait_ms: int = knob(
        "BATCH_WAIT_MS",
        250,
        number(int, 0, "250"),
        "How long a batch under BATCH_SIZE waits for requests still decoding their audio.",
    )
    beam_size: int = knob(
        "BEAM_SIZE",
        1,
        number(int, 1, "5", choices.MAX_BEAM_SIZE),
        "Beam width when a request does not choose; 1: greedy.",
    )
    untimed_decoding: bool = knob(
        "UNTIMED_DECODING",
        True,
        boolean,
        "json/text/txt responses: decode without timestamp tokens, as faster-whisper's batched pipeline.",
    )
    untimed_beam_size: int = knob(
        "UNTIMED_BEAM_SIZE",
        0,
        number(int, 0, "5", choices.MAX_BEAM_SIZE),
        "Untimed decoding's beam width unless a request chooses; 0: the engine's, {untimed_beams}.",
    )
    queue_max_seconds: float = knob(
        "QUEUE_MAX_SECONDS",
        14400.0,
        number(float, 1, "14400"),
        "Audio seconds accepted but not yet finished; more get 429.",
    )
    queue_max_requests: int = knob(
        "QUEUE_MAX_REQUESTS",
        24,
        number(int, 1, "24"),
        "Requests accepted but not finished; below THREADS (checked), else excess would queue unseen.",
    )
    key_max_share: float = knob(
        "KEY_MAX_SHARE", 0.5, fraction, "With API_KEYS: the fraction of both queue bounds one key may hold."
    )
    request_timeout: float = knob(
        "REQUEST_TIMEOUT", 120.0, number(float, 1, "120"), "Seconds of deadline for any request ..."
    )
    request_timeout_per_audio_second: float = knob(
        "REQUEST_TIMEOUT_PER_AUDIO_SECOND",
        1.0,
        number(float, 0, "1.0"),
        "... plus this many per audio second.",
    )

    # voice activity detection (intake/vad.py): only speech is decoded
    vad: bool = knob(
        "VAD",
        True,
        boolean,
        "Decode only speech, for requests that do not choose (chunking_strategy, vad_filter).",
    )
    vad_threshold: float = knob(
        "VAD_THRESHOLD",
        0.5,
        Rule("0.5", "is not a probability in [0.01, 1)", {"ge": 0.01, "lt": 1}),
        "Silero speech probability.",
    )
    vad_min_silence_ms: int = knob(
        "VAD_MIN_SILENCE_MS", 1000, number(int, 0, "1000"), "A pause this long ends a speech region."
    )
    vad_speech_pad_ms: int = knob(
        "VAD_SPEECH_PAD_MS", 400, number(int, 0, "400"), "Audio kept on each side of a speech region."
    )
