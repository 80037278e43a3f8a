"""How many inputs one model call on a CPU takes: full batches while only long work waits, one long input a
call while someone may be waiting for a short answer (issue #32).

A call in flight cannot be interrupted, and on a CPU its time grows with its inputs (about 0.75 s a window
at BATCH_SIZE 8 on 2 threads, tiny.en int8): a clip that arrives while 8 windows of a long file decode waits
for all 8. So what a call holds depends on who may arrive:
- only long work waits, and no short request came for INTERACTIVE_HOLD_SECONDS: calls of BATCH_SIZE
  inputs, filled from every long job (take_batch's round robin), where batching pays (one long file,
  several at once);
- a short request (at most one window's audio, or a live decode) is queued: the next call takes the short
  jobs only, up to BATCH_SIZE of them (clips sent together still share a call), unless a long job was
  passed over MAX_PASSED_OVER calls in a row: then a call of at most INTERACTIVE_BATCH_SIZE long inputs,
  that job's first, goes before them (long work is never starved, and a clip waits for one small call);
- none is queued but one came within INTERACTIVE_HOLD_SECONDS (more are likely: a client sending clips, a
  live session): calls of INTERACTIVE_BATCH_SIZE long inputs, so the next clip waits for at most that.
A GPU's call costs about one input's time whatever it holds, so there every call is filled (take_batch).
Not thread-safe by itself: the inference thread and `submit()` call it with the work lock held.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

from .job import Job
from .work import MAX_PASSED_OVER, ModelInput, take_batch

SHORT_SECONDS = 30.0  # a job of at most one window's audio is short: someone is waiting for it now


def is_short(job: Job) -> bool:
    return job.duration <= SHORT_SECONDS or job.live > 0


class Sizing:
    def __init__(self, interactive_size: int, hold: float, clock: Callable[[], float] = time.monotonic):
        """`interactive_size`: long inputs a call takes while short work is likely (0: always full calls);
        `hold`: seconds after a short request during which more are expected."""
        self.interactive_size = interactive_size
        self.hold = hold
        self.clock = clock
        self.last_short = float("-inf")

    def submitted(self, job: Job) -> None:
        """A job was queued: a short one makes more short ones likely for `hold` seconds."""
        if is_short(job):
            self.last_short = self.clock()

    def expecting_short(self) -> bool:
        return self.clock() - self.last_short < self.hold

    def take(
        self, pending: OrderedDict[int, deque[ModelInput]], size: int, free_batching: bool
    ) -> list[ModelInput]:
        """The next call's inputs, taken from `pending` (see the module's rule)."""
        if free_batching or not self.interactive_size or not pending:
            return take_batch(pending, size, free_batching)
        short = OrderedDict((k, q) for k, q in pending.items() if is_short(q[0].job))
        long = OrderedDict((k, q) for k, q in pending.items() if k not in short)
        starved = any(q[0].job.passed_over >= MAX_PASSED_OVER for q in long.values())
        if short and not starved:
            return _take_only(pending, short, size)
        if short or self.expecting_short():
            return _take_only(pending, long, min(size, self.interactive_size))
        return take_batch(pending, size)  # nobody waits for a short answer: fill the call, as on a GPU


def _take_only(
    pending: OrderedDict[int, deque[ModelInput]], jobs: OrderedDict[int, deque[ModelInput]], size: int
) -> list[ModelInput]:
    """A call of these jobs' inputs only (the short ones, or the long ones); the others count it as a call
    that passed them over."""
    batch = take_batch(jobs, size, free_batching=False)
    for key in list(pending):
        inputs = pending[key]
        if not inputs:
            del pending[key]
        elif key not in jobs:
            inputs[0].job.passed_over += 1
    return batch
