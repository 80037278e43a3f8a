"""Steps 2 and 3: the same weights as a Hugging Face Whisper directory (model, tokenizer.json, features)."""

from __future__ import annotations

import warnings
from pathlib import Path

from .checkpoint import ConversionError, first_line

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
        vocab_size=dims.n_vocab,
        num_mel_bins=dims.n_mels,
        encoder_layers=dims.n_audio_layer,
        encoder_attention_heads=dims.n_audio_head,
        decoder_layers=dims.n_text_layer,
        decoder_attention_heads=dims.n_text_head,
        d_model=dims.n_audio_state,
        encoder_ffn_dim=4 * dims.n_audio_state,
        decoder_ffn_dim=4 * dims.n_text_state,
        max_source_positions=dims.n_audio_ctx,
        max_target_positions=dims.n_text_ctx,
        activation_function="gelu",
        scale_embedding=False,
        bos_token_id=tokens["<|endoftext|>"],
        eos_token_id=tokens["<|endoftext|>"],
        pad_token_id=tokens["<|endoftext|>"],
        decoder_start_token_id=tokens["<|startoftranscript|>"],
        tie_word_embeddings=True,
        dtype="float32",
    )
    if dims.n_audio_state != dims.n_text_state:
        raise ConversionError("encoder and decoder widths differ; Hugging Face Whisper needs them equal")
    model = WhisperForConditionalGeneration(config)
    try:
        model.load_state_dict(hf_state_dict(source.state_dict()), strict=True)
    except RuntimeError as error:
        raise ConversionError(
            f"renamed weights do not fit Hugging Face Whisper ({first_line(error)})"
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
        eos_token_id=tokens["<|endoftext|>"],
        pad_token_id=tokens["<|endoftext|>"],
        bos_token_id=tokens["<|endoftext|>"],
        max_length=source.dims.n_text_ctx,
        suppress_tokens=sorted(tokenizer.non_speech_tokens),
        begin_suppress_tokens=[tokenizer.encode(" ")[0], tokenizer.eot],
        alignment_heads=heads,
        is_multilingual=source.is_multilingual,
        lang_to_id={code: tokens[code] for code in languages if code in tokens},
        task_to_id={"transcribe": tokenizer.transcribe, "translate": tokenizer.translate},
        no_timestamps_token_id=tokenizer.no_timestamps,
    )


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
