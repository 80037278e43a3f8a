"""The models a worker offers (MODELS): each with its own scheduler and model loop, loaded on first use,
unloaded after MODEL_TTL without requests, refused (503) when it would not fit the device's free memory.

The default model (WHISPER_MODEL) is the app's own scheduler: always loaded, what /readyz reports, and what a
request gets without `model` or with an alias (MODEL_ALIASES). A MODELS model is built like it, from the
settings with its source and engine, and its metrics carry its MODELS name as the `model` label.

A request holds a lease on its model from `acquire()` to `release()` (its teardown); a model is unloaded only
when no lease is held, nothing is queued or accepted, and MODEL_TTL has passed since its last lease. Its loop
thread then ends and the registry drops the scheduler; the engine and its weights go with the last reference.
PRELOAD_MODELS are loaded at start and kept. `free_memory` (device -> bytes, or None) is the seam where a test
injects a reading; it is memory.free_bytes otherwise.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass, field

from .. import metrics
from ..engines import create_engine
from ..errors import NotFound, Unavailable
from ..settings import Settings
from . import memory
from .scheduler import Scheduler
from .work import Health

log = logging.getLogger("service.batching.registry")


@dataclass
class Loaded:
    scheduler: Scheduler
    leases: int = 0
    last_used: float = field(default_factory=time.monotonic)
    pinned: bool = False  # PRELOAD_MODELS: never unloaded


class Registry:
    def __init__(self, default: Scheduler, settings: Settings, device_index: int = 0, free_memory=None):
        self.default = default
        self.settings = settings
        self.device_index = device_index
        self.entries = {entry.name: entry for entry in settings.models}
        self.loaded: dict[str, Loaded] = {}
        self.free_memory = free_memory or memory.free_bytes
        self.lock = threading.Lock()
        self.stopping = False
        for name in self.entries:  # a wrong engine for a source fails at start, not at the first request
            self._engine(name)

    # -- names ---------------------------------------------------------------------------------------------
    def default_names(self) -> list[str]:
        return list(dict.fromkeys([self.default.engine.model_name, *self.settings.model_aliases]))

    def names(self) -> list[str]:
        """Every name a request may send: the default's, its aliases, then MODELS'."""
        return list(dict.fromkeys([*self.default_names(), *self.entries]))

    def describe(self) -> list[dict]:
        """/v1/models' rows: each name, its engine, and whether it is loaded now."""
        rows = [(name, self.default.engine.name, self.default.ready) for name in self.default_names()]
        with self.lock:
            for name in self.entries:
                loaded = self.loaded.get(name)
                engine = loaded.scheduler.engine.name if loaded else self._engine_name(name)
                rows.append((name, engine, bool(loaded and loaded.scheduler.ready)))
        return [{"id": name, "engine": engine, "loaded": ready} for name, engine, ready in rows]

    # -- a request's lease ---------------------------------------------------------------------------------
    def acquire(self, name: str | None) -> Scheduler:
        """The scheduler of the model a request names (None or an alias: the default), loaded and ready;
        404 `model_not_found` for a name not offered, 503 when it does not fit or fails to load."""
        if name is None or name == "" or name in self.default_names():
            return self.default
        if name not in self.entries:
            raise NotFound(
                f"The model {name[:60]!r} does not exist: this server serves {', '.join(self.names())}.",
                param="model",
                code="model_not_found",
            )
        with self.lock:
            loaded = self.loaded.get(name) or self._load(name)
            loaded.leases += 1
            loaded.last_used = time.monotonic()
        try:
            self._wait_ready(name, loaded.scheduler)
        except Exception:
            self.release(loaded.scheduler)
            raise
        return loaded.scheduler

    def release(self, scheduler: Scheduler) -> None:
        with self.lock:
            for loaded in self.loaded.values():
                if loaded.scheduler is scheduler:
                    loaded.leases -= 1
                    loaded.last_used = time.monotonic()

    # -- loading and unloading -----------------------------------------------------------------------------
    def _engine_name(self, name: str) -> str:
        return self.entries[name].engine or self.settings.whisper_engine

    def _engine(self, name: str):
        entry = self.entries[name]
        settings = self.settings.replace(
            whisper_model=entry.source, whisper_engine=self._engine_name(name), models=(), preload_models=()
        )
        engine = create_engine(settings, self.device_index)
        engine.model_name = name  # /v1/models' id and the metrics' `model` label
        return engine

    def _load(self, name: str) -> Loaded:
        """With the lock held: check the memory, then start the model's own scheduler (it loads on its
        thread)."""
        if self.stopping or self.default.health is Health.STOPPING:
            raise Unavailable("The server is shutting down.", retry_after=10)
        engine = self._engine(name)
        memory.check_fits(name, self.entries[name].source, engine.device, self.free_memory(engine.device))
        scheduler = Scheduler(engine, engine.settings)
        self.loaded[name] = loaded = Loaded(scheduler)
        scheduler.start()
        metrics.MODEL_LOADED.labels(**scheduler.labels).set(1)
        log.info("loading model %s (%s on %s)", name, engine.name, engine.device)
        return loaded

    def _wait_ready(self, name: str, scheduler: Scheduler) -> None:
        deadline = time.monotonic() + self.settings.request_timeout
        with scheduler.work.lock:
            while scheduler.health in (Health.STARTING, Health.LOADING) and time.monotonic() < deadline:
                scheduler.work.lock.wait(0.2)
            health, reason = scheduler.health, scheduler.reason
        if health is Health.FAILED:
            with self.lock:
                if self.loaded.get(name, None) and self.loaded[name].scheduler is scheduler:
                    self._drop(name)
            raise Unavailable(f"The model {name!r} failed to load: {reason}.", code="model_load_failed")
        if health is not Health.READY:
            raise Unavailable(f"The model {name!r} is {reason}.", retry_after=10)

    def preload(self) -> None:
        """PRELOAD_MODELS, loaded now (their loops load them in parallel with the default) and kept; one
        that does not fit is logged and left to load on first use (or be refused then)."""
        with self.lock:
            for name in self.settings.preload_models:
                try:
                    loaded = self.loaded.get(name) or self._load(name)
                except Unavailable as error:
                    log.error("PRELOAD_MODELS: %s", error.message)
                    continue
                loaded.pinned = True

    def unload_idle(self, now: float | None = None) -> list[str]:
        """Unload every model idle for MODEL_TTL (none when it is 0); the names unloaded."""
        ttl = self.settings.model_ttl
        now = time.monotonic() if now is None else now
        with self.lock:
            idle = [name for name, loaded in self.loaded.items() if ttl and self._idle(loaded, now - ttl)]
            dropped = [self._drop(name) for name in idle]
        for scheduler in dropped:
            scheduler.loop.thread.join(timeout=10)
            scheduler.engine.model = None  # both engines hold their weights there: freed now, not at return
        if dropped:
            gc.collect()  # the weights' last references may sit in a cycle
            for scheduler in dropped:
                scheduler.engine.release_cache()  # torch's cached GPU blocks, once the weights are gone
            memory.give_back()
            log.info("unloaded idle models %s (MODEL_TTL=%g s)", ", ".join(idle), ttl)
        return idle

    @staticmethod
    def _idle(loaded: Loaded, since: float) -> bool:
        scheduler = loaded.scheduler
        with scheduler.work.lock:
            busy = scheduler.admission.accepted or not scheduler.work.empty() or scheduler.work.arriving
        loading = scheduler.health in (Health.STARTING, Health.LOADING)
        return not (loaded.pinned or loaded.leases or busy or loading) and loaded.last_used < since

    def _drop(self, name: str) -> Scheduler:
        """With the lock held: forget the model and end its loop thread (it returns once idle)."""
        scheduler = self.loaded.pop(name).scheduler
        with scheduler.work.lock:
            scheduler.work.stopped = True
            scheduler.work.lock.notify_all()
        metrics.MODEL_LOADED.labels(**scheduler.labels).set(0)
        return scheduler

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Preload, then check for idle models every quarter of MODEL_TTL (at most every 10 s)."""
        self.preload()
        if self.entries and self.settings.model_ttl:
            interval = min(10.0, self.settings.model_ttl / 4)
            threading.Thread(target=self._reap, args=(interval,), name="model-ttl", daemon=True).start()

    def _reap(self, interval: float) -> None:
        while not self.stopping:
            time.sleep(interval)
            try:
                self.unload_idle()
            except Exception:  # never let the reaper die: the next round tries again
                log.exception("unloading idle models failed")

    def begin_shutdown(self) -> None:
        with self.lock:
            self.stopping = True
            schedulers = [loaded.scheduler for loaded in self.loaded.values()]
        for scheduler in schedulers:
            scheduler.begin_shutdown()
