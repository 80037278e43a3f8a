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
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Largest disagreement accepted per stored precision: in next-token log-probabilities relative to their
# spread (so that it means the same for flat random weights and for a trained model), and in absolute
# language probability. float32 differs only by the order of floating-point sums (~1e-6); float16 storage
# rounds every weight (~1e-3).
TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 4e-2}
QUANTIZATIONS = tuple(TOLERANCE)
CHECK_TEXTS = (
    "Hello world, this is a test.",
    " Grüße aus Köln: 1234 ½ ☃",
    "日本語のテキスト",
    "  spaces\n\tand tabs",
)

# openai-whisper's module names -> Hugging Face's, applied in order to every key.
RENAMES = (
    ("encoder.positional_embedding", "encoder.embed_positions.weight"),
    ("decoder.positional_embedding", "decoder.embed_positions.weight"),
    ("token_embedding", "embed_tokens"),
    ("encoder.ln_post", "encoder.layer_norm"),
    ("decoder.ln.", "decoder.layer_norm."),
    ("blocks", "layers"),
    (".cross_attn.query", ".encoder_attn.q_proj"),
    (".cross_attn.key", ".encoder_attn.k_proj"),
    (".cross_attn.value", ".encoder_attn.v_proj"),
    (".cross_attn.out", ".encoder_attn.out_proj"),
    (".cross_attn_ln", ".encoder_attn_layer_norm"),
    (".attn.query", ".self_attn.q_proj"),
    (".attn.key", ".self_attn.k_proj"),
    (".attn.value", ".self_attn.v_proj"),
    (".attn.out", ".self_attn.out_proj"),
    (".attn_ln", ".self_attn_layer_norm"),
    (".mlp.0", ".fc1"),
    (".mlp.2", ".fc2"),
    (".mlp_ln", ".final_layer_norm"),
)
DIM_FIELDS = ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer", "n_vocab",
              "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer")  # fmt: skip


class ConversionError(Exception):
    """The input is not a Whisper checkpoint, or the converted model does not match it."""


@dataclass(frozen=True)
class Report:
    destination: Path
    quantization: str
    language_prob_diff: float  # largest |p_source - p_converted| over all language codes
    logprob_diff: float  # largest |log p_source - log p_converted|: whole vocabulary, every step
    relative_logprob_diff: float  # the same over the spread of the source's log-probabilities
    tolerance: float  # on language_prob_diff and relative_logprob_diff


# -- 1. the source checkpoint --------------------------------------------------------------------------------
def load_source(path: Path):
    """The checkpoint as an openai-whisper model in float32 on the CPU; ConversionError if it is not one."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConversionError(f"{path}: no such file") from None
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        raise ConversionError(f"{path}: not a PyTorch checkpoint ({_first_line(error)})") from None
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
        raise ConversionError(f"{path}: weights do not fit its dims ({_first_line(error)})") from None
    name = official_name(path)
    if name:  # the published word-alignment heads; otherwise whisper's default, the last half of the layers
        model.set_alignment_heads(whisper_alignment_heads()[name])
    return model.float().eval()


def official_name(path: Path) -> str | None:
    """The official model this file is (its SHA-256 is part of openai-whisper's download URL), or None."""
    import hashlib

    from whisper import _MODELS

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 24), b""):
            digest.update(block)
    by_hash = {url.split("/")[-2]: name for name, url in _MODELS.items()}
    return by_hash.get(digest.hexdigest())


def whisper_alignment_heads() -> dict[str, bytes]:
    from whisper import _ALIGNMENT_HEADS

    return _ALIGNMENT_HEADS


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0].split(". ")[0] if text else ""
    return f"{type(error).__name__}: {first}"[:200]


# -- 2. Hugging Face model -----------------------------------------------------------------------------------
def hf_key(key: str) -> str:
    for old, new in RENAMES:
        key = key.replace(old, new)
    return "model." + key


def hf_state_dict(source_state: dict) -> dict:
    state = {hf_key(k): v for k, v in source_state.items() if k != "alignment_heads"}
    state["proj_out.weight"] = source_state["decoder.token_embedding.weight"]  # whisper ties them
    return state


def hf_model(source):
    """The same weights in `WhisperForConditionalGeneration`, loaded strictly (every key, every shape)."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    dims = source.dims
    tokens = special_tokens(source)
    config = WhisperConfig(
        vocab_size=dims.n_vocab, num_mel_bins=dims.n_mels,
        encoder_layers=dims.n_audio_layer, encoder_attention_heads=dims.n_audio_head,
        decoder_layers=dims.n_text_layer, decoder_attention_heads=dims.n_text_head,
        d_model=dims.n_audio_state, encoder_ffn_dim=4 * dims.n_audio_state,
        decoder_ffn_dim=4 * dims.n_text_state, max_source_positions=dims.n_audio_ctx,
        max_target_positions=dims.n_text_ctx, activation_function="gelu", scale_embedding=False,
        bos_token_id=tokens["<|endoftext|>"], eos_token_id=tokens["<|endoftext|>"],
        pad_token_id=tokens["<|endoftext|>"], decoder_start_token_id=tokens["<|startoftranscript|>"],
        tie_word_embeddings=True, dtype="float32",
    )  # fmt: skip
    if dims.n_audio_state != dims.n_text_state:
        raise ConversionError("encoder and decoder widths differ; Hugging Face Whisper needs them equal")
    model = WhisperForConditionalGeneration(config)
    try:
        model.load_state_dict(hf_state_dict(source.state_dict()), strict=True)
    except RuntimeError as error:
        raise ConversionError(
            f"renamed weights do not fit Hugging Face Whisper ({_first_line(error)})"
        ) from None
    model.generation_config = generation_config(source, tokens)
    return model.eval()


def generation_config(source, tokens: dict[str, int]):
    """What ctranslate2's converter reads into config.json: languages, suppression, alignment heads."""
    from transformers import GenerationConfig
    from whisper.tokenizer import LANGUAGES

    tokenizer = whisper_tokenizer(source)
    languages = [f"<|{code}|>" for code in list(LANGUAGES)[: source.num_languages]]
    heads = source.alignment_heads.to_dense().nonzero().tolist()  # (layer, head) pairs
    return GenerationConfig(
        decoder_start_token_id=tokens["<|startoftranscript|>"],
        eos_token_id=tokens["<|endoftext|>"], pad_token_id=tokens["<|endoftext|>"],
        bos_token_id=tokens["<|endoftext|>"], max_length=source.dims.n_text_ctx,
        suppress_tokens=sorted(tokenizer.non_speech_tokens),
        begin_suppress_tokens=[tokenizer.encode(" ")[0], tokenizer.eot],
        alignment_heads=heads, is_multilingual=source.is_multilingual,
        lang_to_id={code: tokens[code] for code in languages if code in tokens},
        task_to_id={"transcribe": tokenizer.transcribe, "translate": tokenizer.translate},
        no_timestamps_token_id=tokenizer.no_timestamps,
    )  # fmt: skip


# -- 3. tokenizer and features -------------------------------------------------------------------------------
def whisper_tokenizer(source):
    from whisper.tokenizer import get_tokenizer

    return get_tokenizer(source.is_multilingual, num_languages=source.num_languages)


def special_tokens(source) -> dict[str, int]:
    return dict(whisper_tokenizer(source).encoding._special_tokens)


def build_tokenizer(source):
    """A `tokenizers.Tokenizer` equal to openai-whisper's tiktoken encoding (checked on CHECK_TEXTS)."""
    import whisper.tokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    encoding = whisper_tokenizer(source).encoding
    vocab_file = Path(whisper.tokenizer.__file__).parent / "assets" / f"{encoding.name}"
    specials = sorted(encoding._special_tokens, key=encoding._special_tokens.get)
    converter = TikTokenConverter(
        vocab_file=str(vocab_file), pattern=encoding._pat_str, extra_special_tokens=specials
    )
    tokenizer = converter.converted()
    for token, expected in encoding._special_tokens.items():
        if tokenizer.token_to_id(token) != expected:
            raise ConversionError(
                f"tokenizer.json gives {token} id {tokenizer.token_to_id(token)}, not {expected}"
            )
    for text in CHECK_TEXTS:
        ours, theirs = tokenizer.encode(text).ids, encoding.encode(text)
        if ours != theirs:
            raise ConversionError(
                f"tokenizer.json encodes {text!r} as {ours[:8]}..., tiktoken as {theirs[:8]}..."
            )
    return tokenizer


def write_hf_directory(source, directory: Path) -> None:
    from transformers import PreTrainedTokenizerFast, WhisperFeatureExtractor
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()

    model = hf_model(source)
    with warnings.catch_warnings():
        # transformers warns that a config built in code has non-default generation fields; they are meant.
        warnings.simplefilter("ignore", UserWarning)
        model.save_pretrained(directory)
    end = "<|endoftext|>"  # whisper's only general-purpose special token
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(source), bos_token=end, eos_token=end, unk_token=end, pad_token=end
    )
    tokenizer.save_pretrained(directory)
    WhisperFeatureExtractor(feature_size=source.dims.n_mels).save_pretrained(directory)


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


# -- 5. verification -----------------------------------------------------------------------------------------
def probe_mel(source, seed: int = 0) -> np.ndarray:
    """A fixed (1, n_mels, 3000) log-mel input: a chirp in noise, so that every mel band carries signal."""
    import whisper

    rng = np.random.default_rng(seed)
    t = np.arange(whisper.audio.N_SAMPLES, dtype=np.float32) / whisper.audio.SAMPLE_RATE
    audio = 0.3 * np.sin(2 * np.pi * (200 + 40 * t) * t) + 0.05 * rng.standard_normal(t.size)
    mel = whisper.log_mel_spectrogram(audio.astype(np.float32), n_mels=source.dims.n_mels)
    return mel.numpy()[None]


def probe_prompt(source) -> tuple[list[int], int]:
    """Start of transcript, English, transcribe, no timestamps, some text; and where the text starts."""
    tokenizer = whisper_tokenizer(source)
    text = tokenizer.encode(" Hello world, this is a test of the converter")
    sot = list(tokenizer.sot_sequence_including_notimestamps)
    if source.is_multilingual:
        sot[1] = tokenizer.encoding._special_tokens["<|en|>"]
    return sot + text, len(sot)


def source_outputs(source, mel: np.ndarray, prompt: list[int], start: int) -> tuple[dict, np.ndarray]:
    """Language probabilities and next-token log-probabilities at every prompt position from `start`."""
    import torch

    with torch.inference_mode():
        mel_tensor = torch.from_numpy(mel)
        logits = source.logits(torch.tensor([prompt]), source.embed_audio(mel_tensor))[0, start - 1 :]
        languages: dict[str, float] = {}
        if source.is_multilingual:
            _, probs = source.detect_language(mel_tensor, whisper_tokenizer(source))
            languages = probs[0]
    return languages, log_softmax(logits.float().numpy())


def converted_outputs(
    directory: Path, mel: np.ndarray, prompt: list[int], start: int
) -> tuple[dict, np.ndarray]:
    """The same from CTranslate2, where text after the start sequence is a forced prefix (a row per token)."""
    import ctranslate2

    model = ctranslate2.models.Whisper(str(directory), device="cpu", compute_type="float32")
    features = model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)))
    languages = {}
    if model.is_multilingual:
        languages = {token[2:-2]: prob for token, prob in model.detect_language(features)[0]}
    # CTranslate2 generates at most max_length / 2 tokens: room for the prefix and one free step, with
    # every logit filter off so that the rows are the raw next-token distributions.
    steps = len(prompt) - start + 1
    result = model.generate(
        features, [prompt], beam_size=1, max_length=2 * steps, return_logits_vocab=True,
        suppress_tokens=[], suppress_blank=False,
    )[0]  # fmt: skip
    rows = np.stack([np.asarray(row, dtype=np.float32) for row in result.logits[0][:steps]])
    return languages, log_softmax(rows)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def verify(source, destination: Path, quantization: str, tolerance: float | None = None) -> Report:
    mel, (prompt, start) = probe_mel(source), probe_prompt(source)
    source_langs, source_logprobs = source_outputs(source, mel, prompt, start)
    if not np.isfinite(source_logprobs).all():
        raise ConversionError("the source model itself produces NaN or infinite logits (weights overflow)")
    converted_langs, converted_logprobs = converted_outputs(destination, mel, prompt, start)
    if source_logprobs.shape != converted_logprobs.shape:
        raise ConversionError(
            f"converted model returned {converted_logprobs.shape} logits, not {source_logprobs.shape}"
        )
    if set(source_langs) != set(converted_langs):
        raise ConversionError("the converted model detects a different set of languages than the source")
    language_diff = max((abs(p - converted_langs[c]) for c, p in source_langs.items()), default=0.0)
    logprob_diff = float(np.abs(source_logprobs - converted_logprobs).max())
    spread = float((source_logprobs.max(axis=-1, keepdims=True) - source_logprobs).max())
    relative_diff = logprob_diff / max(spread, 1e-6)
    if not np.isfinite([language_diff, logprob_diff, spread]).all():
        raise ConversionError("the converted model produces NaN or infinite logits")
    tolerance = TOLERANCE[quantization] if tolerance is None else tolerance
    report = Report(destination, quantization, float(language_diff), logprob_diff, relative_diff, tolerance)
    if max(language_diff, relative_diff) > tolerance:
        raise ConversionError(
            f"converted model disagrees with the source: relative log-prob diff {relative_diff:.2e}, "
            f"language-prob diff {language_diff:.2e} > tolerance {tolerance:g}"
        )
    return report


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
        "--quantization", choices=QUANTIZATIONS, default="float16",
        help="how weights are stored (default float16); int8 is a load-time choice (WHISPER_COMPUTE_TYPE)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        report = convert(args.source, args.destination, args.quantization)
    except ConversionError as error:
        print(f"convert: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({**dataclasses.asdict(report), "destination": str(report.destination)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
