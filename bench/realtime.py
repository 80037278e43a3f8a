"""Live transcription (/v1/realtime) against the naive way, on the same speech, in one run (issue #36).

    python -m bench.realtime            # 1 and 4 sessions of 30 s stories, about 3 minutes on 2 cores
    python -m bench.realtime --seconds 60
    python -m bench.realtime --device cuda --sessions 1,16,64   # on a GPU (issue #36's 64 sessions)
    LOG_LEVEL=debug python -m bench.realtime --keep /tmp/live   # per-turn traces in /tmp/live/server-*.log
    python -m bench.realtime --compare REALTIME_SHORT_INPUT=false   # the defaults, then that, one run

Sides, on one server (the embedded tiny.en, openai-whisper engine, VAD on, its defaults):
  live   OpenAI's SDK streams each story as pcm16 at 24 kHz in 100 ms appends at real-time pace, server_vad
         ends the turns (bench/realtime_client.py);
  naive  what a server without live decoding would do: each turn the live run found, cut from the same audio,
         sent whole to /v1/audio/transcriptions the moment its speech stopped (replayed at the same times);
  file   each story sent whole as a file: the accuracy both are judged against (per level, the level's
         stories: 1 session streams story 0 only, so its WER is set against story 0's as a file).
Figures: finalisation latency (speech_stopped -> completed; naive: speech stop -> response), p50 and p95, with
1 session and with 4 at once; the first delta after speech_started on turns over 3 s; WER of each side;
deltas vs final: the WER of each turn's deltas against as many words of its completed text (what a client
showed while the person spoke, judged by what it got at the end).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np
import requests

from tools import embedded, speech

from .realtime_client import stream
from .service_bench import Server, nearest_rank

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"


def stories(work: Path, seconds: float, count: int) -> list[speech.Clip]:
    """Different stories, pauses of 1-2 s between sentences (each sentence a turn)."""
    return [
        speech.story(work, seconds, f"live-{i}", pauses=(1.0, 2.0), seed=40 + i, exact=True, first=5 * i)
        for i in range(count)
    ]


def live(url: str, clips: list[speech.Clip]) -> list[dict]:
    """Stream the clips at once, one session each; per clip its events and when the stream began."""
    out: list[dict] = [{} for _ in clips]

    def one(i: int) -> None:
        began = time.monotonic()
        events = stream(url, speech.read_wav(clips[i].path), timeout=120)
        out[i] = {"began": began, "events": events}

    run_all([threading.Thread(target=one, args=(i,)) for i in range(len(clips))])
    return out


def run_all(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def live_figures(runs: list[dict], clips: list[speech.Clip]) -> dict:
    final, first, wers, sent, later = [], [], [], [], []
    for run, clip in zip(runs, clips, strict=True):
        events = run["events"]
        stopped = {e["item_id"]: e for e in events.of("input_audio_buffer.speech_stopped")}
        started = {e["item_id"]: e for e in events.of("input_audio_buffer.speech_started")}
        for done in events.of(COMPLETED):
            if done["item_id"] in stopped:
                final.append(done["_t"] - stopped[done["item_id"]]["_t"])
            stop, start = stopped.get(done["item_id"]), started.get(done["item_id"])
            deltas = [e for e in events.of(DELTA) if e["item_id"] == done["item_id"]]
            if stop and start and stop["audio_end_ms"] - start["audio_start_ms"] > 3000 and deltas:
                first.append(deltas[0]["_t"] - start["_t"])
            said = speech.words("".join(e["delta"] for e in deltas))  # the deltas against the final text
            sent.append(" ".join(said))
            later.append(" ".join(speech.words(done["transcript"])[: len(said)]))
        wers.append(speech.wer(clip.text, " ".join(e["transcript"] for e in events.of(COMPLETED))))
    return {**summary(final, first, wers), "delta_vs_final": speech.wer(later, sent) if any(later) else None}


def summary(final: list[float], first: list[float], wers: list[float]) -> dict:
    return {
        "turns": len(final),
        "final_p50": nearest_rank(final, 0.5),
        "final_p95": nearest_rank(final, 0.95),
        "first_delta_p50": nearest_rank(first, 0.5) if first else None,
        "first_delta_p95": nearest_rank(first, 0.95) if first else None,
        "wer": float(np.mean(wers)),
    }


def naive(url: str, runs: list[dict], clips: list[speech.Clip]) -> dict:
    """Replay each live run's turns through HTTP: turn audio posted at its speech stop, timed to its reply."""
    final: list[float] = []
    texts: list[list[tuple[int, str]]] = [[] for _ in clips]
    lock = threading.Lock()

    def one(i: int) -> None:
        audio, began = speech.read_wav(clips[i].path), time.monotonic()
        offsets = [
            (e["_t"] - runs[i]["began"], e) for e in runs[i]["events"].of("input_audio_buffer.speech_stopped")
        ]
        starts = {
            e["item_id"]: e["audio_start_ms"]
            for e in runs[i]["events"].of("input_audio_buffer.speech_started")
        }
        for offset, stop in offsets:
            time.sleep(max(0.0, began + offset - time.monotonic()))
            lo, hi = starts[stop["item_id"]] * SR // 1000, stop["audio_end_ms"] * SR // 1000
            sent = time.monotonic()
            text = post(url, audio[lo:hi])
            with lock:
                final.append(time.monotonic() - sent)
                texts[i].append((lo, text))

    run_all([threading.Thread(target=one, args=(i,)) for i in range(len(clips))])
    wers = [speech.wer(c.text, " ".join(t for _, t in sorted(texts[i]))) for i, c in enumerate(clips)]
    return summary(final, [], wers)


def post(url: str, audio: np.ndarray) -> str:
    data = io.BytesIO()
    with wave.open(data, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(SR)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    files = {"file": ("turn.wav", data.getvalue(), "audio/wav")}
    resp = requests.post(
        url + "/v1/audio/transcriptions", files=files, data={"model": "whisper-1"}, timeout=120
    )
    resp.raise_for_status()
    return resp.json()["text"]


def file_wers(url: str, clips: list[speech.Clip]) -> list[float]:
    return [speech.wer(c.text, post(url, speech.read_wav(c.path))) for c in clips]


def measure(
    seconds: float, work: Path, sessions: list[int], device: str = "cpu", extra: dict | None = None
) -> dict:
    """Each level of `sessions`: that many sessions at once (stories reused in turn past 4); `extra`: more
    of the server's settings."""
    stock = stories(work, seconds, 4)
    model = embedded.checkpoint(ROOT / embedded.CHECKPOINT).resolve()
    out: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "seconds": seconds,
        "sessions": sessions,
        "settings": extra or {},
    }
    most = max(sessions)
    # each session holds a request thread, beside the 1024 requests service_bench's Server takes in
    env = {"VAD": "true", "REALTIME_MAX_SESSIONS": str(most), "THREADS": str(1040 + most), **(extra or {})}
    with Server(model, device, 0, work, **env) as server:
        post(server.url, np.zeros(SR, np.float32))  # warm the HTTP path
        for n in sessions:
            clips = [stock[i % len(stock)] for i in range(n)]
            runs = live(server.url, clips)
            out[f"live_{n}"] = live_figures(runs, clips)
            out[f"naive_{n}"] = naive(server.url, runs, clips)
        wers = file_wers(server.url, stock)
    # each level against the same stories as files (1 session streams story 0 alone)
    for n in sessions:
        out[f"file_{n}"] = float(np.mean([wers[i % len(stock)] for i in range(n)]))
    return out


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}"


def table(r: dict) -> str:
    def ms(v):
        return "-" if v is None else f"{v:.2f} s"

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    state = " ".join(f"{k}={v}" for k, v in r.get("settings", {}).items()) or "defaults"
    lines = [
        f"server: {state}",
        "| side | sessions | turns | finalisation p50 | p95 | first delta p50 | p95 | WER | deltas vs final"
        " |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for side in ("live", "naive"):
        for n in r["sessions"]:
            f = r[f"{side}_{n}"]
            lines.append(
                f"| {side} | {n} | {f['turns']} | {ms(f['final_p50'])} | {ms(f['final_p95'])} | "
                f"{ms(f['first_delta_p50'])} | {ms(f['first_delta_p95'])} | {pct(f['wer'])} | "
                f"{pct(f.get('delta_vs_final'))} |"
            )
    for n in r["sessions"]:  # the same stories sent whole as files
        lines.append(f"| file | {n} | - | - | - | - | - | {pct(r[f'file_{n}'])} | - |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each story")
    parser.add_argument("--sessions", default="1,4", help="sessions at once, one level after another")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    keep = "keep the stories and the server's log here (with LOG_LEVEL=debug: per-turn traces)"
    parser.add_argument("--keep", type=Path, help=keep)
    also = "also measure the server with these settings (KEY=VALUE,...), after the defaults, in the same run"
    parser.add_argument("--compare", action="append", default=[], help=also)
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.sessions.split(",")]
    states = [{}] + [dict(pair.split("=", 1) for pair in state.split(",")) for state in args.compare]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for extra in states:
            results.append(measure(args.seconds, work, levels, args.device, extra))
            print(json.dumps(results[-1], indent=1), flush=True)
    for result in results:
        print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
