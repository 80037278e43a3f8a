"""The service dashboard's rows for work that outlives one HTTP request: live sessions (/v1/realtime) and
background jobs (/v1/audio/jobs)."""

from __future__ import annotations

from grafana_foundation_sdk.models import units

from .kit import quantiles, rate_sum, target, timeseries_panel

SVC = 'job="whisper", instance=~"$instance"'  # as service.py's


def live_audio():
    return [
        timeseries_panel(
            "Live sessions open",
            units.Short,
            target(
                f"sum(whisper_realtime_sessions{{{SVC}}})", "sessions (of REALTIME_MAX_SESSIONS per worker)"
            ),
            description="WebSocket sessions on /v1/realtime; each holds one request thread of its worker.",
        ),
        timeseries_panel(
            "Live finalisation: end of a turn to its completed transcript",
            units.Seconds,
            *quantiles("whisper_realtime_finalisation_seconds", SVC),
            description="speech_stopped (or the client's commit) to conversation.item.input_audio_"
            "transcription.completed, measured in the service.",
        ),
    ]


def background_jobs():
    return [
        timeseries_panel(
            "Background jobs by status",
            units.Short,
            target(f"max by (status) (whisper_jobs{{{SVC}}})", "{{status}}"),
            description="Jobs in the store (/v1/audio/jobs); every worker reads the same store, hence max.",
        ),
        timeseries_panel(
            "Oldest queued background job",
            units.Seconds,
            target(f"max(whisper_jobs_oldest_queued_seconds{{{SVC}}})", "age"),
            target(rate_sum("whisper_job_callbacks_total", SVC, "outcome"), "callbacks {{outcome}} /s"),
            description="Alert WhisperJobsBacklogOld past 30 min; callbacks by outcome per second.",
        ),
    ]
