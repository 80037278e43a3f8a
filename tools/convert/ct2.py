"""Step 4: the Hugging Face directory -> a CTranslate2 directory."""

from __future__ import annotations

import json
from pathlib import Path


# -- 4. CTranslate2 ------------------------------------------------------------------------------------------
def convert_to_ctranslate2(hf_directory: Path, destination: Path, quantization: str) -> None:
    from ctranslate2.converters import TransformersConverter
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # one JSON line on stdout is the command's whole output

    converter = TransformersConverter(
        str(hf_directory), copy_files=["tokenizer.json", "preprocessor_config.json"]
    )
    converter.convert(str(destination), quantization=quantization, force=True)


def record_text_context(directory: Path, n_text_ctx: int) -> None:
    """Keep the decoder's length in config.json: faster-whisper assumes 448; small custom models differ."""
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    config["n_text_ctx"] = n_text_ctx  # read by service.engines.faster_whisper; CTranslate2 ignores it
    config_path.write_text(json.dumps(config, indent=2))
