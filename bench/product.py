"""The product under benchmark: its own database, queue, workers and (optionally) admin/API server.

    with Product(redis_url, database_url, tmp) as product:
        channel = product.add_webhook(receiver.url + "/hook", hooks=["order_pay_hook"])
        product.start_workers(1)
        product.backlog(n, "order_pay_hook")      # stored and queued, but no drain enqueued yet
        seconds = product.release_and_wait(n)     # wake the workers; time until all delivered

The workers are real `flask --app app worker` processes; the backlog goes through the product's
own `record_event` path; only the wake-up is held back, so the timing starts with every worker
idle and the whole backlog waiting.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))


class Product:
    def __init__(self, redis_url: str, database_url: str, tmp: Path, **env_overrides: str):
        self.tmp = Path(tmp)
        self.env = {
            **os.environ,
            "INSTANCE_PATH": str(self.tmp / "instance"), "SECRET_KEY": "bench", "DATABASE_URL": database_url,
            "REDIS_URL": redis_url, "RQ_QUEUE": f"bench-{uuid.uuid4().hex[:8]}", "LOG_LEVEL": "WARNING",
            # The benchmark's receivers listen on loopback (notify/guard.py).
            "ALLOW_PRIVATE_TARGETS": "1",
            **env_overrides,
        }
        self.workers: list[subprocess.Popen] = []
        self.servers: list[subprocess.Popen] = []
        self.app = None

    def __enter__(self) -> "Product":
        os.environ.update({k: v for k, v in self.env.items() if k not in os.environ or os.environ[k] != v})
        from app import create_app
        from extensions import db

        self.app = create_app()
        with self.app.app_context():
            db.drop_all()
            db.create_all()
        return self

    def __exit__(self, *exc) -> None:
        for process in self.workers + self.servers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.workers + self.servers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        from extensions import db

        with self.app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()

    # -- set-up ---------------------------------------------------------------------------------
    def add_webhook(self, url: str, hooks: list[str], secret: str = "whsec_bench_secret_0123456789") -> int:
        from extensions import db
        from models import Channel
        from notify import channels

        with self.app.app_context():
            channel = channels.apply(Channel(kind="webhook"), config={"url": url, "auth_mode": "signature"},
                                     secret=secret, hooks_=hooks, enabled=True)
            db.session.add(channel)
            db.session.commit()
            return channel.id

    def add_channel(self, kind: str, config: dict, hooks: list[str], secret: str | None = None) -> int:
        """Any kind of channel, validated as the admin's form validates it."""
        from extensions import db
        from models import Channel
        from notify import channels

        with self.app.app_context():
            channel = channels.apply(Channel(kind=kind), config=config, secret=secret, hooks_=hooks, enabled=True)
            db.session.add(channel)
            db.session.commit()
            return channel.id

    def start_scheduler(self) -> None:
        """`flask scheduler`: the periodic jobs (the sweeper, …), as `make run` starts them."""
        log = open(self.tmp / "scheduler.log", "w")
        self.servers.append(subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "scheduler"],
                                             cwd=PROJECT_DIR, env=self.env, stdout=log, stderr=log))

    def start_workers(self, count: int) -> list[int]:
        """Start `count` worker processes and wait until RQ lists them all. Returns their pids."""
        from rq import Worker

        from notify.queue import get_queue

        for _ in range(count):
            log = open(self.tmp / f"worker-{len(self.workers)}.log", "w")
            self.workers.append(subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker"],
                                                 cwd=PROJECT_DIR, env=self.env, stdout=log, stderr=log))
        with self.app.app_context():
            queue = get_queue()
            deadline = time.monotonic() + 30
            while Worker.count(queue=queue) < len(self.workers):
                if time.monotonic() > deadline:
                    raise RuntimeError("workers did not start")
                time.sleep(0.1)
        return [w.pid for w in self.workers]

    def start_api(self, workers: int = 2, threads: int = 1) -> str:
        """The admin and API under gunicorn (as `make run` serves it); returns its base URL."""
        from bench.common import free_port

        port = free_port()
        self.servers.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
             "--threads", str(threads),
             "--log-level", "warning", "app:create_app()"], cwd=PROJECT_DIR, env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        import requests

        for _ in range(200):
            try:
                requests.get(f"http://127.0.0.1:{port}/login", timeout=5)
                return f"http://127.0.0.1:{port}"
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("the API did not start")

    def api_token(self) -> str:
        from extensions import db
        from models import ApiToken

        with self.app.app_context():
            token, plain = ApiToken.issue("bench")
            db.session.add(token)
            db.session.commit()
            return plain

    # -- load -----------------------------------------------------------------------------------
    def emit(self, hook: str, data: dict) -> str:
        """One event through the product's single dispatch path, woken as in production."""
        from notify import dispatch

        with self.app.app_context():
            return dispatch.emit(hook, data, source="bench").id

    def backlog(self, n: int, hook: str, batch: int = 500) -> None:
        """Store and queue `n` events of `hook` without waking a drain (see the module docstring)."""
        from extensions import db
        from notify import dispatch, queue

        real_enqueue = queue.enqueue_drain
        queue.enqueue_drain = lambda queue_name=None: None
        try:
            with self.app.app_context():
                for start in range(0, n, batch):
                    for i in range(start, min(n, start + batch)):
                        dispatch.record_event(hook, {"order": _order(i)}, source="bench")
                    db.session.commit()
        finally:
            queue.enqueue_drain = real_enqueue

    def release_and_wait(self, n: int, timeout: float = 300) -> float:
        """Wake the workers; return the seconds until `n` deliveries are final (and all recorded)."""
        from notify import queue

        with self.app.app_context():
            started = time.perf_counter()
            queue.drain_started()  # the flag the held-back wake-ups left raised
            queue.wake()
            self.wait_final(n, timeout)
            return time.perf_counter() - started

    def wait_final(self, n: int, timeout: float = 300) -> None:
        from sqlalchemy import func

        from extensions import db
        from models import Delivery, DeliveryStatus

        with self.app.app_context():
            deadline = time.monotonic() + timeout
            while True:
                done = db.session.scalar(db.select(func.count(Delivery.id))
                                         .where(Delivery.status.in_(DeliveryStatus.FINAL)))
                db.session.rollback()
                if done >= n:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {done} of {n} deliveries finished in {timeout} s")
                time.sleep(0.02)

    def counts(self) -> dict:
        """Deliveries by status and the number of attempt rows: what the benchmark must leave behind."""
        from sqlalchemy import func

        from extensions import db
        from models import Attempt, Delivery

        with self.app.app_context():
            by_status = dict(db.session.execute(db.select(Delivery.status, func.count()).group_by(Delivery.status)).all())
            attempts = db.session.scalar(db.select(func.count(Attempt.id)))
            return {"deliveries": by_status, "attempts": attempts}

    def delivery_ids_by_event(self) -> dict[str, list[str]]:
        from extensions import db
        from models import Delivery

        with self.app.app_context():
            out: dict[str, list[str]] = {}
            for event_id, delivery_id in db.session.execute(db.select(Delivery.event_id, Delivery.id)):
                out.setdefault(event_id, []).append(delivery_id)
            return out

    def reset(self) -> None:
        """Empty the tables between repetitions (channels stay)."""
        from extensions import db
        from models import Attempt, Delivery, Event

        with self.app.app_context():
            for model in (Attempt, Delivery, Event):
                db.session.execute(db.delete(model))
            db.session.commit()


def rss_peak_mb(pid: int) -> float:
    """The peak resident memory of a process (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pids) -> dict[int, float]:
    """User + system CPU seconds used so far by each of `pids` that is still running."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / tick
    return used


def children(pid: int) -> list[int]:
    """The direct children of a process (a gunicorn master's workers)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def postgres_pids(database: str) -> list[int]:
    """The PostgreSQL backends serving `database` on this machine: the bench's own connections.

    A backend's process title names its database (`postgres: 15/main: user dbname 127.0.0.1(5432)
    idle`). Every `postgres` process would also count the server's shared background processes
    and, on a shared server, other databases' backends: another developer's tests on the same
    machine then show up as this benchmark's database CPU."""
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and _comm(entry) == "postgres" and _backend_database(entry) == database]


def _comm(proc_dir: Path) -> str:
    try:
        return (proc_dir / "comm").read_text().strip()
    except OSError:
        return ""


def _backend_database(proc_dir: Path) -> str | None:
    """The database a PostgreSQL backend serves, read from its process title; None for the
    server's other processes (postmaster, checkpointer, walwriter, …)."""
    try:
        words = (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
    except OSError:
        return None
    if not words or words[0] != "postgres:":
        return None
    words = words[1:]
    if words and words[0].endswith(":"):  # the cluster's name (cluster_name), when it is set
        words = words[1:]
    # user, database, client address, state; a background process has one or two words, no address
    if len(words) >= 3 and ("(" in words[2] or words[2] == "[local]"):
        return words[1]
    return None


def machine_busy_seconds() -> float:
    """CPU seconds every core of this machine has spent busy so far (user, nice, system, irq,
    softirq, and steal: time the hypervisor gave to another machine), from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[0:3]) + sum(fields[5:8])) / os.sysconf("SC_CLK_TCK")


def _order(i: int) -> dict:
    return {"order_no": f"AP2026112718{i:08d}", "status": "paid", "quantity": 1 + i % 3,
            "product": {"path": "vpnmonthly", "name": "VPN Monthly Plan / VPN 月度套餐"},
            "amount": f"{128 + i % 50}.00", "currency": "CNY", "buyer_email": f"buyer{i}@example.com",
            "created_at": "2026-11-27T10:30:00.000Z", "paid_at": "2026-11-27T10:31:12.000Z",
            "note": "Deliver the key by email; the buyer asked for an invoice with the company's tax number."}


def worker_runs(redis_url: str, receiver_url: str, database_url: str | None, workers: int, n: int,
                reps: int) -> tuple[list[float], list[float]]:
    """Deliveries a second and worker CPU ms a delivery for `reps` runs of a backlog of `n` events,
    `workers` worker processes, to one WebHook at `receiver_url` (SQLite in a temporary folder
    unless `database_url`); checks that every attempt was recorded."""
    runs, cpu, counts = [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        with Product(redis_url, database_url or f"sqlite:///{tmp}/bench.db", Path(tmp)) as product:
            product.add_webhook(receiver_url + "/hook", ["order_pay_hook"])
            pids = product.start_workers(workers)
            for _ in range(reps):
                product.reset()
                product.backlog(n, "order_pay_hook")
                before = cpu_seconds(pids)
                runs.append(n / product.release_and_wait(n))
                after = cpu_seconds(pids)
                cpu.append(sum(after[p] - before[p] for p in pids) * 1000 / n)
                counts = product.counts()
    assert counts["attempts"] == n and counts["deliveries"] == {"delivered": n}, counts
    return runs, cpu
