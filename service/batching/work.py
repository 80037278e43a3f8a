"""The work waiting for the model, shared by the request threads and the inference thread under one lock:
jobs waiting for language detection, each job's inputs in order, sequential jobs; and the rule that takes
a batch from it."""

from __future__ import annotations

import enum
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace

import numpy as np

from .. import metrics
from ..engines.base import DecodeOptions, Thresholds, WindowResult
from .job import Job
from .placement import Rest


class Health(enum.Enum):
    STARTING = "starting"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    STOPPING = "stopping"


@dataclass
class ModelInput:
    """One row of a model call: one or more of a job's rests, at one step of the temperature ladder."""

    job: Job
    rests: tuple[Rest, ...]
    step: int = 0
    tried: tuple[WindowResult, ...] = ()  # the decodes at the earlier steps, each of which needed a fallback

    def options(self) -> DecodeOptions:
        return self.job.options.decode_options(self.step, self.job.language, self.rests[0].window)

    def audio(self) -> np.ndarray:
        return self.job.input_audio(self.rests)

    def retry(self, result: WindowResult) -> ModelInput:
        """The same rests at the next temperature, after `result` needed a fallback."""
        return replace(self, step=self.step + 1, tried=(*self.tried, result))

    def settle(self, result: WindowResult, best: bool) -> WindowResult:
        """The last step's `result` needed a fallback too: what the window gets (after_ladder)."""
        return after_ladder((*self.tried, result), self.job.options.thresholds, best)


@dataclass
class Work:
    lock: threading.Condition = field(default_factory=threading.Condition)
    health: Health = Health.STARTING
    reason: str = "the model is not loaded yet"
    detect: deque[Job] = field(default_factory=deque)  # jobs waiting for language detection
    pending: OrderedDict[int, deque[ModelInput]] = field(default_factory=OrderedDict)  # job id -> inputs
    sequential: deque[Job] = field(default_factory=deque)
    arriving: int = 0  # requests admitted whose audio is still being decoded or planned
    stopped: bool = False  # the model is unloaded (registry.py): its loop thread ends once idle

    def empty(self) -> bool:
        return not (self.detect or self.pending or self.sequential)

    def wait_for_work(self) -> bool:
        """With the lock held: wait until something is queued (True), or stopped while idle (False)."""
        while self.empty():
            if self.stopped:
                return False
            self.lock.wait(1.0)
        return True

    def queued_inputs(self) -> int:
        return sum(len(inputs) for inputs in self.pending.values())

    def drop(self, job: Job) -> int:
        """Forget the job's queued inputs; how many there were."""
        dropped = len(self.pending.pop(job.id, ()))
        metrics.QUEUE_DEPTH.dec(dropped)
        return dropped

    def first(self, job: Job, inputs: list[ModelInput]) -> None:
        """Queue inputs at the front of the job's own (a retry or a rest is the job's next input), and the job
        first among jobs of equal length (take_batch)."""
        queued = self.pending.setdefault(job.id, deque())
        for model_input in reversed(inputs):
            queued.appendleft(model_input)
        self.pending.move_to_end(job.id, last=False)
        metrics.QUEUE_DEPTH.inc(len(inputs))


MAX_PASSED_OVER = 4  # model calls a job with queued inputs may be left out of before it goes first


def background_passed_over(share: float) -> int:
    """Calls a background job may be left out of in a row for it to get `share` of the calls while
    interactive requests wait (JOBS_BACKGROUND_SHARE): 0.2 -> 4, one call in five."""
    return max(0, round(1 / share) - 1)


def take_batch(
    pending: OrderedDict[int, deque[ModelInput]], size: int, free_batching: bool = True
) -> list[ModelInput]:
    """Up to `size` inputs with equal options, taken from `pending` (a job with nothing left is removed).

    Shortest job first (live items before all: Job.live): the job with the fewest queued inputs chooses the
    options, and jobs are served in that order, one input per job per round, so a clip is not stuck behind
    a two-hour file; a job left out of MAX_PASSED_OVER model calls in a row goes first, so a long one is not
    starved either. A streamed job gives at most `Job.input_cap()` inputs to one call (first text sooner).

    Without `free_batching` (a CPU, where a call's time grows with its inputs), see `_on_a_cpu`."""
    if not pending:
        return []
    order = sorted(pending, key=lambda job_id: _priority(pending[job_id]))
    if not free_batching:
        order = _on_a_cpu(pending, order, size)
    key = pending[order[0]][0].options()
    batch: list[ModelInput] = []
    taken: dict[int, int] = {}
    while len(batch) < size:
        before = len(batch)
        for job_id in order:
            inputs = pending.get(job_id)
            if len(batch) >= size:
                break
            if not inputs or inputs[0].options() != key or _capped(inputs[0].job, taken.get(job_id, 0)):
                continue
            batch.append(inputs.popleft())
            taken[job_id] = taken.get(job_id, 0) + 1
        if len(batch) == before:
            break
    for job_id in list(pending):
        inputs = pending[job_id]
        if not inputs:
            del pending[job_id]
        else:
            inputs[0].job.passed_over = 0 if job_id in taken else inputs[0].job.passed_over + 1
    return batch


def _on_a_cpu(pending: OrderedDict[int, deque[ModelInput]], order: list[int], size: int) -> list[int]:
    """The jobs a CPU's call may take, in order. A call that finishes its first job takes only jobs it also
    finishes: a clip is not decoded together with 7 windows of a long file, at several times its own cost
    (docs/performance.md); those windows go in the next call. A live decode goes alone: someone waits for
    its words, and 4 partials in one call took ~1.1 s against 0.3 s for one (docs/performance.md)."""
    first = pending[order[0]]
    if first[0].job.live:
        return order[:1]
    if len(first) <= size:
        return [job_id for job_id in order if len(pending[job_id]) <= size]
    return order


def _capped(job: Job, taken: int) -> bool:
    cap = job.input_cap()
    return cap is not None and taken >= cap


def _priority(inputs: deque[ModelInput]) -> tuple[bool, int, bool, int]:
    """Sort key: a job passed over too often first, then live decodes (someone is waiting for the words;
    the highest Job.live first: a turn's first words, a turn's final, later words), then interactive before
    background jobs (but an overdue background job before overdue requests), then the fewest inputs; ties
    keep arrival order. So a file waits for live decodes at most MAX_PASSED_OVER calls, a live decode for a
    file at most one call, and a background job for requests at most its own `max_passed_over` calls."""
    job = inputs[0].job
    late = overdue(job)
    return not late, -job.live, job.background is not late, len(inputs)


def overdue(job: Job) -> bool:
    """Whether the job has been left out of as many calls in a row as it may be (its own `max_passed_over`,
    else MAX_PASSED_OVER): then it goes first."""
    limit = MAX_PASSED_OVER if job.max_passed_over is None else job.max_passed_over
    return job.passed_over >= limit


def after_ladder(tried: tuple[WindowResult, ...], thresholds: Thresholds, best: bool) -> WindowResult:
    """What a window gets when every temperature of the ladder needed a fallback: the last decode (openai-
    whisper's transcribe()), or with `best` the one with the highest avg_logprob among those not too
    repetitive, else among all (faster-whisper's transcribe(), transcribe.py's generate_with_fallback)."""
    if not best:
        return tried[-1]
    limit = thresholds.compression_ratio
    calm = [r for r in tried if limit is None or r.compression_ratio <= limit]
    return max(calm or tried, key=lambda r: r.avg_logprob)
