"""Fair share of the admission queue per API key: no key holds more than KEY_MAX_SHARE of it.

The scheduler's queue is bounded by job count and by audio seconds (QUEUE_MAX_REQUESTS, QUEUE_MAX_SECONDS).
Without a share, one client with a valid key can fill it and every other key gets 429. `KeyShares` counts
what each key has accepted and not finished, and refuses a key's job that would take it over its share of
either bound: 429 `key_share` with a Retry-After from that key's own backlog, while other keys are still
admitted. A key with nothing queued may always send one job (as the queue takes one job of any length when
empty). Requests without a key id (API_KEYS unset) are not shared out.

Not thread-safe by itself: the scheduler calls it with its lock held. Keys are known only by their id (a
hash prefix, see service/server/auth.py), which is also the label of the per-key metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .. import metrics
from ..errors import QueueFull


@dataclass
class Usage:
    requests: int = 0  # accepted and not finished
    seconds: float = 0.0  # their audio


class KeyShares:
    def __init__(self, max_requests_share: float, max_seconds_share: float):
        self.max_requests_share = max_requests_share  # fraction of QUEUE_MAX_REQUESTS one key may hold
        self.max_seconds_share = max_seconds_share  # fraction of QUEUE_MAX_SECONDS one key may hold
        self._usage: dict[str, Usage] = {}

    def usage(self, key_id: str | None) -> Usage:
        return self._usage.get(key_id or "", Usage())

    def over_share(
        self, key_id: str | None, seconds: float, max_requests: int, max_seconds: float
    ) -> str | None:
        """Why a job of `seconds` from `key_id` would take it over its share, or None when it fits."""
        if key_id is None:
            return None
        used = self.usage(key_id)
        requests_cap = max(1, math.floor(self.max_requests_share * max_requests))
        if used.requests >= requests_cap:
            return f"this API key has {used.requests} requests queued, its share is {requests_cap}"
        seconds_cap = self.max_seconds_share * max_seconds
        if used.requests and used.seconds + seconds > seconds_cap:
            return f"this API key has {used.seconds:.0f} s of audio queued, its share is {seconds_cap:.0f} s"
        return None

    def check(
        self,
        key_id: str | None,
        seconds: float,
        max_requests: int,
        max_seconds: float,
        retry_after: Callable[[float], float],
    ) -> None:
        """Raise 429 `key_share` when the job does not fit the key's share; `retry_after(queued seconds)`
        estimates when the key's own backlog will have drained."""
        why = self.over_share(key_id, seconds, max_requests, max_seconds)
        if why is None:
            return
        metrics.REJECTED.labels("key_share").inc()
        raise QueueFull(
            f"Too many requests for one API key: {why}. Retry later; other keys are still served.",
            code="key_share",
            retry_after=retry_after(self.usage(key_id).seconds),
        )

    def add(self, key_id: str | None, seconds: float) -> None:
        """The key's job was accepted."""
        if key_id is None:
            return
        used = self._usage.setdefault(key_id, Usage())
        used.requests += 1
        used.seconds += seconds
        metrics.KEY_ACCEPTED.labels(key_id).inc()
        metrics.KEY_IN_FLIGHT.labels(key_id).inc()

    def release(self, key_id: str | None, seconds: float) -> None:
        """The key's accepted job finished (or failed, or was cancelled)."""
        used = self._usage.get(key_id or "")
        if used is None:
            return
        used.requests -= 1
        used.seconds = max(0.0, used.seconds - seconds)
        metrics.KEY_IN_FLIGHT.labels(key_id).dec()
        if used.requests <= 0:
            del self._usage[key_id]
