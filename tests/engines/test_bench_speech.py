"""bench/speech.py's arithmetic: x realtime, WER over all files, percentiles, and the target verdicts (the
measuring itself needs minutes of real inference and runs in `make bench`, not here)."""

from __future__ import annotations

from bench import speech as bench_speech


def runs(name: str, files: list[tuple[float, float, str, str]], wall: float, rss_mib: int = 0):
    r = bench_speech.Runs(name, peak_rss=rss_mib * bench_speech.MIB)
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


def test_a_speed_target_is_missed_when_accuracy_is_worse_than_the_peer_by_more_than_a_point():
    fast_but_worse = bench_speech.Target("t", measured=2.0, goal=1.2, wer_side=0.12, wer_peer=0.10)
    fast_and_close = bench_speech.Target("t", measured=2.0, goal=1.2, wer_side=0.105, wer_peer=0.10)
    slow = bench_speech.Target("t", measured=1.1, goal=1.2, wer_side=0.05, wer_peer=0.10)
    speed_only = bench_speech.Target("t", measured=2.5, goal=2.0)
    assert [t.met for t in (fast_but_worse, fast_and_close, slow, speed_only)] == [False, True, False, True]
    assert fast_but_worse.row().endswith("| MISSED |") and speed_only.row().endswith("| met |")


def test_targets_compare_the_sides_named_in_the_issue():
    words = (
        "one two three four five six seven eight nine ten",
        "one two three four five six seven eight nine ten",
    )
    sides = [(bench_speech.TRANSCRIBE, 10, 600), (bench_speech.BATCHED, 40, 500),
             ("faster-whisper WhisperModel, int8, beam 5", 20, 400), ("service, openai-whisper", 35, 850),
             ("service, faster-whisper", 50, 900),
             ("service, faster-whisper, BEAM_SIZE=5", 44, 900)]  # fmt: skip
    long_runs = {
        name: runs(name, [(600.0, 0.0, *words)], wall=600.0 / x, rss_mib=rss) for name, x, rss in sides
    }
    clip_runs = {f"service, {e}, concurrency {c}": runs("c", [(16.0, 1.0, *words)], wall=16.0 / x)
                 for e in bench_speech.ENGINES for c, x in ((1, 10), (8, 25))}  # fmt: skip
    verdicts = {t.what: (round(t.measured, 2), t.met) for t in bench_speech.targets(long_runs, clip_runs)}
    assert verdicts == {
        "long file: service, faster-whisper vs BatchedInferencePipeline": (1.25, True),
        "long file: service, faster-whisper, BEAM_SIZE=5 vs BatchedInferencePipeline": (1.1, False),
        "long file: service, openai-whisper vs transcribe()": (3.5, True),
        "clips: service, openai-whisper, concurrency 8 vs 1": (2.5, True),
        "clips: service, faster-whisper, concurrency 8 vs 1": (2.5, True),
    }
    rows = bench_speech.memory_rows(long_runs)
    assert (
        rows[0].startswith("| service, openai-whisper vs openai-whisper transcribe() | +250 MiB")
        and "met" in rows[0]
    )
    assert "+400 MiB" in rows[1] and rows[1].endswith("MISSED |")
