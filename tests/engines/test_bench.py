"""bench/engines.py, the in-process engine benchmark, on a small setting: it measures both engines on equal
work and renders the table that `make bench` puts in docs/benchmarks.md."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_bench_module():
    # bench/ is a tool folder beside the package, not installed: load the file itself.
    spec = importlib.util.spec_from_file_location("bench_engines_under_test", ROOT / "bench" / "engines.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_measures_both_engines_on_equal_work(tmp_path):
    bench = load_bench_module()
    sides = (bench.Side("openai-whisper", "float32", 2), bench.Side("faster-whisper", "int8", 2))
    config = bench.Config(dims="test", audio_seconds=45, force_tokens=8, threads=1, repeats=1, sides=sides)
    result = bench.run(config, work_dir=tmp_path)
    assert [row.side for row in result.rows] == list(sides)
    for row in result.rows:
        assert row.tokens_per_window == 8
        assert row.x_realtime > 0 and row.seconds > 0 and row.load_seconds > 0 and len(row.runs) == 1
        assert 20 < row.peak_rss_mb < 4000
    assert result.conversion["relative_logprob_diff"] < result.conversion["tolerance"]
    table = bench.markdown(result)
    assert "| openai-whisper | float32 | 2 |" in table and "| faster-whisper | int8 | 2 |" in table
    assert "exactly 8 tokens per 30 s window" in table and "1.00x" in table
