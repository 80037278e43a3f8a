"""The bounded queue's gate: what is accepted and not finished, by audio seconds and by job count
(QUEUE_MAX_SECONDS, QUEUE_MAX_REQUESTS), with each API key's share of both (KEY_MAX_SHARE); a job that does
not fit is refused at once with 429 and a Retry-After estimated from measured throughput. Not thread-safe by
itself: the scheduler calls it with its lock held."""

from __future__ import annotations

from .. import metrics
from ..errors import QueueFull
from ..settings import Settings
from .fairshare import KeyShares
from .job import Job


class Admission:
    def __init__(self, settings: Settings):
        self.max_seconds = settings.queue_max_seconds
        self.max_requests = settings.queue_max_requests
        self.shares = KeyShares(settings.key_max_share, settings.key_max_share)
        self.accepted: dict[int, Job] = {}  # accepted and not finished
        self.throughput = 0.0  # audio seconds per wall second, smoothed; for Retry-After

    def refuse_if_full(self, duration: float, key_id: str | None) -> None:
        """Raise 429 when a job of `duration` seconds (0: any) from `key_id` does not fit."""
        self.shares.check(key_id, duration, self.max_requests, self.max_seconds, self.retry_after)
        queued = sum(j.duration for j in self.accepted.values())
        full = len(self.accepted) >= self.max_requests or (
            self.accepted and queued + duration > self.max_seconds
        )
        if full:
            metrics.REJECTED.labels("queue_full").inc()
            raise QueueFull(
                f"The server is busy: {queued:.0f} s of audio are queued. Retry later.",
                retry_after=self.retry_after(queued),
            )

    def accept(self, job: Job) -> None:
        self.accepted[job.id] = job
        self.shares.add(job.key_id, job.duration)
        metrics.QUEUE_AUDIO.inc(job.duration)

    def release(self, job: Job) -> None:
        """The job finished, failed or was cancelled: its share of the queue is free again."""
        if self.accepted.pop(job.id, None) is not None:
            metrics.QUEUE_AUDIO.dec(job.duration)
            self.shares.release(job.key_id, job.duration)

    def retry_after(self, queued_seconds: float) -> float:
        if self.throughput <= 0:
            return 5.0
        return min(600.0, max(1.0, queued_seconds / self.throughput))

    def measured(self, audio_seconds: float, elapsed: float) -> None:
        """A model call decoded `audio_seconds` in `elapsed` wall seconds."""
        rate = audio_seconds / max(elapsed, 1e-6)
        self.throughput = rate if self.throughput == 0 else 0.8 * self.throughput + 0.2 * rate
