"""bench/diarization.py's server half: WER of diarized_json beside json on the same files, and what
diarization adds to a json transcription of a 10-minute conversation, through the real server (gunicorn,
the embedded tiny.en, openai-whisper engine, VAD on, CPU)."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from tools import conversations as conv
from tools import embedded, speech

from .service_bench import ROOT, Server

LONG_UTTERANCES = 150  # about 10 minutes of 4 voices taking turns


def post(server: Server, path: Path, fmt: str) -> tuple[str, float]:
    """The transcript's text and the request's seconds."""
    began = time.perf_counter()
    with open(path, "rb") as f:
        resp = requests.post(
            server.url + "/v1/audio/transcriptions",
            data={"response_format": fmt, "chunking_strategy": "auto"},
            files={"file": (path.name, f)},
            timeout=3600,
        )
    resp.raise_for_status()
    return resp.json()["text"], time.perf_counter() - began


def stage_seconds(server: Server, stage: str) -> float:
    text = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=30).text
    prefix = "whisper_stage_duration_seconds_sum{"
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix) and f'stage="{stage}"' in line)  # fmt: skip


WER_FILES = 2  # per set: each file is sent twice (json, diarized_json)


def wer_rows(server: Server, sets: dict[str, list[conv.Conversation]]) -> list[str]:
    rows = ["| set | files | WER json | WER diarized_json |", "|---|---|---|---|"]
    for name, files in sets.items():
        files = files[:WER_FILES]
        refs = [c.text for c in files]
        plain = [post(server, c.path, "json")[0] for c in files]
        diarized = [post(server, c.path, "diarized_json")[0] for c in files]
        rows.append(
            f"| {name} | {len(files)} | {speech.wer(refs, plain):.1%} | {speech.wer(refs, diarized):.1%} |"
        )
    return rows


def overhead_rows(server: Server, directory: Path) -> list[str]:
    long = conv.conversation(directory, "long", conv.SPEAKERS[:4], LONG_UTTERANCES, seed=99)
    minutes = len(speech.read_wav(long.path)) / speech.SAMPLE_RATE / 60
    _, json_seconds = post(server, long.path, "json")
    before = stage_seconds(server, "diarize")
    _, diarized_seconds = post(server, long.path, "diarized_json")
    diarize = stage_seconds(server, "diarize") - before
    return [
        f"| {minutes:.1f}-minute conversation, 4 voices | seconds | vs json |",
        "|---|---|---|",
        f"| json | {json_seconds:.1f} | |",
        f"| diarized_json (speakers, no word timestamps) | {diarized_seconds:.1f} "
        f"| +{diarized_seconds / json_seconds - 1:.0%} |",
        f"| of which the diarize stage (embed, cluster, label) | {diarize:.1f} "
        f"| +{diarize / json_seconds:.0%} |",
    ]


def service_rows(directory: Path, sets: dict[str, list[conv.Conversation]]) -> list[str]:
    model = embedded.checkpoint(ROOT / embedded.CHECKPOINT)
    with Server(model, "cpu", 0, directory, VAD="true") as server:
        post(server, sets[next(iter(sets))][0].path, "diarized_json")  # loads the speaker encoder
        return [*wer_rows(server, sets), "", *overhead_rows(server, directory)]
