"""The embedded multilingual `base` on speech in seven languages (issue #38): detection, transcription,
translation to English, on both engines.

    flock /work/wt/heavy.lock python -m bench.multilingual [--engines faster-whisper]

Five everyday sentences, written here in German, Spanish, French, Italian, Portuguese and Dutch beside their
English source, spoken by espeak-ng's voice for each language (and the English by en-us, as a control), sent
to the service (base, VAD off) three ways:
  POST /detect-language           top-1 language == the spoken one (detection accuracy, per language);
  /v1/audio/transcriptions        language given: WER against the written sentence, with openai-whisper's
                                  BasicTextNormalizer (lower case, no punctuation; accents kept);
  /v1/audio/translations          word overlap with the English source (F1 of the words both share, after
                                  openai-whisper's EnglishTextNormalizer): 1.0 is the source's words exactly.
Prints a Markdown table for docs/accuracy.md.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import requests

from tools import embedded, speech

from .service_bench import Server

ENGLISH = (
    "The weather is very nice today.",
    "My brother works in a big hospital.",
    "We are going to the market tomorrow morning.",
    "The children are playing in the garden.",
    "I would like a cup of coffee, please.",
)
SENTENCES = {  # language -> (espeak-ng voice, the five sentences in the order of ENGLISH)
    "de": ("de", (
        "Das Wetter ist heute sehr schön.",
        "Mein Bruder arbeitet in einem großen Krankenhaus.",
        "Wir gehen morgen früh auf den Markt.",
        "Die Kinder spielen im Garten.",
        "Ich hätte gern eine Tasse Kaffee, bitte.",
    )),
    "es": ("es", (
        "Hoy hace muy buen tiempo.",
        "Mi hermano trabaja en un hospital grande.",
        "Mañana por la mañana vamos al mercado.",
        "Los niños están jugando en el jardín.",
        "Quisiera una taza de café, por favor.",
    )),
    "fr": ("fr-fr", (
        "Il fait très beau aujourd'hui.",
        "Mon frère travaille dans un grand hôpital.",
        "Nous allons au marché demain matin.",
        "Les enfants jouent dans le jardin.",
        "Je voudrais une tasse de café, s'il vous plaît.",
    )),
    "it": ("it", (
        "Oggi il tempo è molto bello.",
        "Mio fratello lavora in un grande ospedale.",
        "Domani mattina andiamo al mercato.",
        "I bambini giocano in giardino.",
        "Vorrei una tazza di caffè, per favore.",
    )),
    "pt": ("pt", (
        "O tempo está muito bom hoje.",
        "O meu irmão trabalha num grande hospital.",
        "Amanhã de manhã vamos ao mercado.",
        "As crianças estão a brincar no jardim.",
        "Queria uma chávena de café, por favor.",
    )),
    "nl": ("nl", (
        "Het weer is vandaag erg mooi.",
        "Mijn broer werkt in een groot ziekenhuis.",
        "We gaan morgenochtend naar de markt.",
        "De kinderen spelen in de tuin.",
        "Ik wil graag een kopje koffie, alstublieft.",
    )),
    "en": ("en-us", ENGLISH),
}  # fmt: skip


def basic_words(text: str) -> list[str]:
    from whisper.normalizers import BasicTextNormalizer

    return BasicTextNormalizer()(text).split()


def wer(references: str | list[str], hypotheses: str | list[str]) -> float:
    """WER in any language: openai-whisper's BasicTextNormalizer on both sides (texts, or lists of texts
    counted together)."""
    if isinstance(references, str):
        references, hypotheses = [references], [hypotheses]
    errors = sum(speech.edit_distance(basic_words(r), basic_words(h)) for r, h in zip(references, hypotheses))
    return errors / max(1, sum(len(basic_words(r)) for r in references))


def overlap(source: str, translation: str) -> float:
    """F1 of the English words a translation shares with the source (each word counted as often as both
    have it)."""
    a, b = Counter(speech.words(source)), Counter(speech.words(translation))
    shared = sum((a & b).values())
    if not shared:
        return 0.0
    precision, recall = shared / sum(b.values()), shared / sum(a.values())
    return 2 * precision * recall / (precision + recall)


def post(url: str, path: str, clip: Path, **fields) -> dict:
    with open(clip, "rb") as f:
        if path == "/detect-language":
            resp = requests.post(url + path, files={"audio_file": f}, timeout=600)
        else:
            resp = requests.post(url + path, files={"file": f}, data=fields, timeout=600)
    resp.raise_for_status()
    return resp.json()


def measure(server: Server, clips: dict[str, list[Path]]) -> dict[str, dict]:
    rows = {}
    for language, paths in clips.items():
        said = SENTENCES[language][1]
        detected = [post(server.url, "/detect-language", p)["language_code"] for p in paths]
        heard = [post(server.url, "/v1/audio/transcriptions", p, language=language)["text"] for p in paths]
        row = {"detected": sum(d == language for d in detected) / len(paths), "wer": wer(list(said), heard)}
        row["wrong"] = sorted({d for d in detected if d != language})
        if language != "en":
            english = [
                post(server.url, "/v1/audio/translations", p, language=language)["text"] for p in paths
            ]
            row["overlap"] = sum(overlap(s, e) for s, e in zip(ENGLISH, english)) / len(paths)
            row["example"] = english[0]
        rows[language] = row
        print(language, row, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=["faster-whisper", "openai-whisper"])
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clips = {
            language: [speech.say(work / f"{language}-{i}.wav", text, voice) for i, text in enumerate(texts)]
            for language, (voice, texts) in SENTENCES.items()
        }
        for engine in args.engines:
            model = embedded.model_for(engine, "base")
            with Server(
                model, "cpu", 0, work, WHISPER_ENGINE=engine, WHISPER_COMPUTE_TYPE="float32"
            ) as server:
                results[engine] = measure(server, clips)
    print("\n| language | engine | detection | WER | translation overlap | first translation |")
    print("|---|---|---|---|---|---|")
    for language in SENTENCES:
        for engine, rows in results.items():
            r = rows[language]
            wrong = f" (else {', '.join(r['wrong'])})" if r["wrong"] else ""
            translated = f"{r['overlap']:.2f} | {r['example']}" if "overlap" in r else "- | -"
            print(f"| {language} | {engine} | {r['detected']:.0%}{wrong} | {r['wer']:.1%} | {translated} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
