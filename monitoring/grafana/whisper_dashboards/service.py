"""The Whisper service dashboard: golden signals, state, latency by stage, throughput and batching, queue and
backpressure, and GPU memory as the service sees it. Selectors follow the $instance and $model variables."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.models import common, units

from .kit import (
    RATE,
    build_dashboard,
    instant_table_target,
    mean,
    quantiles,
    query_variable,
    rate_sum,
    stat_panel,
    table_panel,
    target,
    thresholds,
    timeseries_panel,
)

SVC = 'job="whisper", instance=~"$instance"'
SVC_MODEL = f'{SVC}, model=~"$model"'
# Golden signals leave the probes out: /readyz answers 503 while the model loads, by design.
SVC_API = f'{SVC_MODEL}, endpoint!~"/healthz|/readyz"'
SVC_5XX = f'{SVC_API}, status=~"5.."'
REQUESTS = "whisper_requests_total"
STAGE = "whisper_stage_duration_seconds"


def golden_signals():
    api = rate_sum(REQUESTS, SVC_API)
    error_ratio = f"({rate_sum(REQUESTS, SVC_5XX)} or 0 * {api}) / {api}"  # 0, not empty, without 5xx
    return [
        timeseries_panel(
            "Requests per second by status",
            units.RequestsPerSecond,
            target(rate_sum(REQUESTS, SVC_API, "status"), "{{status}}"),
        ),
        timeseries_panel(
            "Server error ratio (5xx)",
            units.PercentUnit,
            target(error_ratio, "5xx"),
            description="Alerted above 5 % (WhisperErrorRatioHigh).",
        )
        .min(0)
        .thresholds(thresholds((None, "green"), (0.05, "red")))
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE)
        ),
        timeseries_panel(
            "Request latency (end to end)",
            units.Seconds,
            *quantiles("whisper_request_duration_seconds", SVC_API),
        ),
        timeseries_panel(
            "Requests in flight",
            units.Short,
            target(f"sum(whisper_requests_in_flight{{{SVC}}})", "in flight"),
            target(f"sum(whisper_requests_in_intake{{{SVC}}})", "decoding audio (a small batch may wait)"),
        ),
    ]


def service_state():
    build_info = (
        f"max by (instance, version, model, engine, device, precision) (whisper_build_info{{{SVC_MODEL}}})"
    )
    return [
        stat_panel(
            "Workers with the model ready",
            units.Short,
            target(f"sum(whisper_model_ready{{{SVC}}})"),
            description="0 means no worker can serve: /readyz answers 503.",
        ).thresholds(thresholds((None, "red"), (1, "green"))),
        stat_panel("Model load time", units.Seconds, target(f"max(whisper_model_load_seconds{{{SVC}}})")),
        table_panel("Build", instant_table_target(build_info)),
        timeseries_panel(
            "Requests per second by endpoint",
            units.RequestsPerSecond,
            target(rate_sum(REQUESTS, SVC_MODEL, "endpoint"), "{{endpoint}}"),
        ),
    ]


def latency_by_stage():
    buckets = f"rate({STAGE}_bucket{{{SVC_MODEL}}}[{RATE}])"
    p95_by_stage = f"histogram_quantile(0.95, sum by (stage, le) ({buckets}))"
    return [
        timeseries_panel("p95 by stage", units.Seconds, target(p95_by_stage, "{{stage}}")),
        timeseries_panel(
            "Mean time per request by stage",
            units.Seconds,
            target(mean(STAGE, SVC_MODEL, "stage"), "{{stage}}"),
            stacked=True,
        ),
        timeseries_panel(
            "Inference latency (GPU)", units.Seconds, *quantiles(STAGE, f'{SVC_MODEL}, stage="inference"')
        ),
        timeseries_panel("Queue wait", units.Seconds, *quantiles(STAGE, f'{SVC_MODEL}, stage="queue_wait"')),
    ]


AUDIO_RATE = f"rate(whisper_audio_seconds_total{{{SVC_MODEL}}}"
# The busiest clock hour of the day or the last 60 minutes (as job:whisper_audio_seconds:best1h_1d)
BEST_HOUR = (
    f"(max_over_time(sum({AUDIO_RATE}[1h]))[1d:1h]) > sum({AUDIO_RATE}[1h]))) or sum({AUDIO_RATE}[1h]))"
)
# The price record (prometheus/rules/whisper-cost.yml) over a throughput in audio s/s; absent at 0, not +Inf.
COST = "job:vm_price_dollars_per_hour:max / on () group_left () ({} > 0)"


def throughput():
    return [
        timeseries_panel(
            "Real-time factor (inference s per audio s)",
            units.Short,
            *quantiles("whisper_real_time_factor", SVC_MODEL),
            description="Lower is faster. A GPU stays far below 0.1; near 1 means CPU speed.",
        ),
        timeseries_panel(
            "Audio seconds transcribed per second",
            units.Short,
            target(rate_sum("whisper_audio_seconds_total", SVC_MODEL), "audio s/s"),
        ),
        timeseries_panel(
            "Cost per audio hour",
            units.Dollars,
            target(COST.format(f"sum({AUDIO_RATE}[5m]))"), "now (5 min)"),
            target(COST.format(BEST_HOUR), "best hour of the last day"),
            description=(
                "The VM's price per running hour (the stack's list price, infra/pricing.py, or pricePerHour) "
                "over the audio hours the selected instances and models transcribe per hour. Empty while "
                "nothing is transcribed. make cost prints the same for the whole service."
            ),
        ),
        timeseries_panel(
            "Audio duration per request",
            units.Seconds,
            *quantiles("whisper_audio_duration_seconds", SVC_MODEL, qs=(0.5, 0.95)),
        ),
    ]


def batching():
    return [
        timeseries_panel(
            "Batch size (inputs per model call)",
            units.Short,
            *quantiles("whisper_batch_size", SVC_MODEL, qs=(0.5, 0.95)),
            target(mean("whisper_batch_size", SVC_MODEL), "mean"),
        ),
        timeseries_panel(
            "Requests sharing a batch",
            units.Short,
            *quantiles("whisper_batch_requests", SVC_MODEL, qs=(0.5, 0.95)),
            target(mean("whisper_batch_requests", SVC_MODEL), "mean"),
        ),
        timeseries_panel(
            "Batch duration p95 by kind",
            units.Seconds,
            *quantiles("whisper_batch_duration_seconds", SVC_MODEL, by="kind", qs=(0.95,)),
        ),
    ]


def queue_and_backpressure():
    return [
        timeseries_panel(
            "Queue depth (windows waiting)",
            units.Short,
            target(f"sum(whisper_queue_depth{{{SVC}}})", "windows"),
        ),
        timeseries_panel(
            "Queued audio",
            units.Seconds,
            target(f"sum(whisper_queue_audio_seconds{{{SVC}}})", "audio seconds"),
        ),
        timeseries_panel(
            "Rejected requests (429 and others) by reason",
            units.RequestsPerSecond,
            target(rate_sum("whisper_rejected_requests_total", SVC, "reason"), "{{reason}}"),
        ),
        timeseries_panel(
            "Cancellations",
            units.OpsPerSecond,
            target(rate_sum("whisper_cancelled_requests_total", SVC, "reason"), "requests: {{reason}}"),
            target(rate_sum("whisper_cancelled_windows_total", SVC), "windows"),
        ),
        timeseries_panel(
            "Errors by type",
            units.OpsPerSecond,
            target(rate_sum("whisper_errors_total", SVC, "type"), "{{type}}"),
        ),
    ]


def speech_and_clients():
    return [
        timeseries_panel(
            "Share of audio that VAD kept as speech",
            units.Short,
            target(mean("whisper_speech_ratio", SVC), "mean"),
            description="Silence and noise are never decoded; a low share means mostly silent uploads.",
        ),
        timeseries_panel(
            "Rests of windows decoded again after an early stop",
            units.OpsPerSecond,
            target(rate_sum("whisper_redecoded_rests_total", SVC), "rests"),
            target(rate_sum("whisper_rest_inputs_total", SVC), "model inputs holding them"),
            description="Whisper often stops a few seconds before the end of a full window; the rests of "
            "a request's windows are packed together, several to one model input.",
        ),
        timeseries_panel(
            "Uploads being read",
            units.Short,
            target(f"sum(whisper_uploads_in_progress{{{SVC}}})", "uploads (of UPLOAD_SLOTS)"),
        ),
        timeseries_panel(
            "Requests by API key id",
            units.RequestsPerSecond,
            target(rate_sum("whisper_key_accepted_requests_total", SVC, "key_id"), "{{key_id}} accepted"),
            target(rate_sum("whisper_key_rejected_requests_total", SVC, "key_id"), "{{key_id}} rejected"),
            target(f"sum by (key_id) (whisper_key_requests_in_flight{{{SVC}}})", "{{key_id}} in flight"),
            description="Key ids are hash prefixes, never keys (KEY_MAX_SHARE shares the queue out).",
        ),
    ]


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


def gpu_memory():
    by_device = "sum by (instance, device)"
    return [
        timeseries_panel(
            "GPU memory by device",
            units.BytesIEC,
            target(f"{by_device} (whisper_gpu_memory_allocated_bytes{{{SVC}}})", "{{device}} allocated"),
            target(f"{by_device} (whisper_gpu_memory_reserved_bytes{{{SVC}}})", "{{device}} reserved"),
            description="Allocated: tensors in use. Reserved: held by PyTorch's caching allocator.",
        )
    ]


def dashboard():
    return build_dashboard(
        uid="whisper-service",
        title="Whisper service",
        description="Golden signals, latency by stage, real-time factor, batching and queue of the service.",
        variables=[
            query_variable("instance", "Instance", 'whisper_build_info{job="whisper"}'),
            query_variable("model", "Model", 'whisper_build_info{job="whisper", instance=~"$instance"}'),
        ],
        rows=[
            ("Golden signals", golden_signals()),
            ("Service state", service_state()),
            ("Latency by stage", latency_by_stage()),
            ("Throughput and batching", throughput() + batching()),
            ("Queue and backpressure", queue_and_backpressure()),
            ("Speech, uploads and API keys", speech_and_clients()),
            ("Live audio (/v1/realtime)", live_audio()),
            ("GPU memory (as the service sees it)", gpu_memory()),
        ],
    )
