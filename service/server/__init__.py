"""The HTTP server's own concerns, apart from the request's way through the service.

worker.py         gunicorn's gthread worker: request heads read on its event loop, graceful closes there
                  too, and on SIGTERM 503 for new work while accepted work finishes
upload_limits.py  request bodies read under a deadline, a minimum rate and a bounded number of slots
auth.py           API keys
raw_errors.py     the server's own refusals (gunicorn's 400/414/431/501, the worker's 408) as error JSON
headers.py        nosniff and no-store on API responses; redirects without a host
request_log.py    request ids, request metrics, one log line per request
probes.py         /healthz, /readyz
"""
