"""Step 1: the source checkpoint, loaded strictly into openai-whisper's `Whisper`, or ConversionError."""

from __future__ import annotations

from pathlib import Path

DIM_FIELDS = (
    "n_mels",
    "n_audio_ctx",
    "n_audio_state",
    "n_audio_head",
    "n_audio_layer",
    "n_vocab",
    "n_text_ctx",
    "n_text_state",
    "n_text_head",
    "n_text_layer",
)


class ConversionError(Exception):
    """The input is not a Whisper checkpoint, or the converted model does not match it."""


# -- 1. the source checkpoint --------------------------------------------------------------------------------
def load_source(path: Path):
    """The checkpoint as an openai-whisper model in float32 on the CPU; ConversionError if it is not one."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    from service.engines.openai_whisper import official_name

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConversionError(f"{path}: no such file") from None
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        raise ConversionError(f"{path}: not a PyTorch checkpoint ({first_line(error)})") from None
    if not isinstance(checkpoint, dict) or not {"dims", "model_state_dict"} <= checkpoint.keys():
        raise ConversionError(
            f"{path}: not an openai-whisper checkpoint (needs 'dims' and 'model_state_dict')"
        )
    dims, state = checkpoint["dims"], checkpoint["model_state_dict"]
    if not isinstance(dims, dict) or set(dims) != set(DIM_FIELDS):
        raise ConversionError(f"{path}: 'dims' must have exactly {', '.join(DIM_FIELDS)}")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{path}: 'model_state_dict' is not a mapping of names to tensors")
    if any(v.is_floating_point() and not torch.isfinite(v).all() for v in state.values()):
        raise ConversionError(f"{path}: has NaN or infinite weights")
    try:
        model = Whisper(ModelDimensions(**dims))
        model.load_state_dict(state, strict=True)
    except Exception as error:
        raise ConversionError(f"{path}: weights do not fit its dims ({first_line(error)})") from None
    name = official_name(path)
    if name:  # the published word-alignment heads; otherwise whisper's default, the last half of the layers
        model.set_alignment_heads(whisper_alignment_heads()[name])
    return model.float().eval()


def whisper_alignment_heads() -> dict[str, bytes]:
    from whisper import _ALIGNMENT_HEADS

    return _ALIGNMENT_HEADS


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0].split(". ")[0] if text else ""
    return f"{type(error).__name__}: {first}"[:200]
