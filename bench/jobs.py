"""Nothing lost: background jobs through repeated SIGKILLs of the whole service (issue #34).

    python -m bench.jobs                       # 8 jobs of 60 s stories, 3 SIGKILLs, the embedded tiny.en
    python -m bench.jobs --jobs 16 --kills 5 --json build/jobs-bench.json

Two sides on the same files, one after the other, each a fresh service and jobs directory (SQLite, the
one-VM store): **calm**, the jobs submitted and left to finish; **killed**, the same jobs, and the service
(gunicorn's master and workers, one process group) SIGKILLed at a random moment (seeded) while jobs run,
then started again on the same directory, `--kills` times. Every job carries a `callback_url` to a loopback
receiver that verifies each POST with `standardwebhooks` (WEBHOOK_SECRET).

Per side: jobs completed / failed / lost (not ended when the bound runs out, or gone from the list), each
result against the same file posted synchronously to the calm service (identical bytes), WER against the
story's text, callbacks verified (at least once per job; a duplicate is a callback delivered again after a
kill between its POST and its record, which Standard Webhooks' at-least-once delivery allows: receivers
dedupe on `webhook-id`), attempts in all, and the time to the last job's end. `JOBS_LEASE_SECONDS=5` so a
killed job is taken over within 5 s of the restart (60 s by default)."""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from standardwebhooks.webhooks import Webhook

from tools import embedded, speech

from .support import ROOT, free_port, start_gunicorn, wait_ready

SECRET = "whsec_" + base64.b64encode(b"bench-jobs-webhook-secret-32byte").decode()
ENDED = ("completed", "failed", "cancelled")
SERVICE_ENV = {"VAD": "true", "WEBHOOK_SECRET": SECRET, "WEBHOOK_ALLOW_PRIVATE": "true",
               "JOBS_LEASE_SECONDS": "5", "REQUEST_TIMEOUT": "3600"}  # fmt: skip


class Receiver:
    """A loopback webhook receiver: each verified event's (webhook-id, job id, type); refusals counted."""

    def __init__(self):
        self.events: list[tuple[str, str, str]] = []
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    event = Webhook(SECRET).verify(body, dict(self.headers))
                    receiver.events.append((self.headers["webhook-id"], event["data"]["id"], event["type"]))
                except Exception:
                    receiver.refused += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Service:
    """gunicorn as `make run` starts it, on one port and one jobs directory across restarts."""

    def __init__(self, work: Path, name: str):
        self.port, self.jobs_dir, self.work, self.name = free_port(), work / f"jobs-{name}", work, name
        self.url, self.starts, self.process = f"http://127.0.0.1:{self.port}", 0, None
        model = embedded.checkpoint(ROOT / embedded.CHECKPOINT).resolve()
        self.env = {**os.environ, **SERVICE_ENV, "WHISPER_MODEL": str(model), "PORT": str(self.port),
                    "METRICS_PORT": str(free_port()), "METRICS_HOST": "127.0.0.1",
                    "JOBS_DIR": str(self.jobs_dir)}  # fmt: skip

    def start(self) -> None:
        self.starts += 1
        self.env["PROMETHEUS_MULTIPROC_DIR"] = str(self.work / f"prom-{self.name}-{self.starts}")
        log = self.work / f"server-{self.name}-{self.starts}.log"
        self.process = start_gunicorn(self.env, log, self.port)
        wait_ready(self.url, lambda: self.process.poll() is None, timeout=300, interval=0.2)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)  # the master and its workers, mid-job
        self.process.wait(30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(120)


def submit(service: Service, clip: speech.Clip, callback: str) -> str:
    with open(clip.path, "rb") as f:
        answer = requests.post(
            service.url + "/v1/audio/transcriptions", files={"file": (clip.path.name, f)},
            data={"background": "true", "callback_url": callback, "response_format": "text"}, timeout=60,
        )  # fmt: skip
    answer.raise_for_status()
    return answer.json()["id"]


def jobs_now(service: Service) -> dict[str, dict]:
    listed = requests.get(service.url + "/v1/audio/jobs", params={"limit": 100}, timeout=30).json()
    return {job["id"]: job for job in listed["data"]}


def wait_ended(service: Service, ids: list[str], seconds: float) -> dict[str, dict]:
    end, seen = time.monotonic() + seconds, {}
    while time.monotonic() < end:
        seen = jobs_now(service)
        if all(seen.get(i, {}).get("status") in ENDED for i in ids):
            break
        time.sleep(0.5)
    return seen


def run_side(work: Path, name: str, clips: list[speech.Clip], kills: int, seed: int, bound: float) -> dict:
    """One side: submit every clip as a job, SIGKILL and restart `kills` times, wait for the ends."""
    receiver, service, rng = Receiver(), Service(work, name), random.Random(seed)
    service.start()
    began = time.monotonic()
    ids = [submit(service, clip, receiver.url) for clip in clips]
    for _ in range(kills):
        time.sleep(rng.uniform(2.0, 8.0))  # mid-job: some windows done, others not
        service.kill()
        service.start()
    seen = wait_ended(service, ids, bound)
    took = time.monotonic() - began
    results = [result(service, i) if seen.get(i, {}).get("status") == "completed" else None for i in ids]
    time.sleep(3)  # the last callbacks' retries
    service.stop()
    attempts = attempts_of(service.jobs_dir, ids)
    return {"ids": ids, "seen": seen, "results": results, "seconds": took, "attempts": attempts,
            "events": receiver.events, "refused": receiver.refused}  # fmt: skip


def result(service: Service, job_id: str) -> str:
    return requests.get(f"{service.url}/v1/audio/jobs/{job_id}/result", timeout=30).text


def attempts_of(jobs_dir: Path, ids: list[str]) -> int:
    from service.jobs.files import DirectoryBlobs
    from service.jobs.sqlite import SqliteJobStore

    store = SqliteJobStore(jobs_dir / "jobs.db", DirectoryBlobs(jobs_dir / "blobs"))
    return sum(record.attempts for i in ids if (record := store.get(None, i)) is not None)


def references(work: Path, clips: list[speech.Clip]) -> list[str]:
    """Each file posted synchronously (`text`) to a fresh service: what the job's result must equal."""
    service = Service(work, "sync")
    service.start()
    try:
        texts = []
        for clip in clips:
            with open(clip.path, "rb") as f:
                answer = requests.post(
                    service.url + "/v1/audio/transcriptions", files={"file": (clip.path.name, f)},
                    data={"response_format": "text"}, timeout=600,
                )  # fmt: skip
            texts.append(answer.text)
        return texts
    finally:
        service.stop()


def figures(side: dict, clips: list[speech.Clip], sync: list[str]) -> dict:
    statuses = [side["seen"].get(i, {}).get("status", "missing") for i in side["ids"]]
    done = [(c.text, r) for c, r in zip(clips, side["results"]) if r is not None]
    called = {job for _, job, kind in side["events"] if kind.endswith("completed")}
    return {
        "jobs": len(side["ids"]),
        "completed": statuses.count("completed"),
        "failed": statuses.count("failed"),
        "lost": sum(s not in ENDED for s in statuses),
        "identical_to_sync": sum(r == s for r, s in zip(side["results"], sync)),
        "wer": speech.wer([t for t, _ in done], [r for _, r in done]) if done else None,
        "callbacks_jobs": len(called & set(side["ids"])),
        "callbacks_duplicates": len(side["events"]) - len({hook_id for hook_id, _, _ in side["events"]}),
        "callbacks_refused": side["refused"],
        "attempts": side["attempts"],
        "seconds": round(side["seconds"], 1),
    }


def markdown(rows: dict[str, dict], sync_wer: float) -> str:
    keys = ["jobs", "completed", "failed", "lost", "identical_to_sync", "wer", "callbacks_jobs",
            "callbacks_duplicates", "callbacks_refused", "attempts", "seconds"]  # fmt: skip
    lines = ["| side | " + " | ".join(k.replace("_", " ") for k in keys) + " |"]
    lines.append("|---" * (len(keys) + 1) + "|")
    for name, row in rows.items():
        cells = [f"{row[k]:.1%}" if k == "wer" and row[k] is not None else str(row[k]) for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nWER of the same files posted synchronously: {sync_wer:.1%}"


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60, help="each story's length")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=34)
    parser.add_argument("--bound", type=float, default=1200, help="seconds to wait for the jobs to end")
    parser.add_argument("--json", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = arguments().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        work = Path(tmp)
        clips = [speech.story(work, args.seconds, f"job-{i}", seed=i, first=7 * i) for i in range(args.jobs)]
        sync = references(work, clips)
        rows = {
            "calm": figures(run_side(work, "calm", clips, 0, args.seed, args.bound), clips, sync),
            f"{args.kills} SIGKILLs": figures(
                run_side(work, "killed", clips, args.kills, args.seed, args.bound), clips, sync
            ),
        }
    print(markdown(rows, speech.wer([c.text for c in clips], sync)))
    if args.json:
        saved = {"args": {**vars(args), "json": str(args.json)}, "rows": rows}
        args.json.write_text(json.dumps(saved, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
