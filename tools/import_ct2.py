"""Turn a CTranslate2 Whisper directory (faster-whisper's format) into an openai-whisper checkpoint, offline.

    python -m tools.import_ct2 model-ct2/ model.pt

No ctranslate2 is needed to read the weights: `tools.ct2_model` reads `model.bin` with numpy. The steps:
1. read the variables; infer openai-whisper's dims from their shapes and `num_heads`;
2. un-fuse CTranslate2's projections (self-attention q,k,v in `linear_0`; cross-attention k,v in
   `linear_1`; the key projections have no bias, so their fused bias must be zero) into openai-whisper's
   names and load them strictly into `whisper.model.Whisper`;
3. keep the word-alignment heads from config.json (`alignment_heads`) in the checkpoint;
4. verify: on the same log-mel input, openai-whisper's next-token log-probabilities (and language
   probabilities) agree with CTranslate2's within a tolerance, and tokenizer.json encodes like the
   tokenizer openai-whisper picks for the vocabulary size.
Anything that is not a Whisper model, or a result that does not verify, ends with one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

from .convert import ConversionError, verify
from .convert.hf import CHECK_TEXTS, whisper_tokenizer
from .ct2_model import read_model

# The stored weights are used as they are (float16 stays exact in float32), so both sides compute the same
# function; only the order of floating-point sums differs.
IMPORT_TOLERANCE = 1e-3


def layer_count(variables: dict, prefix: str) -> int:
    count = 0
    while f"{prefix}/layer_{count}/ffn/linear_0/weight" in variables:
        count += 1
    return count


def infer_dims(variables: dict) -> dict:
    try:
        conv1 = variables["encoder/conv1/weight"]
        return dict(
            n_mels=int(conv1.shape[1]),
            n_audio_ctx=int(variables["encoder/position_encodings/encodings"].shape[0]),
            n_audio_state=int(conv1.shape[0]),
            n_audio_head=int(variables["encoder/num_heads"]),
            n_audio_layer=layer_count(variables, "encoder"),
            n_vocab=int(variables["decoder/embeddings/weight"].shape[0]),
            n_text_ctx=int(variables["decoder/position_encodings/encodings"].shape[0]),
            n_text_state=int(variables["decoder/embeddings/weight"].shape[1]),
            n_text_head=int(variables["decoder/num_heads"]),
            n_text_layer=layer_count(variables, "decoder"),
        )
    except KeyError as missing:
        raise ConversionError(f"not a CTranslate2 Whisper model: no variable {missing}") from None


def _norm(v: dict, src: str, dst: str) -> dict:
    return {f"{dst}.weight": v[f"{src}/gamma"], f"{dst}.bias": v[f"{src}/beta"]}


def _linear(v: dict, src: str, dst: str, bias: bool = True) -> dict:
    out = {f"{dst}.weight": v[f"{src}/weight"]}
    if bias:
        out[f"{dst}.bias"] = v[f"{src}/bias"]
    return out


def _split(v: dict, src: str, names: list[str], dst: str) -> dict:
    """A fused projection -> one per name; the key projection has no bias (its part must be zero)."""
    weights = np.split(v[f"{src}/weight"], len(names))
    biases = np.split(v[f"{src}/bias"], len(names))
    out = {}
    for name, weight, bias in zip(names, weights, biases):
        out[f"{dst}.{name}.weight"] = weight
        if name == "key":
            if np.abs(bias.astype(np.float32)).max() > 0:
                raise ConversionError(f"{src}: the key projection has a non-zero bias; not Whisper")
        else:
            out[f"{dst}.{name}.bias"] = bias
    return out


def _block(v: dict, src: str, dst: str, cross: bool) -> dict:
    out = {}
    out |= _split(v, f"{src}/self_attention/linear_0", ["query", "key", "value"], f"{dst}.attn")
    out |= _linear(v, f"{src}/self_attention/linear_1", f"{dst}.attn.out")
    out |= _norm(v, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
    if cross:
        out |= _linear(v, f"{src}/attention/linear_0", f"{dst}.cross_attn.query")
        out |= _split(v, f"{src}/attention/linear_1", ["key", "value"], f"{dst}.cross_attn")
        out |= _linear(v, f"{src}/attention/linear_2", f"{dst}.cross_attn.out")
        out |= _norm(v, f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")
    out |= _linear(v, f"{src}/ffn/linear_0", f"{dst}.mlp.0")
    out |= _linear(v, f"{src}/ffn/linear_1", f"{dst}.mlp.2")
    out |= _norm(v, f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")
    return out


def state_dict(v: dict, dims: dict) -> dict:
    """openai-whisper's parameter names -> arrays (float16 or float32 as stored)."""
    out = {
        "encoder.positional_embedding": v["encoder/position_encodings/encodings"],
        "decoder.positional_embedding": v["decoder/position_encodings/encodings"],
        "decoder.token_embedding.weight": v["decoder/embeddings/weight"],
    }
    out |= _linear(v, "encoder/conv1", "encoder.conv1") | _linear(v, "encoder/conv2", "encoder.conv2")
    out |= _norm(v, "encoder/layer_norm", "encoder.ln_post") | _norm(v, "decoder/layer_norm", "decoder.ln")
    for i in range(dims["n_audio_layer"]):
        out |= _block(v, f"encoder/layer_{i}", f"encoder.blocks.{i}", cross=False)
    for i in range(dims["n_text_layer"]):
        out |= _block(v, f"decoder/layer_{i}", f"decoder.blocks.{i}", cross=True)
    return out


def build_model(directory: Path):
    """The CTranslate2 model as an openai-whisper `Whisper` (float32), and its checkpoint dict."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    model_bin = directory / "model.bin"
    if not model_bin.is_file():
        raise ConversionError(f"{directory}: no model.bin; not a CTranslate2 model directory")
    try:
        ct2 = read_model(model_bin)
    except (ValueError, IndexError, OSError, struct.error) as error:
        raise ConversionError(f"{model_bin}: cannot read it ({error})") from None
    if ct2.spec != "WhisperSpec":
        raise ConversionError(f"{model_bin}: a {ct2.spec}, not a Whisper model")
    dims = infer_dims(ct2.variables)
    try:
        arrays = state_dict(ct2.variables, dims)
    except KeyError as missing:
        raise ConversionError(f"{model_bin}: no variable {missing}; not a Whisper model") from None
    state = {name: torch.from_numpy(np.array(a)) for name, a in arrays.items()}
    model = Whisper(ModelDimensions(**dims))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ConversionError(
            f"{model_bin}: weights do not fit openai-whisper ({str(error)[:200]})"
        ) from None
    heads = alignment_heads(directory, dims)
    if heads:
        mask = torch.zeros(dims["n_text_layer"], dims["n_text_head"], dtype=torch.bool)
        for layer, head in heads:
            mask[layer, head] = True
        model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
    checkpoint = {"dims": dims, "model_state_dict": state, "alignment_heads": heads}
    return model.float().eval(), checkpoint


def alignment_heads(directory: Path, dims: dict) -> list[list[int]]:
    config = directory / "config.json"
    if not config.is_file():
        return []
    heads = json.loads(config.read_text()).get("alignment_heads") or []
    for layer, head in heads:
        if not (0 <= layer < dims["n_text_layer"] and 0 <= head < dims["n_text_head"]):
            raise ConversionError(f"{config}: alignment head {[layer, head]} is outside the decoder")
    return [[int(layer), int(head)] for layer, head in heads]


def check_tokenizer(directory: Path, model) -> None:
    """tokenizer.json must encode like the tokenizer openai-whisper will use for this vocabulary."""
    path = directory / "tokenizer.json"
    if not path.is_file():
        return
    from tokenizers import Tokenizer

    theirs, ours = Tokenizer.from_file(str(path)), whisper_tokenizer(model).encoding
    for text in CHECK_TEXTS:
        if theirs.encode(text, add_special_tokens=False).ids != ours.encode(text):
            raise ConversionError(
                f"{path} encodes {text!r} unlike openai-whisper's "
                f"{'multilingual' if model.is_multilingual else 'English'} tokenizer"
            )


def import_ct2(source: str | Path, destination: str | Path, *, tokenizer: bool = True) -> dict:
    """Convert and verify; the destination is written only when the result verified. `tokenizer=False`
    skips the tokenizer.json check: the checkpoint does not carry it (openai-whisper brings its own), and
    Systran's multilingual ones encode some words differently (tools/embedded.py)."""
    import torch

    source, destination = Path(source), Path(destination)
    model, checkpoint = build_model(source)
    if tokenizer:
        check_tokenizer(source, model)
    report = verify(model, source, "float32", tolerance=IMPORT_TOLERANCE)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=destination.parent, suffix=".pt", delete=False) as staged:
        torch.save(checkpoint, staged)
    shutil.move(staged.name, destination)
    return {
        "destination": str(destination),
        "dims": checkpoint["dims"],
        "alignment_heads": checkpoint["alignment_heads"],
        "logprob_diff": report.logprob_diff,
        "relative_logprob_diff": report.relative_logprob_diff,
        "tolerance": report.tolerance,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.import_ct2", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "source", help="CTranslate2 Whisper directory (model.bin, config.json, tokenizer.json)"
    )
    parser.add_argument("destination", help="openai-whisper checkpoint to write (.pt)")
    args = parser.parse_args(argv)
    try:
        report = import_ct2(args.source, args.destination)
    except ConversionError as error:
        print(f"import_ct2: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
