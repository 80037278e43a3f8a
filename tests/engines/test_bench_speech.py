"""bench/speech.py's arithmetic and plan: x realtime, WER over all files, percentiles, the target verdicts,
the mixed workload against a stand-in server, and bench/gpu.sh's refusal without a GPU (the measuring itself
needs minutes of real inference and runs in `make bench-speech`, not here)."""

from __future__ import annotations

import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench import gpu_model, speech_report, workloads
from bench.peer_server import NAME as PEER
from bench.speech import main as speech_main
from tools import speech

ROOT = Path(__file__).resolve().parents[2]
WORDS = ("one two three four five six seven eight nine ten",) * 2


def runs(name: str, files: list[tuple[float, float, str, str]], wall: float, rss_mib: int = 0):
    r = workloads.Runs(name, peak_rss=rss_mib * speech_report.MIB)
    for f in files:
        r.add(*f)
    r.wall = wall
    return r


def test_runs_measure_throughput_accuracy_and_latency():
    r = runs(
        "x", [(16.0, 1.0, "the cat sat", "the cat sat"), (16.0, 3.0, "a dog ran", "a dog run")], wall=2.0
    )
    assert r.x_realtime == 16.0  # 32 s of audio in 2 s of wall time (concurrent requests overlap)
    assert abs(r.wer - 1 / 6) < 1e-9  # errors over all reference words, not a mean of per-file rates
    assert r.percentile(0.5) in (1.0, 3.0) and r.percentile(0.95) == 3.0


def test_a_speed_target_is_missed_when_accuracy_is_worse_than_the_peer_by_more_than_half_a_point():
    Target = speech_report.Target
    fast_but_worse = Target("t", measured=2.0, goal=1.5, wer_side=0.106, wer_peer=0.10)
    fast_and_close = Target("t", measured=2.0, goal=1.5, wer_side=0.104, wer_peer=0.10)
    slow = Target("t", measured=1.1, goal=1.5, wer_side=0.05, wer_peer=0.10)
    latency_ok, latency_bad = Target("t", 2.9, 3.0, at_most=True), Target("t", 3.1, 3.0, at_most=True)
    verdicts = [t.met for t in (fast_but_worse, fast_and_close, slow, latency_ok, latency_bad)]
    assert verdicts == [False, True, False, True, False]
    assert fast_but_worse.row().endswith("| MISSED |") and "<= 3x" in latency_ok.row()


def fake_results(gpu: bool = False) -> dict[str, dict[str, workloads.Runs]]:
    """Every workload's sides at given speeds (x realtime) and clip latencies."""
    long = {speech_report.PIPELINE: 40, speech_report.JSON: 44, speech_report.VERBOSE: 38, PEER: 36}
    if not gpu:
        long |= {speech_report.TRANSCRIBE: 10, speech_report.OPENAI: 35}
    results = {"long": {n: runs(n, [(600.0, 0.0, *WORDS)], 600.0 / x, rss_mib=900) for n, x in long.items()}}
    http = (speech_report.JSON, speech_report.VERBOSE, PEER)
    for c, speeds in ((1, (20, 18, 19)), (8, (32, 30, 20)), (16, (33, 31, 20))):
        results[f"c{c}"] = {n: runs(n, [(16.0, 1.0, *WORDS)], 16.0 / x) for n, x in zip(http, speeds)}
    results["clips alone"] = {speech_report.PIPELINE: runs("p", [(16.0, 0.8, *WORDS)], 0.8)}
    results["four"] = {n: runs(n, [(150.0, 5.0, *WORDS)] * 4, 10.0) for n in (*http, speech_report.PIPELINE)}
    results["mix long"] = {n: runs(n, [(600.0, 20.0, *WORDS)], 20.0) for n in http}
    results["mix clips"] = {n: runs(n, [(16.0, s, *WORDS)], 20.0) for n, s in zip(http, (2.5, 3.5, 15.0))}
    return results


def test_targets_compare_the_sides_named_in_issues_26_and_32():
    verdicts = {t.what: (round(t.measured, 2), t.met) for t in speech_report.targets(fake_results(), False)}
    assert verdicts == {
        "one long file: service json vs in-process pipeline": (1.1, True),
        "clips at concurrency 8: service json vs peer server": (1.6, True),
        "four long files at once: service json vs peer server (#32)": (1.0, False),
        "mix: service json, clip p95 while the long file runs vs alone": (2.5, True),
        "mix: service verbose_json, clip p95 while the long file runs vs alone": (3.5, False),
        "one long file: service openai-whisper vs transcribe() (#19)": (3.5, True),
    }
    gpu = speech_report.targets(fake_results(gpu=True), True)
    assert [t.goal for t in gpu if "concurrency 8" in t.what] == [3.0]  # batching pays more on a GPU
    assert all(t.wer_peer < 0 for t in gpu)  # random weights: no accuracy condition


def test_the_report_has_every_workload_and_a_verdict_per_target(tmp_path):
    class Args:
        device, rounds, threads, minutes, clips, four_minutes, interval = "cpu", 2, 2, 14, 16, 2.5, 1.5
        no_peer, peer_missing = False, ""

    text = speech_report.markdown(Args, fake_results(), 600.0, "")
    for heading in ("One long file", "Clips", "Four long files at once", "Mix", "Targets (issues #26, #32)"):
        assert f"## {heading}" in text
    assert text.count("| met |") + text.count("| MISSED |") == 6 + 2  # targets, then #19's memory rows


class StandIn(BaseHTTPRequestHandler):
    """Answers a transcription after 0.6 s for a file named long*, 0.05 s for the others."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(0.6 if b'filename="long' in body else 0.05)
        payload = b'{"text": "one two"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_the_mix_sends_clips_while_the_long_file_runs_and_times_each(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    files = [tmp_path / name for name in ("long.wav", "a.wav", "b.wav", "c.wav", "d.wav", "e.wav")]
    for f in files:
        f.write_bytes(b"RIFF")
    long_file, *clips = (speech.Clip(f, "one two") for f in files)
    durations = {f: 16.0 for f in files}
    long_runs, clip_runs = workloads.Runs("l"), workloads.Runs("c")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        workloads.mix(long_runs, clip_runs, url, {}, long_file, clips, durations, interval=0.2)
    finally:
        server.shutdown()
    assert 0.55 < long_runs.files[0][1] < 1.5
    assert 2 <= len(clip_runs.files) <= 4  # at 0.1, 0.3, 0.5 s (0.7 s only if the long answer is late)
    assert all(seconds < 0.5 for _, seconds, _, _ in clip_runs.files) and clip_runs.wer == 0.0


def test_equal_work_caps_the_pipeline_at_the_services_forced_length():
    from tools import embedded

    request, options = gpu_model.equal_work(embedded.ct2_directory(), 96)  # make install provides it
    assert request["temperature"] == "0"
    assert options == {"max_new_tokens": 192 - 4, "suppress_tokens": [-1, 50256]}  # tiny.en's end-of-text


def test_gpu_script_plans_the_same_workloads_and_refuses_in_one_line_without_a_gpu(capsys):
    plan = subprocess.run(["bench/gpu.sh", "--plan"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "plan: 2 round(s) on cuda (random large-v3-turbo, float16" in plan.stdout
    for workload in ("long", "c1", "c8", "c16", "clips alone", "four", "mix long", "mix clips"):
        assert f"  {workload}: " in plan.stdout
    assert "bench.realtime --device cuda --sessions 1,16,64" in plan.stdout  # then live audio (#36)
    assert speech_main(["--plan", "--quick"]) == 0 and "1 round(s) on cpu" in capsys.readouterr().out
    import ctranslate2

    if ctranslate2.get_cuda_device_count():
        pytest.skip("this machine has a GPU: the refusal is for machines without one")
    done = subprocess.run(["bench/gpu.sh"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "bench/gpu.sh: no CUDA GPU found (ctranslate2 sees none): run it on a machine with an NVIDIA GPU "
        "and its driver"
    ]
