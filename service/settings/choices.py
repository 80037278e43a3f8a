"""The values a knob may take: its Literal choices, and the model names the service answers to."""

from __future__ import annotations

from typing import Literal, get_args

# WHISPER_ENGINE -> its module in service/engines/, which is also whisper-asr-webservice's ASR_ENGINE name
Engine = Literal["openai-whisper", "faster-whisper"]
ENGINES: dict[Engine, str] = {"openai-whisper": "openai_whisper", "faster-whisper": "faster_whisper"}
Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[Device, ...] = get_args(Device)
DecodeMode = Literal["batched", "sequential"]
DECODE_MODES: tuple[DecodeMode, ...] = get_args(DecodeMode)
LogLevel = Literal["debug", "info", "warning", "error"]
LOG_LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)
ComputeType = Literal["default", "float16", "int8_float16", "int8", "int8_float32", "float32", "bfloat16"]
COMPUTE_TYPES: tuple[ComputeType, ...] = get_args(ComputeType)
MAX_BEAM_SIZE = 16  # the widest beam a request (api/openai_fields.py) or BEAM_SIZE may ask for
# OpenAI's transcription model names (openai 3.63's types/audio_model.py AudioModel; the diarizing model's
# speakers come from service/speakers): clients that hard-code one of them reach the loaded model
OPENAI_AUDIO_MODELS = (
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-transcribe",
    "gpt-4o-transcribe-diarize",
)
