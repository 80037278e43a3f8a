"""DIARIZATION_BACKEND=pyannote without pyannote's weights: its output (pyannote.core Annotations, as
pyannote.audio 4's DiarizeOutput or 3.x return them) becomes turns and labels; its settings refuse what
cannot run, at start, in one line; and the stand-in for pyannote's weights (tests/speakers/standin/, with
pyannote.audio 4.0.7's call signature) drives real requests through the real server on every face."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from pyannote.core import Annotation
from pyannote.core import Segment as Span

from service import speakers
from service.settings import SettingsError, from_env
from service.speakers import Hints, embeddings, pyannote_backend
from service.speakers.turns import Turn, labelled
from service.transcript import Segment, Transcript, Word
from tests.conftest import launch
from tests.speakers.test_faces import transcribe as post
from tests.speakers.test_sdk import reference_speaker
from tools import conversations, speech

STANDIN = Path(__file__).with_name("standin")
# pyannote numbers speakers in its own order (here the second voice is SPEAKER_00); users see first speech
PYANNOTE_LABEL = {"A": "SPEAKER_01", "B": "SPEAKER_00"}


def annotation(*tracks: tuple[float, float, str]) -> Annotation:
    made = Annotation(uri="waveform")
    for start, end, label in tracks:
        made[Span(start, end)] = label
    return made


def pipeline_dir(directory: Path, turns: list, overlaps: list = ()) -> Path:
    """A directory the stand-in loads as a pipeline reporting `turns` (config.yaml: JSON is YAML)."""
    directory.mkdir(parents=True)
    config = {"pipeline": {"name": "stand-in"}, "turns": turns, "overlaps": list(overlaps)}
    (directory / "config.yaml").write_text(json.dumps(config))
    return directory


def calls(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "calls.jsonl").read_text().splitlines()]


@pytest.fixture
def standin(monkeypatch):
    """The stand-in importable as pyannote.audio in this process, and gone again afterwards."""
    monkeypatch.syspath_prepend(str(STANDIN))
    monkeypatch.delitem(sys.modules, "pyannote.audio", raising=False)
    yield
    sys.modules.pop("pyannote.audio", None)


def test_an_annotation_becomes_turns_then_labels_on_segments():
    found = pyannote_backend.annotation_turns(
        annotation((3.4, 6.0, "SPEAKER_00"), (0.5, 2.0, "SPEAKER_01"), (2.0, 3.0, "SPEAKER_01"))
    )
    assert found == [Turn(0.5, 3.0, 1), Turn(3.4, 6.0, 0)]  # file order; touching pieces of one voice merged
    words = (Word(" Hello", 0.5, 1.0, 0.9), Word(" there.", 1.1, 2.8, 0.9), Word(" Hi.", 3.5, 5.0, 0.9))
    spoken = Transcript("en", 6.0, (Segment(0.4, 5.9, " Hello there. Hi.", (1, 2, 3), words),))
    out = labelled(spoken, found, {}, {})
    assert [(s.text, s.speaker, s.start, s.end) for s in out.segments] == [
        (" Hello there.", "A", 0.4, 2.8),  # SPEAKER_01 spoke first: A
        (" Hi.", "B", 3.5, 5.9),
    ]
    assert pyannote_backend.annotation_turns(Annotation()) == []  # nobody heard: labelled() says "A"


def test_the_exclusive_diarization_is_the_one_words_are_aligned_to(standin):
    from pyannote.audio import DiarizeOutput  # the stand-in's copy of pyannote.audio 4's dataclass

    regular = annotation((0.0, 4.0, "SPEAKER_00"), (1.0, 3.0, "SPEAKER_01"))
    exclusive = annotation((0.0, 1.0, "SPEAKER_00"), (1.0, 3.0, "SPEAKER_01"), (3.0, 4.0, "SPEAKER_00"))
    assert pyannote_backend.annotation_of(DiarizeOutput(regular, exclusive)) is exclusive
    assert pyannote_backend.annotation_of(DiarizeOutput(regular, None)) is regular
    assert pyannote_backend.annotation_of(regular) is regular  # pyannote.audio 3.x returns the Annotation


@pytest.mark.parametrize(
    ("hints", "expected"),
    [
        (Hints(), {"min_speakers": 1, "max_speakers": 8}),  # as resemblyzer: at most clustering.MAX_SPEAKERS
        (Hints(2, 3), {"min_speakers": 2, "max_speakers": 3}),
        (Hints(2, 2), {"num_speakers": 2}),
    ],
)
def test_a_requests_bounds_are_pyannotes_keyword_arguments(hints, expected):
    assert pyannote_backend.bounds(hints) == expected


def test_the_settings_refuse_what_cannot_run_in_one_line(tmp_path, monkeypatch):
    with pytest.raises(SettingsError) as caught:
        from_env({"DIARIZATION_BACKEND": "whisperx"})
    assert str(caught.value) == "DIARIZATION_BACKEND='whisperx' is invalid: use one of resemblyzer, pyannote"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SettingsError) as caught:
        from_env({"DIARIZATION_BACKEND": "pyannote", "PYANNOTE_PIPELINE_DIR": str(empty)})
    assert str(caught.value).startswith(
        f"PYANNOTE_PIPELINE_DIR='{empty}' holds no pyannote/speaker-diarization-community-1 (config.yaml "
        "missing), which DIARIZATION_BACKEND=pyannote reads: build the image with --build-arg"
    )
    assert "\n" not in str(caught.value)
    weights = pipeline_dir(tmp_path / "weights", [])
    env = {"DIARIZATION_BACKEND": "pyannote", "PYANNOTE_PIPELINE_DIR": str(weights)}
    monkeypatch.setitem(sys.modules, "pyannote.audio", None)  # as in CI: not installed
    with pytest.raises(SettingsError, match=r"^DIARIZATION_BACKEND=pyannote needs pyannote.audio: pip "):
        from_env(env)
    monkeypatch.delitem(sys.modules, "pyannote.audio")
    monkeypatch.syspath_prepend(str(STANDIN))
    assert from_env(env).pyannote_pipeline_dir == str(weights)
    assert from_env({"PYANNOTE_PIPELINE_DIR": str(empty)}).diarization_backend == "resemblyzer"  # unused


def test_the_pipeline_loads_offline_once_and_answers_for_find_turns(standin, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # restored after the test, as load() sets it
    monkeypatch.delenv("PYANNOTE_METRICS_ENABLED", raising=False)
    weights = pipeline_dir(tmp_path / "weights", [[0.25, 1.0, "SPEAKER_00"], [1.5, 2.0, "SPEAKER_01"]])
    settings = from_env({"DIARIZATION_BACKEND": "pyannote", "PYANNOTE_PIPELINE_DIR": str(weights)})
    try:
        speakers.configure(settings.replace(whisper_device="cpu"))
        found, voices = speakers.find_turns(np.zeros(32000, np.float32), Hints(max_speakers=2))
    finally:
        speakers.configure(from_env({}))
    assert found == [Turn(0.25, 1.0, 0), Turn(1.5, 2.0, 1)] and voices == {}  # no known speakers: no voices
    loaded, call = calls(weights)
    assert loaded == {"event": "loaded", "HF_HUB_OFFLINE": "1", "PYANNOTE_METRICS_ENABLED": "false"}
    assert call == {"event": "call", "shape": [1, 32000], "dtype": "torch.float32", "sample_rate": 16000,
                    "min_speakers": 1, "max_speakers": 2}  # fmt: skip
    assert speakers._pyannote is None  # DIARIZATION_BACKEND=resemblyzer again


def test_a_speakers_voice_is_resemblyzers_embedding_of_its_longest_turns(two_voices, monkeypatch):
    audio = speech.read_wav(two_voices.path)
    found = [Turn(start, end, "AB".index(who)) for start, end, who in two_voices.turns]
    longest = max((t for t in found if t.speaker == 0), key=lambda t: t.end - t.start)
    alone = embeddings.embed_clip(audio[round(longest.start * 16000) : round(longest.end * 16000)])
    assert not np.allclose(pyannote_backend.voices(audio, found)[0], alone, atol=1e-3)  # all of A's turns
    monkeypatch.setattr(pyannote_backend, "VOICE_SECONDS", 1.0)  # the longest turn alone is over it
    assert np.allclose(pyannote_backend.voices(audio, found)[0], alone, atol=1e-5)


def test_a_python_without_pyannote_audio_cannot_load_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyannote.audio", None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SettingsError, match=r"^DIARIZATION_BACKEND=pyannote needs pyannote.audio \(.*\): "):
        pyannote_backend.load(str(pipeline_dir(tmp_path / "weights", [])))


def test_without_its_weights_the_service_does_not_start(tmp_path):
    server = launch(
        tmp_path / "unused.pt",
        tmp_path,
        wait_ready=False,
        DIARIZATION_BACKEND="pyannote",
        PYANNOTE_PIPELINE_DIR=str(tmp_path / "nothing"),
    )
    assert server.process.wait(60) == 2  # the master checks the settings before any worker starts
    assert f"error: PYANNOTE_PIPELINE_DIR='{tmp_path / 'nothing'}' holds no" in server.log()


@pytest.fixture(scope="module")
def pyannote_service(tiny_en, two_voices, tmp_path_factory):
    """The real server, tiny.en, DIARIZATION_BACKEND=pyannote on the stand-in reporting the reference."""
    tmp = tmp_path_factory.mktemp("pyannote")
    turns = [[start, end, PYANNOTE_LABEL[who]] for start, end, who in two_voices.turns]
    weights = pipeline_dir(tmp / "community-1", turns)
    path = os.pathsep.join([str(STANDIN), *filter(None, [os.environ.get("PYTHONPATH")])])
    backend = {"DIARIZATION_BACKEND": "pyannote", "PYANNOTE_PIPELINE_DIR": weights}
    server = launch(tiny_en, tmp, VAD="true", PYTHONPATH=path, **backend)
    yield server, weights
    server.stop()
    assert not server.tracebacks(), server.tracebacks()


def test_every_face_carries_pyannotes_speakers(pyannote_service, two_voices):
    service, weights = pyannote_service
    verbose = post(service, two_voices, response_format="verbose_json", diarize="true", max_speakers=2).json()
    assert [s["speaker"] for s in verbose["segments"]][0] == "A"
    for s in verbose["segments"]:
        assert s["speaker"] == reference_speaker(s["start"], s["end"], two_voices), s
    exactly_two = {"output": "vtt", "diarize": "true", "min_speakers": 2, "max_speakers": 2}
    vtt = post(service, two_voices, "/asr", "audio_file", exactly_two).text
    assert "<v A>" in vtt and "<v B>" in vtt
    load, *runs = calls(weights)
    assert load == {"event": "loaded", "HF_HUB_OFFLINE": "1", "PYANNOTE_METRICS_ENABLED": "false"}  # no .to()
    assert [r["event"] for r in runs] == ["call", "call"]
    samples = runs[0]["shape"][1]
    assert runs[0]["shape"] == [1, samples] and abs(samples / 16000 - verbose["duration"]) < 0.01
    assert (runs[0]["dtype"], runs[0]["sample_rate"]) == ("torch.float32", 16000)
    assert {k: runs[0][k] for k in ("min_speakers", "max_speakers")} == {"min_speakers": 1, "max_speakers": 2}
    assert runs[1]["num_speakers"] == 2 and "min_speakers" not in runs[1]


def test_known_speakers_are_named_with_pyannotes_turns(pyannote_service, two_voices, tmp_path):
    service, _ = pyannote_service
    references = []
    for index, (voice, pitch) in enumerate(conversations.SPEAKERS[:2]):
        clip = conversations.say(tmp_path, speech.SENTENCES[20 + index], voice, pitch)
        path = speech.write_wav(tmp_path / f"{index}.wav", clip)
        references.append("data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode())
    form = {
        "model": "gpt-4o-transcribe-diarize",
        "response_format": "diarized_json",
        "chunking_strategy": "auto",
        "known_speaker_names[]": ["bob", "alice"],
        "known_speaker_references[]": references[::-1],
    }
    diarized = post(service, two_voices, **form).json()
    names = {"A": "alice", "B": "bob"}
    assert {s["speaker"] for s in diarized["segments"]} == {"alice", "bob"}
    for s in diarized["segments"]:
        assert s["speaker"] == names[reference_speaker(s["start"], s["end"], two_voices)], s
