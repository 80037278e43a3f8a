"""A transcription session: its configuration, its input audio buffer, its turns and its items.

`handle()` takes one client frame and `tick()` the passage of time; both return the server events to send,
in order. The session never blocks: decodes are queued on the scheduler and looked at on each tick.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time

from pydantic import ValidationError

from ... import metrics
from ...audio import SAMPLE_RATE
from ...errors import APIError
from . import audio, decoding, events
from .config import SessionConfig
from .decoding import FINAL, Decoder, Item, context_tail
from .events import EventError, server_event
from .turns import Buffer, Turn, TurnDetector, ms

log = logging.getLogger(__name__)

MIN_COMMIT_SAMPLES = SAMPLE_RATE // 10  # OpenAI refuses to commit less than 100 ms of audio
MAX_BUFFER_SECONDS = 300  # uncommitted audio a session without server_vad may hold


class Session:
    def __init__(self, decoder: Decoder):
        self.id = events.new_id("sess")
        self.decoder = decoder
        self.config = SessionConfig()
        self.buffer = Buffer()
        self.resampler = audio.Resampler(audio.FORMATS[self.config.format][1])
        self.detector: TurnDetector | None = TurnDetector(self.config.turn_detection)
        self.speaking: Item | None = None  # the item of the turn in progress
        self.decoding: list[Item] = []  # committed items whose final decode is queued
        self.last_item: str | None = None
        self.said = ""  # the end of the completed text: the decodes' context (REALTIME_CONTEXT_CHARS)

    def created(self) -> dict:
        return server_event("session.created", session=self.config.ga(self.id))

    # -- client events -------------------------------------------------------------------------------------
    def handle(self, frame: str | bytes) -> list[dict]:
        try:
            event = events.parse(frame)
            if isinstance(event, events.SessionUpdate):
                return [self._update(event)]
            if isinstance(event, events.Append):
                self._append(event)
                return []
            if isinstance(event, events.Commit):
                return self._commit(event.event_id)
            return self._clear()
        except EventError as error:
            return [events.error_event(error)]

    def _update(self, event: events.SessionUpdate) -> dict:
        try:
            config = self.config.updated(event.session)
        except ValidationError as error:
            raise events.invalid(error, event.event_id, "session.") from None
        if config.format != self.config.format:
            self.resampler = audio.Resampler(audio.FORMATS[config.format][1])
        if config.turn_detection != self.config.turn_detection:
            self.detector = TurnDetector(config.turn_detection) if config.turn_detection else None
            if self.detector and self.speaking:
                self.detector.turn = Turn(self.speaking.start)
        self.config = config
        kind = (
            "transcription_session.updated" if event.type.startswith("transcription") else "session.updated"
        )
        return server_event(kind, session=config.ga(self.id))

    def _append(self, event: events.Append) -> None:
        try:
            data = base64.b64decode(event.audio, validate=True)
            frame = audio.samples(data, self.config.format)
        except (binascii.Error, ValueError) as error:
            raise EventError(f"Invalid audio: {error}.", "invalid_audio", "audio", event.event_id) from None
        if self.detector is None and self.buffer.end - self.buffer.start > MAX_BUFFER_SECONDS * SAMPLE_RATE:
            raise EventError(
                f"The input audio buffer holds {MAX_BUFFER_SECONDS} s: commit or clear it.",
                "input_audio_buffer_full",
                "audio",
                event.event_id,
            )
        self.buffer.append(self.resampler.feed(frame))

    def _commit(self, event_id: str | None) -> list[dict]:
        start = self.speaking.start if self.speaking else self.buffer.start
        if self.buffer.end - start < MIN_COMMIT_SAMPLES:
            seconds = (self.buffer.end - start) / SAMPLE_RATE
            raise EventError(
                f"Expected at least 100ms of audio, but the buffer holds {seconds * 1000:.0f}ms.",
                "input_audio_buffer_commit_empty",
                None,
                event_id,
            )
        item = self.speaking or Item(events.new_id("item"), self.last_item, start)
        return self._end_turn(item, self.buffer.end, server_vad=self.speaking is not None)

    def _clear(self) -> list[dict]:
        if self.speaking:
            self.decoder.cancel(self.speaking.partial, "cleared")
            self.decoder.line.leave(self.speaking.id)
            self.speaking = None
        if self.detector:
            self.detector.end_turn()
        self.buffer.drop_until(self.buffer.end)
        return [server_event("input_audio_buffer.cleared")]

    # -- time ----------------------------------------------------------------------------------------------
    def tick(self) -> list[dict]:
        out = self._detect() if self.detector else []
        item = self.speaking
        if item and item.wants_partial(self.buffer.end) and self.decoder.may_queue(item):
            self._submit_partial(item)
        if item and item.partial is not None and item.partial.done.is_set():
            out += self._partial_done(item)
        while self.decoding and self.decoding[0].final.done.is_set():
            out += self._final_done(self.decoding.pop(0))
        return out

    def _detect(self) -> list[dict]:
        change = self.detector.scan(self.buffer)
        if change == "started":
            turn = self.detector.turn
            self.speaking = Item(events.new_id("item"), self.last_item, turn.start, partial_until=turn.start)
            started = {"audio_start_ms": ms(turn.start), "item_id": self.speaking.id}
            return [server_event("input_audio_buffer.speech_started", **started)]
        if change == "stopped":
            item, end = self.speaking, self.detector.turn.speech_end
            stopped = {"audio_end_ms": ms(end), "item_id": item.id}
            return [server_event("input_audio_buffer.speech_stopped", **stopped)] + self._end_turn(
                item, end, server_vad=True
            )
        return []

    def _end_turn(self, item: Item, end: int, server_vad: bool) -> list[dict]:
        """Commit the item's audio [start, end) and queue its final decode."""
        item.end, item.stopped_at = end, time.monotonic()
        self.decoder.cancel(item.partial, "superseded")  # the final decode covers it
        self.decoder.line.leave(item.id)
        item.partial = None
        clip = self.buffer.audio(item.start, end)
        self.buffer.drop_until(end)
        self.speaking, self.last_item = None, item.id
        if self.detector:
            self.detector.end_turn()
        committed = server_event(
            "input_audio_buffer.committed", item_id=item.id, previous_item_id=item.previous_id
        )
        if len(clip) < MIN_COMMIT_SAMPLES:  # a blip whose rescan held no speech: nothing for the model
            return [committed, completed_event(item, "")]
        try:
            item.final = self.decoder.submit(clip, self.config, FINAL, server_vad, self.context())
        except APIError as error:
            return [committed, failed(item, error)]
        self.decoding.append(item)
        return [committed]

    def _submit_partial(self, item: Item) -> None:
        item.partial_until, item.partial_sent = self.buffer.end, time.monotonic()
        self.decoder.line.leave(item.id)
        audio, context = self.buffer.audio(item.start), self.context()
        try:
            item.partial = self.decoder.submit(audio, self.config, item.level(), True, context)
        except APIError:  # a full queue: the next tick tries again; the final decode tells the client
            item.partial = None

    def context(self) -> str:
        """What a decode is prompted with after the session's prompt: the end of the session's text, the
        completed turns' and the words sent of turns whose final decode is still to come."""
        sent = [" ".join(item.agreement.final) for item in self.decoding]
        return context_tail(" ".join([self.said, *sent]), self.decoder.settings.realtime_context_chars)

    def _partial_done(self, item: Item) -> list[dict]:
        job, item.partial = item.partial, None
        if job.error:
            return []
        text = decoding.text(job)
        delta = item.agreement.update(text)
        log.debug(  # LOG_LEVEL=debug: the per-turn trace docs/performance.md's live audio section reads
            "live %s partial of %.2f s of turn, queued to decoded %.2f s (waited %.2f, model %.2f): "
            "%r -> delta %r",
            item.id,
            (item.partial_until - item.start) / SAMPLE_RATE,
            time.monotonic() - item.partial_sent,
            job.queue_wait,
            job.inference_seconds,
            text,
            delta,
        )
        return [delta_event(item, delta)] if delta else []

    def _final_done(self, item: Item) -> list[dict]:
        job = item.final
        if job.error:
            return [failed(item, job.error)]
        transcript = decoding.text(job)
        rest = item.agreement.finish(transcript)
        keep = 2 * self.decoder.settings.realtime_context_chars
        self.said = context_tail(f"{self.said} {transcript}", keep)
        prompt = job.options.prompt or ""
        log.debug(
            "live %s final of %.2f s (waited %.2f, model %.2f), prompt %r: %r",
            *(item.id, item.seconds(), job.queue_wait, job.inference_seconds, prompt[-40:], transcript),
        )
        out = [delta_event(item, rest)] if rest else []
        logprobs = decoding.logprobs(job) if self.config.logprobs else None
        metrics.REALTIME_FINALISATION.observe(time.monotonic() - item.stopped_at)
        return [*out, completed_event(item, transcript, logprobs)]

    def close(self) -> None:
        """The client is gone: drop every decode still queued."""
        for item in [*self.decoding, *([self.speaking] if self.speaking else [])]:
            self.decoder.cancel(item.partial)
            self.decoder.cancel(item.final)
            self.decoder.line.leave(item.id)  # nobody waits behind a session that is gone


def completed_event(item: Item, transcript: str, logprobs: list | None = None) -> dict:
    completed = {"item_id": item.id, "content_index": 0, "transcript": transcript}
    completed["usage"] = {"type": "duration", "seconds": round(item.seconds(), 3)}
    if logprobs is not None:
        completed["logprobs"] = logprobs
    return server_event("conversation.item.input_audio_transcription.completed", **completed)


def delta_event(item: Item, delta: str) -> dict:
    kind = "conversation.item.input_audio_transcription.delta"
    return server_event(kind, item_id=item.id, content_index=0, delta=delta)


def failed(item: Item, error: APIError) -> dict:
    body = {"type": error.type, "code": error.code, "message": error.message, "param": error.param}
    kind = "conversation.item.input_audio_transcription.failed"
    return server_event(kind, item_id=item.id, content_index=0, error=body)
