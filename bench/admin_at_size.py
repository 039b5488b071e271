"""Benchmark 6: the deliveries pages with a million attempts in the database.

    .venv/bin/python -m bench.admin_at_size [--attempts 1000000]

Seeds SQLite (in a temporary folder, through the real migrations) with deliveries of two attempts
each, spread over the last 30 days and several channels and results, then renders each page 40 times
through the app in-process (no network) and reports p50 and p95.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

HEADERS = {"Content-Type": "application/json", "User-Agent": "apsdai-hook", "X-Apsdai-Token": "••••••••g%3D",
           "X-Apsdai-Timestamp": "1795800000000", "X-Apsdai-Event": "order_pay_hook"}
STATUSES = ["delivered"] * 90 + ["dead"] * 4 + ["failed"] * 2 + ["retrying"] * 3 + ["cancelled"]


def seed(attempts: int) -> float:
    """Insert `attempts` attempts (two per delivery) with Core executemany; returns the seconds taken."""
    from sqlalchemy import insert

    from extensions import db
    from models import Attempt, Channel, Delivery, Event

    started = time.perf_counter()
    channels = []
    for i in range(4):
        channel = Channel(kind="webhook", config={"url": f"https://erp{i}.example.com/hooks", "auth_mode": "signature"},
                          secret="whsec_x", hooks=["order_pay_hook"], enabled=True)
        db.session.add(channel)
        channels.append(channel)
    db.session.commit()
    # The 30 days up to now, so that the dashboard's last 14 days hold about half of them.
    start = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=30)
    deliveries = attempts // 2
    step = timedelta(days=30) / deliveries
    rng = random.Random(7)
    chunk = 20000
    for base in range(0, deliveries, chunk):
        events, rows, tries = [], [], []
        for i in range(base, min(deliveries, base + chunk)):
            created = start + step * i
            event_id, delivery_id = f"evt_{i:024x}", f"dlv_{i:024x}"
            channel = channels[i % len(channels)]
            status = rng.choice(STATUSES)
            data = {"order": {"order_no": f"AP{i:016d}", "amount": "128.00", "currency": "CNY",
                              "buyer_email": f"buyer{i}@example.com"}}
            events.append(dict(id=event_id, hook="order_pay_hook", data=data, source="api", is_test=False,
                               created_at=created))
            rows.append(dict(id=delivery_id, event_id=event_id, hook="order_pay_hook", channel_id=channel.id,
                             channel_kind="webhook",
                             target=channel.target, status=status, attempt_count=2, max_attempts=8,
                             next_attempt_at=created + timedelta(minutes=5) if status == "retrying" else None,
                             created_at=created, updated_at=created, delivered_at=created if status == "delivered" else None,
                             last_status_code=200 if status == "delivered" else 500))
            body = json.dumps({"id": event_id, "event": "order_pay_hook", "data": data}, separators=(",", ":"))
            for number in (1, 2):
                ok = number == 2 and status == "delivered"
                tries.append(dict(delivery_id=delivery_id, channel_id=channel.id, number=number,
                                  started_at=created + timedelta(seconds=10 * (number - 1)), duration_ms=12,
                                  request_method="POST", request_url=channel.target,
                                  request_headers=dict(HEADERS, **{"X-Apsdai-Delivery": delivery_id}),
                                  request_body=body, response_status=200 if ok else 500,
                                  response_headers={"Content-Type": "application/json"},
                                  response_body='{"ok":true}' if ok else "Internal Server Error",
                                  outcome="success" if ok else "transient",
                                  error=None if ok else "The receiver answered HTTP 500."))
        db.session.execute(insert(Event), events)
        db.session.execute(insert(Delivery), rows)
        db.session.execute(insert(Attempt), tries)
        db.session.commit()
    return time.perf_counter() - started


def timed(client, url: str, times: int = 40) -> tuple[float, float]:
    samples = []
    for _ in range(times):
        t = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.95) - 1]


def run(attempts: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {"INSTANCE_PATH": tmp, "SECRET_KEY": "bench", "DATABASE_URL": f"sqlite:///{tmp}/size.db",
               "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"), "LOG_LEVEL": "WARNING"}
        os.environ.update(env)
        subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"], cwd=PROJECT_DIR,
                       env=dict(os.environ), check=True, capture_output=True)
        from app import create_app
        from extensions import db
        from models import User

        app = create_app({"WTF_CSRF_ENABLED": False})
        with app.app_context():
            seconds = seed(attempts)
            user = User(username="bench")
            user.set_password("bench-password")
            db.session.add(user)
            db.session.commit()
            sample_id = db.session.scalar(db.select(db.text("id")).select_from(db.text("deliveries"))
                                          .where(db.text("status = 'dead'")).limit(1).offset(500))
        print(f"  seeded {attempts:,} attempts in {seconds:.0f} s", flush=True)
        client = app.test_client()
        client.post("/login", data={"username": "bench", "password": "bench-password"})
        pages = [
            ("deliveries, newest first", "/deliveries/"),
            ("deliveries, result = dead", "/deliveries/?status=dead"),
            ("deliveries, one channel", "/deliveries/?channel=3"),
            ("deliveries, 20 pages deep (keyset)", None),
            ("one delivery with its attempts", f"/deliveries/{sample_id}"),
            ("notifications page (last result per channel)", "/settings/notifications/"),
            ("dashboard (14 days: about 230,000 deliveries)", "/dashboard"),
        ]
        # A page deep in the history: follow the "Older" link twenty times.
        url = "/deliveries/"
        for _ in range(20):
            html = client.get(url).text
            url = "/deliveries/?before=" + html.split("before=")[1].split('"')[0]
        rows = []
        for label, page in pages:
            p50, p95 = timed(client, page or url)
            rows.append({"page": label, "p50 ms": p50, "p95 ms": p95, "attempts in the database": attempts})
            print(f"  {rows[-1]}", flush=True)
        return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=1_000_000)
    from bench.common import format_table

    print(format_table(run(parser.parse_args().attempts), ["page", "p50 ms", "p95 ms", "attempts in the database"]))
