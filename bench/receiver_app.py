"""Minimal plain-WSGI webhook receiver used by the benchmarks (served by gunicorn).

Plain WSGI rather than Flask so the receiver costs as little CPU as possible on
a 2-core machine where it competes with the sender being measured.

Environment variables (read once at import, i.e. per gunicorn worker):
  BENCH_DELAY_MS          sleep this many ms before answering (default 0)
  BENCH_HANG_PATH_PREFIX  requests whose path starts with it sleep BENCH_HANG_SECONDS
  BENCH_HANG_SECONDS      default 30, i.e. "hang until the client times out"
  BENCH_RECORD_DIR        if set, append "<time.time()> <X-Apsdai-Delivery or ->\\n"
                          per request to <dir>/arrivals-<pid>.log (line-buffered)

Every request: body fully read, answered 200 {"ok":true} with Content-Length.
GET /health answers 200 too (it is never recorded, delayed or hung).
"""
import os
import threading
import time

DELAY_S = float(os.environ.get("BENCH_DELAY_MS", "0")) / 1000.0
HANG_PREFIX = os.environ.get("BENCH_HANG_PATH_PREFIX") or None
HANG_S = float(os.environ.get("BENCH_HANG_SECONDS", "30"))
RECORD_DIR = os.environ.get("BENCH_RECORD_DIR") or None

OK_BODY = b'{"ok":true}'
OK_HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(OK_BODY)))]

_record_lock = threading.Lock()  # gthread workers write from several threads
_record_file = None
_record_pid = None


def _record(delivery_id):
    """Append one arrival line; the file is (re)opened per pid because gunicorn forks."""
    global _record_file, _record_pid
    with _record_lock:
        if _record_pid != os.getpid():
            path = os.path.join(RECORD_DIR, f"arrivals-{os.getpid()}.log")
            _record_file = open(path, "a", buffering=1)  # line-buffered
            _record_pid = os.getpid()
        _record_file.write(f"{time.time():.6f} {delivery_id}\n")


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/health":
        start_response("200 OK", OK_HEADERS)
        return [OK_BODY]
    if RECORD_DIR:
        # Record on arrival (before any delay) so emit->arrival latency excludes it.
        _record(environ.get("HTTP_X_APSDAI_DELIVERY", "-"))
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    if HANG_PREFIX and path.startswith(HANG_PREFIX):
        time.sleep(HANG_S)
    elif DELAY_S:
        time.sleep(DELAY_S)
    start_response("200 OK", OK_HEADERS)
    return [OK_BODY]
