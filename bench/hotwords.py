"""Do hotwords help tiny.en spell names it has never heard? (issue #38)

    flock /work/wt/heavy.lock python -m bench.hotwords

Sentences with invented names (below), spoken by espeak-ng in two voices, sent to the service on each engine
(tiny.en, VAD off, language=en) three ways: without hotwords; with the clip's own names as `hotwords`; with
the whole glossary (every name of the corpus) as `hotwords`, as a deployment would send its list of names.
Reported per engine and way: WER (tools.speech.wer: openai-whisper's English normalizer) and name recall (the
share of spoken name words that come back spelled exactly, case and punctuation aside), and names inserted
(glossary names in the text that the clip does not say). Prints a Markdown table for docs/accuracy.md.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from tools import embedded, speech

from .service_bench import Server, transcribe

SENTENCES = (
    "Please send the report to Zorvath before noon.",
    "Mirelda Voss will chair the meeting on Thursday.",
    "The shipment from Kalvex arrived damaged again.",
    "Ask Dravik whether the server in Pellucor is back online.",
    "Our new intern, Yavelle Skorrin, starts next week.",
    "Thalmund approved the budget for the Fendrith project.",
    "The train to Oranthe leaves at seven.",
    "Tessaly Brovane wrote the first draft of the contract.",
    "I met Quimbly at the conference in Pellucor.",
    "The Kalvex team and the Zorvath team will merge.",
    "Call Fendrith if the alarm goes off tonight.",
    "Yavelle said the numbers from Oranthe look wrong.",
)
VOICES = ("en-us", "en-gb")


INVENTED = ("Brovane", "Dravik", "Fendrith", "Kalvex", "Mirelda", "Oranthe", "Pellucor", "Quimbly", "Skorrin",
            "Tessaly", "Thalmund", "Voss", "Yavelle", "Zorvath")  # fmt: skip


def names(text: str) -> list[str]:
    """The invented words of a sentence, in order."""
    return [w for w in re.findall(r"[A-Za-z]+", text) if w in INVENTED]


GLOSSARY = INVENTED


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def score(said: str, heard: str) -> tuple[int, int, int]:
    """(name words said, of them heard spelled exactly, glossary names heard that were not said)."""
    expected, got = [n.lower() for n in names(said)], words(heard)
    found = sum(min(expected.count(n), got.count(n)) for n in set(expected))
    inserted = sum(max(0, got.count(n.lower()) - expected.count(n.lower())) for n in GLOSSARY)
    return len(expected), found, inserted


def run(server: Server, clips: list[speech.Clip], way: str, verbose: bool = False) -> dict:
    said = heard = 0
    refs, hyps, inserted = [], [], 0
    for clip in clips:
        data = {"language": "en", "response_format": "json"}
        if way == "own names":
            data["hotwords"] = ", ".join(dict.fromkeys(names(clip.text)))
        elif way == "glossary":
            data["hotwords"] = ", ".join(GLOSSARY)
        _, text = transcribe(server.url, clip.path, data)
        if verbose:
            print(f"  {way}: {clip.path.name}: {text}", flush=True)
        n, found, extra = score(clip.text, text)
        said, heard, inserted = said + n, heard + found, inserted + extra
        refs.append(clip.text)
        hyps.append(text)
    wer = speech.wer(" ".join(refs), " ".join(hyps))
    return {"wer": wer, "recall": heard / said, "said": said, "heard": heard, "inserted": inserted}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="print every transcript")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clips = []
        for i, sentence in enumerate(SENTENCES):
            for voice in VOICES:
                path = speech.say(work / f"name-{i}-{voice}.wav", sentence, voice)
                clips.append(speech.Clip(path, sentence))
        for engine in ("faster-whisper", "openai-whisper"):
            model = embedded.model_for(engine)
            with Server(
                model, "cpu", 0, work, WHISPER_ENGINE=engine, WHISPER_COMPUTE_TYPE="float32"
            ) as server:
                for way in ("none", "own names", "glossary"):
                    result = run(server, clips, way, args.verbose)
                    rows.append((engine, way, result))
                    print(engine, way, result, flush=True)
    print(
        f"\n{len(clips)} clips ({len(SENTENCES)} sentences x {len(VOICES)} voices), {len(GLOSSARY)} names\n"
    )
    print("| engine | hotwords | WER | name recall | glossary names inserted |")
    print("|---|---|---|---|---|")
    for engine, way, r in rows:
        recall = f"{r['recall']:.0%} ({r['heard']}/{r['said']})"
        print(f"| {engine} | {way} | {r['wer']:.1%} | {recall} | {r['inserted']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
