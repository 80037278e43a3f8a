"""A running job's checkpoint: the segments of its windows finished in order, so a job taken over after a
crash decodes only the windows after them (batched decoding: each window is decoded on its own). Saved as
JSON text in the store by each heartbeat; used only when the audio plans into the same windows again."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace

from ..transcript import Segment, Word


def segment_from(data: dict) -> Segment:
    words = None if data["words"] is None else tuple(Word(**w) for w in data["words"])
    logprobs = None if data["logprobs"] is None else tuple(tuple(p) for p in data["logprobs"])
    return Segment(**{**data, "tokens": tuple(data["tokens"]), "words": words, "logprobs": logprobs})


def saved(job) -> tuple[int, str] | None:
    """(windows done in order, the checkpoint's text) of a scheduler Job; None when there is none to save."""
    done = getattr(job, "_next_event", 0)
    if not done or job.sequential_segments is not None or job.options.sequential:
        return None
    state = {
        "windows": len(job.windows),
        "done": done,
        "language": job.language,
        "segments": [[dataclasses.asdict(s) for s in job.segments[i]] for i in range(done)],
    }
    return done, json.dumps(state, separators=(",", ":"))


def restore(job, text: str | None) -> bool:
    """Mark the checkpoint's windows done in a freshly planned Job, before it is submitted; False (the job
    starts over) when there is no checkpoint or the audio planned differently."""
    if not text or job.options.sequential:
        return False
    state = json.loads(text)
    if state["windows"] != len(job.windows) or not state["done"]:
        return False
    for i, segments in enumerate(state["segments"]):
        job.segments[i] = [segment_from(s) for s in segments]
        job.complete[i] = True
    job._next_event = state["done"]
    if state["language"] and job.options.language is None:  # detected before the crash: not again
        job.options = replace(job.options, language=state["language"])
    return True
