"""The work waiting for the model, shared by the request threads and the inference thread under one lock:
jobs waiting for language detection, each job's inputs in order, sequential jobs; and the rule that takes
a batch from it."""

from __future__ import annotations

import enum
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

from .. import metrics
from ..engines.base import DecodeOptions
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

    def options(self) -> DecodeOptions:
        return self.job.options.decode_options(self.step, self.job.language, self.rests[0].window)

    def audio(self) -> np.ndarray:
        return self.job.input_audio(self.rests)


@dataclass
class Work:
    lock: threading.Condition = field(default_factory=threading.Condition)
    health: Health = Health.STARTING
    reason: str = "the model is not loaded yet"
    detect: deque[Job] = field(default_factory=deque)  # jobs waiting for language detection
    pending: OrderedDict[int, deque[ModelInput]] = field(default_factory=OrderedDict)  # job id -> inputs
    sequential: deque[Job] = field(default_factory=deque)
    arriving: int = 0  # requests admitted whose audio is still being decoded or planned

    def empty(self) -> bool:
        return not (self.detect or self.pending or self.sequential)

    def queued_inputs(self) -> int:
        return sum(len(inputs) for inputs in self.pending.values())

    def drop(self, job: Job) -> int:
        """Forget the job's queued inputs; how many there were."""
        dropped = len(self.pending.pop(job.id, ()))
        metrics.QUEUE_DEPTH.dec(dropped)
        return dropped

    def first(self, job: Job, inputs: list[ModelInput]) -> None:
        """Queue inputs at the front of the job's own, and the job first: it is already being decoded."""
        queued = self.pending.setdefault(job.id, deque())
        for model_input in reversed(inputs):
            queued.appendleft(model_input)
        self.pending.move_to_end(job.id, last=False)
        metrics.QUEUE_DEPTH.inc(len(inputs))


def take_batch(pending: OrderedDict[int, deque[ModelInput]], size: int) -> list[ModelInput]:
    """Up to `size` inputs with equal options, one per job per round, oldest job first; taken from
    `pending` (a job with nothing left is removed)."""
    if not pending:
        return []
    key = next(iter(pending.values()))[0].options()
    batch: list[ModelInput] = []
    while len(batch) < size:
        taken = 0
        for job_id, inputs in list(pending.items()):
            if len(batch) >= size:
                break
            if inputs and inputs[0].options() == key:
                batch.append(inputs.popleft())
                taken += 1
            if not inputs:
                del pending[job_id]
        if not taken:
            break
    return batch
