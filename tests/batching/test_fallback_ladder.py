"""What a window gets when every step of the temperature ladder needs a fallback: openai-whisper's
transcribe() keeps the last decode (its T=1.0 sample), faster-whisper's keeps the most likely one that is not
too repetitive (transcribe.py, generate_with_fallback). The service follows each engine's own rule: keeping
the last sample turned the embedded base's German translation into random words ('falar hp paris boys ...')
where faster-whisper's transcribe(task="translate") gave a sentence."""

from __future__ import annotations

import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from service.batching.job import FALLBACK_TEMPERATURES, Job, JobOptions
from service.batching.scheduler import Scheduler
from service.batching.work import after_ladder
from service.engines.base import Thresholds, WindowResult
from service.engines.openai_whisper import OpenAIWhisperEngine
from service.settings import Settings
from service.transcript import Segment


def result(temperature: float, avg_logprob: float, compression_ratio: float) -> WindowResult:
    text = f"decoded at {temperature}"
    segment = Segment(0.0, 2.0, text, (1,), temperature=temperature, avg_logprob=avg_logprob)
    return WindowResult((segment,), text, temperature, avg_logprob, compression_ratio, 0.0, consumed=30.0)


ladders = st.lists(
    st.tuples(st.floats(-5.0, -1.01), st.floats(0.5, 5.0)), min_size=1, max_size=len(FALLBACK_TEMPERATURES)
)


@settings(max_examples=300, deadline=None)
@given(ladders, st.sampled_from([None, 2.4, 1.0]))
def test_after_the_ladder_each_engine_keeps_its_own_choice(steps, compression):
    tried = tuple(result(FALLBACK_TEMPERATURES[i], lp, cr) for i, (lp, cr) in enumerate(steps))
    thresholds = Thresholds(compression_ratio=compression)
    assert after_ladder(tried, thresholds, best=False) is tried[-1]
    chosen = after_ladder(tried, thresholds, best=True)
    calm = [r for r in tried if compression is None or r.compression_ratio <= compression]
    assert chosen in (calm or tried)
    assert all(chosen.avg_logprob >= r.avg_logprob for r in (calm or tried))


class Scripted(OpenAIWhisperEngine):
    """The real engine, loaded, whose decodes are replaced by scripted ones: each temperature's logprob and
    compression ratio as given, all below the thresholds, so every window runs the whole ladder."""

    script = {0.0: (-2.0, 1.2), 0.2: (-1.5, 1.3), 0.4: (-1.1, 3.0), 0.6: (-1.8, 1.1), 0.8: (-3.0, 1.0)}
    script[1.0] = (-2.5, 1.4)
    temperatures: list[float]

    def decode(self, windows, options):
        self.temperatures.append(options.temperature)
        return [result(options.temperature, *self.script[options.temperature]) for _ in windows]


def transcribed_through_the_scheduler(checkpoint, best: bool) -> tuple[str, list[float]]:
    engine = Scripted(Settings(whisper_model=str(checkpoint), whisper_device="cpu", warmup=False))
    engine.temperatures, engine.best_after_ladder = [], best
    scheduler = Scheduler(engine, engine.settings)
    scheduler.start()
    deadline = time.monotonic() + 60
    while not scheduler.ready:
        assert time.monotonic() < deadline and scheduler.health.value != "failed", scheduler.reason
        time.sleep(0.05)
    audio = (np.random.default_rng(0).standard_normal(5 * 16000) * 0.1).astype(np.float32)
    job = Job.planned(audio, JobOptions(language="en", vad=False), time.monotonic() + 60)
    scheduler.submit(job)
    scheduler.wait(job)
    return job.transcript().text.strip(), engine.temperatures


def test_the_model_loop_keeps_the_last_decode_for_openai_whisper_and_the_best_for_faster_whisper(checkpoint):
    text, temperatures = transcribed_through_the_scheduler(checkpoint, best=False)
    assert temperatures == list(FALLBACK_TEMPERATURES) and text == "decoded at 1.0"
    text, temperatures = transcribed_through_the_scheduler(checkpoint, best=True)
    # 0.4 is the most likely but too repetitive (3.0 > 2.4): the best of the others is 0.2's
    assert temperatures == list(FALLBACK_TEMPERATURES) and text == "decoded at 0.2"
