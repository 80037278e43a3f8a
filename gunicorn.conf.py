"""gunicorn settings: `gunicorn -c gunicorn.conf.py 'service:create_app()'` (make run and the container).

One gthread worker per GPU, each owning one model; request threads wait on the worker's scheduler. The
master validates settings before anything starts (a bad one: one line naming it, exit 2), wipes the
Prometheus multiprocess directory, serves /metrics on METRICS_PORT, and gives each worker a GPU index.
"""

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile

from service.settings import SettingsError, from_env

try:
    settings = from_env()
except SettingsError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)

# prometheus_client picks its storage when first imported: set this before any worker imports it
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), f"whisper-metrics-{settings.port}")
)


def _gpu_count() -> int:
    """GPUs visible to this process, without initialising CUDA in the master (workers are forked)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


gpus = _gpu_count() if settings.whisper_device != "cpu" else 0

wsgi_app = "service:create_app()"
bind = [f"{settings.api_host}:{settings.port}"]  # loopback unless API_HOST opens it (the image does)
worker_class = "service.server.worker.GuardedThreadWorker"  # gthread, guarded: see service/server/worker.py
workers = settings.workers or max(1, gpus)
threads = settings.threads + settings.upload_slots  # bodies being read take at most UPLOAD_SLOTS of them
timeout = 120  # a worker whose main loop stops answering this long is restarted (inference runs elsewhere)
graceful_timeout = int(settings.graceful_timeout)  # in-flight and queued requests finish within this
keepalive = 5
limit_request_line = 8190
forwarded_allow_ips = "127.0.0.1,::1"
control_socket_disable = True  # gunicorn 27's control socket ($HOME/.gunicorn) is shared by every server
accesslog = None  # the app logs one structured line per request
errorlog = "-"
loglevel = settings.log_level


def on_starting(server):
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def when_ready(server):
    if not settings.metrics_port:
        return
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    server.log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)


def pre_fork(server, worker):
    """Give the new worker the lowest GPU index no live worker holds."""
    taken = {getattr(w, "gpu_index", None) for w in server.WORKERS.values()}
    free = [i for i in range(max(1, gpus)) if i not in taken]
    worker.gpu_index = free[0] if free else 0


M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt parameters (malloc.h)


def bound_malloc() -> None:
    """glibc's malloc in a worker: at most 2 arenas, and a fixed 32 MiB mmap threshold.

    By default every request thread that allocates may get its own arena (up to 8 per core), and the mmap
    threshold starts at 128 KiB and rises whenever a larger mmapped buffer is freed, moving later buffers of
    that size onto the heap. Either way the worker's RSS climbs in steps long after warm-up while holding
    nothing more (docs/performance.md, "Measurements behind the code"). MALLOC_ARENA_MAX or
    MALLOC_MMAP_THRESHOLD_ in the environment take precedence."""
    if sys.platform != "linux" or "MALLOC_ARENA_MAX" in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl)
        return
    libc.mallopt(M_ARENA_MAX, 2)
    libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)


def post_fork(server, worker):
    bound_malloc()
    os.environ["WHISPER_DEVICE_INDEX"] = str(worker.gpu_index)
    # on CPU, workers share the cores instead of each starting one torch thread per core
    os.environ.setdefault("WHISPER_CPU_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
