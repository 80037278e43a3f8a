"""Turn an openai-whisper checkpoint (.pt) into a CTranslate2 directory for faster-whisper, offline.

    python -m tools.convert model.pt model-ct2/                  # float16 weights (any device)
    python -m tools.convert model.pt model-ct2/ --quantization float32

Nothing is downloaded. transformers 5 no longer ships its openai-to-Hugging-Face converter, so the steps are:
1. read the checkpoint and load it strictly into openai-whisper's `Whisper` (refuses anything else);
2. rename its weights to Hugging Face's layout and load them strictly into `WhisperForConditionalGeneration`;
3. build `tokenizer.json` from the `*.tiktoken` file inside the openai-whisper package and check it encodes
   like tiktoken; write `preprocessor_config.json` with `WhisperFeatureExtractor`;
4. convert that Hugging Face directory with `ctranslate2.converters.TransformersConverter`;
5. verify: on the same log-mel input, the converted model's language probabilities and next-token
   log-probabilities agree with the source model's within a tolerance.
A file that is not a Whisper checkpoint, or a conversion that does not verify, ends with one line on stderr
and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path

from .checkpoint import ConversionError, load_source
from .ct2 import convert_to_ctranslate2, record_text_context
from .hf import write_hf_directory
from .verify import TOLERANCE, Report, verify

__all__ = ["ConversionError", "Report", "convert", "load_source", "main", "verify"]
QUANTIZATIONS = tuple(TOLERANCE)


# -- the command ---------------------------------------------------------------------------------------------
def convert(source_path: str | Path, destination: str | Path, quantization: str = "float16") -> Report:
    """Convert and verify; the destination is replaced only when the new model verified."""
    if quantization not in QUANTIZATIONS:
        raise ConversionError(f"quantization {quantization!r} is not one of {', '.join(QUANTIZATIONS)}")
    source = load_source(Path(source_path))
    destination = Path(destination)
    with tempfile.TemporaryDirectory(prefix="whisper-convert-") as work:
        hf_directory, staged = Path(work) / "hf", Path(work) / "ct2"
        write_hf_directory(source, hf_directory)
        convert_to_ctranslate2(hf_directory, staged, quantization)
        record_text_context(staged, source.dims.n_text_ctx)
        report = verify(source, staged, quantization)
        if destination.exists():
            shutil.rmtree(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged), destination)
    return dataclasses.replace(report, destination=destination)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.convert", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("source", help="openai-whisper checkpoint (.pt)")
    parser.add_argument("destination", help="CTranslate2 model directory to write (replaced if present)")
    parser.add_argument(
        "--quantization",
        choices=QUANTIZATIONS,
        default="float16",
        help="how weights are stored (default float16); int8 is a load-time choice (WHISPER_COMPUTE_TYPE)",
    )
    args = parser.parse_args(argv)
    try:
        report = convert(args.source, args.destination, args.quantization)
    except ConversionError as error:
        print(f"convert: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({**dataclasses.asdict(report), "destination": str(report.destination)}))
    return 0
