"""The offline converter: openai-whisper .pt -> CTranslate2 directory, verified, or one clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tokenizers
import torch
from whisper.tokenizer import get_tokenizer

from tools import convert as convert_module
from tools.convert import ConversionError, convert, load_source, main, verify

ROOT = Path(__file__).resolve().parents[2]


def test_conversion_writes_a_faster_whisper_model_directory(converted):
    directory = converted.destination
    for name in ("model.bin", "config.json", "vocabulary.json", "tokenizer.json", "preprocessor_config.json"):
        assert (directory / name).is_file(), name
    config = json.loads((directory / "config.json").read_text())
    assert config["n_text_ctx"] == 96
    assert config["alignment_heads"] == [[1, 0], [1, 1]]  # last half of the decoder layers, every head
    assert len(config["lang_ids"]) == 99 and config["suppress_ids_begin"] == [220, 50257]
    assert json.loads((directory / "preprocessor_config.json").read_text())["feature_size"] == 80
    assert len(json.loads((directory / "vocabulary.json").read_text())) == 51865


def test_converted_logits_agree_with_the_source(converted, converted_float32):
    assert converted.quantization == "float16" and converted_float32.quantization == "float32"
    # float32: only summation order differs; float16 storage: each weight rounded, still far inside 1e-2
    assert converted_float32.relative_logprob_diff < 1e-5
    assert converted_float32.language_prob_diff < 1e-5
    assert converted.relative_logprob_diff < converted.tolerance == 1e-2
    assert converted.language_prob_diff < converted.tolerance


def test_tokenizer_json_encodes_like_tiktoken(converted):
    ours = tokenizers.Tokenizer.from_file(str(converted.destination / "tokenizer.json"))
    theirs = get_tokenizer(True, num_languages=99)
    texts = ["Hello, world!", " Ünïcödé façade — naïve café", "数字 12345 and ½ ⅓", "emoji 🎙️🎧",
             "tabs\tand\nnewlines", "  leading spaces", "don't won't I'm we'll", "x" * 300]  # fmt: skip
    for text in texts:
        assert ours.encode(text, add_special_tokens=False).ids == theirs.encode(text), text
    for token in ("<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|nospeech|>",
                  "<|notimestamps|>", "<|0.00|>", "<|30.00|>"):  # fmt: skip
        assert ours.token_to_id(token) == theirs.encoding.encode_single_token(token), token


def test_verification_catches_weights_that_differ_from_the_conversion(source_checkpoint, converted_float32):
    source = load_source(source_checkpoint)
    with torch.no_grad():
        source.decoder.blocks[1].mlp[0].weight.mul_(1.5)  # as if a layer were renamed onto the wrong one
    with pytest.raises(ConversionError, match="disagrees with the source"):
        verify(source, converted_float32.destination, "float32")


def test_a_wrong_weight_mapping_is_refused_by_the_strict_load(source_checkpoint, tmp_path, monkeypatch):
    renames = tuple(r for r in convert_module.hf.RENAMES if r[0] != ".mlp_ln")
    monkeypatch.setattr(convert_module.hf, "RENAMES", renames)
    with pytest.raises(ConversionError, match="do not fit Hugging Face Whisper"):
        convert(source_checkpoint, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_failed_verification_leaves_the_destination_alone(source_checkpoint, tmp_path, monkeypatch):
    destination = tmp_path / "existing"
    destination.mkdir()
    (destination / "keep.txt").write_text("previous model")
    monkeypatch.setitem(convert_module.TOLERANCE, "float16", 0.0)
    with pytest.raises(ConversionError, match="disagrees"):
        convert(source_checkpoint, destination)
    assert (destination / "keep.txt").read_text() == "previous model"


def write_bad_checkpoint(kind: str, good: Path, path: Path) -> Path:
    if kind == "garbage":
        path.write_bytes(b"this is not a checkpoint\n" * 100)
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    elif kind == "other-model":
        torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, path)
    elif kind == "missing-weight":
        checkpoint = torch.load(good, weights_only=True)
        del checkpoint["model_state_dict"]["decoder.ln.weight"]
        torch.save(checkpoint, path)
    elif kind == "wrong-dims":
        checkpoint = torch.load(good, weights_only=True)
        checkpoint["dims"]["n_text_state"] = 128
        torch.save(checkpoint, path)
    elif kind == "overflowing-weights":  # finite, but too big for float32 arithmetic
        checkpoint = torch.load(good, weights_only=True)
        checkpoint["model_state_dict"]["decoder.positional_embedding"].fill_(1e30)
        torch.save(checkpoint, path)
    elif kind == "nan-weights":
        checkpoint = torch.load(good, weights_only=True)
        checkpoint["model_state_dict"]["encoder.conv1.weight"].fill_(float("nan"))
        torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("garbage", "not a PyTorch checkpoint"),
        ("truncated", "not a PyTorch checkpoint"),
        ("other-model", "not an openai-whisper checkpoint"),
        ("missing-weight", "weights do not fit its dims"),
        ("wrong-dims", "weights do not fit its dims"),
        ("nan-weights", "NaN or infinite weights"),
        ("overflowing-weights", "source model itself produces NaN or infinite logits"),
        ("absent", "no such file"),
    ],
)
def test_a_bad_checkpoint_is_refused_with_one_line_and_status_2(
    kind, message, source_checkpoint, tmp_path, capsys
):
    bad = write_bad_checkpoint(kind, source_checkpoint, tmp_path / f"{kind}.pt")
    assert main([str(bad), str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convert: error: ") and message in lines[0], captured.err
    assert not (tmp_path / "out").exists()


def test_the_command_runs_offline_and_prints_its_report(source_checkpoint, tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "tools.convert", str(source_checkpoint), str(tmp_path / "model-ct2"),
         "--quantization", "float32"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["destination"] == str(tmp_path / "model-ct2") and report["quantization"] == "float32"
    assert report["relative_logprob_diff"] < report["tolerance"]
    assert (tmp_path / "model-ct2" / "model.bin").is_file()


def test_make_convert_runs_the_command():
    command = ["make", "-n", "convert", "SRC=in.pt", "DST=out-ct2/"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "-m tools.convert in.pt out-ct2/" in done.stdout


def test_an_official_checkpoint_keeps_its_published_alignment_heads(source_checkpoint, tmp_path, monkeypatch):
    """Recognised by the SHA-256 in openai-whisper's download URL; here the test file poses as one."""
    import base64
    import gzip
    import hashlib

    import numpy as np
    import whisper

    digest = hashlib.sha256(source_checkpoint.read_bytes()).hexdigest()
    heads = np.array([[False, False], [False, True]])  # only layer 1, head 1
    monkeypatch.setitem(whisper._MODELS, "posing", f"https://example.invalid/models/{digest}/posing.pt")
    monkeypatch.setitem(whisper._ALIGNMENT_HEADS, "posing", base64.b85encode(gzip.compress(heads.tobytes())))
    report = convert(source_checkpoint, tmp_path / "official")
    assert json.loads((report.destination / "config.json").read_text())["alignment_heads"] == [[1, 1]]
