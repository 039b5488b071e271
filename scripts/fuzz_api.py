"""The large fuzz run: N generated bodies against the events and ledger APIs of a real server.

    .venv/bin/python scripts/fuzz_api.py                      # 10,000 requests, a fresh SQLite
    .venv/bin/python scripts/fuzz_api.py -n 2000 --database postgresql://user@127.0.0.1/scratch

Starts gunicorn (2 workers, the production command) on a free loopback port with the given
database (default: a new SQLite file in a temporary folder; a PostgreSQL database must be a
scratch one: its tables are created if missing and filled with the run's products, orders and
events), sends half of the requests to `POST /api/v1/events` and half to the ledger, with the
strategies of tests/strategies.py (well-formed and malformed JSON, hostile strings, deep nesting,
raw bytes, bad query parameters), and prints how many answers were 5xx, and how many were not
JSON or not the API's error shape. Then it checks every stored event against its schema and
prepares it for every channel kind. Exit status 1 if anything was wrong. Needs Redis
(`REDIS_URL`, default 127.0.0.1:6379; the run's keys are deleted afterwards) and
requirements-dev.txt (Hypothesis).
"""
from __future__ import annotations

import argparse
import collections
import faulthandler
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
import requests
from hypothesis import HealthCheck, Phase, given, settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import strategies  # noqa: E402
from tests.conftest import free_port  # noqa: E402


def start_server(env: dict, port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                               "--log-level", "warning", "app:create_app()"], cwd=ROOT, env=env,
                              stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/api/v1/", timeout=5)
            return server
        except requests.RequestException:  # not listening yet, or its workers still starting
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("the server did not start")


def prepare_database(env: dict) -> str:
    """Create the tables if missing and an API token; returns the token."""
    os.environ.update(env)
    from app import create_app
    from extensions import db
    from models import ApiToken

    app = create_app()
    with app.app_context():
        db.create_all()
        token, plain = ApiToken.issue("fuzz")
        db.session.add(token)
        db.session.commit()
        db.engine.dispose()
    return plain


def check_stored_events(env: dict) -> tuple[int, int, int]:
    """(events stored, events that fail their schema, events some channel kind cannot prepare)."""
    from app import create_app
    from extensions import db
    from models import Channel, Delivery, Event
    from notify import dispatch, signing
    from notify.channels import DeliverySettings, transport_for

    channels = [Channel(id=0, kind="webhook", enabled=True, hooks=[], secret="whsec_fuzz",
                        config={"url": "https://example.com/h", "auth_mode": "signature"}),
                Channel(id=0, kind="dingtalk", enabled=True, hooks=[],
                        config={"url": "https://oapi.dingtalk.com/robot/send?access_token=t"}),
                Channel(id=0, kind="wecom", enabled=True, hooks=[],
                        config={"url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"}),
                Channel(id=0, kind="email", enabled=True, hooks=[], config={"recipients": ["owner@example.com"]})]
    app = create_app()
    stored = invalid = unrenderable = 0
    with app.app_context():
        for event in db.session.scalars(db.select(Event).execution_options(yield_per=500)):
            stored += 1
            try:
                dispatch.validate(event.hook, event.data)
            except dispatch.InvalidEvent as exc:
                invalid += 1
                print(f"  stored event {event.id} fails its schema: {exc.field}: {exc.message}")
            for channel in channels:
                try:
                    transport_for(channel.kind)(channel, DeliverySettings()).prepare(event, Delivery(id="dlv_fuzz"),
                                                                                    signing.now_ms())
                except Exception as exc:  # noqa: BLE001 (counting every way rendering can fail is the point)
                    unrenderable += 1
                    print(f"  event {event.id} cannot be prepared for {channel.kind}: {exc!r}")
        db.engine.dispose()
    return stored, invalid, unrenderable


def main() -> int:
    # A run that stops answering prints every thread's stack and ends rather than hang unseen, and
    # SIGTERM ends it through the `finally` that stops the server.
    faulthandler.dump_traceback_later(1800, exit=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="requests to send (default 10,000)")
    parser.add_argument("--database", help="SQLAlchemy URL of a scratch database (default: a new SQLite file)")
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="mn-fuzz-"))
    queue = f"mn-fuzz-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": args.database or f"sqlite:///{folder / 'fuzz.db'}",
           "REDIS_URL": args.redis, "RQ_QUEUE": queue, "INSTANCE_PATH": str(folder / "instance"),
           "SECRET_KEY": "fuzz-secret-key", "LOG_LEVEL": "ERROR", "ALLOW_PRIVATE_TARGETS": "1"}
    token = prepare_database(env)
    port = free_port()
    server = start_server(env, port)
    base = f"http://127.0.0.1:{port}/api/v1"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

    counts = {"events": collections.Counter(), "ledger": collections.Counter()}
    problems: list[str] = []

    def record(api: str, what: str, response: requests.Response) -> None:
        kind = f"{response.status_code // 100}xx"
        counts[api][kind] += 1
        # The app answers JSON on every API path; an HTML 400/414/431 is gunicorn's own refusal.
        if response.status_code in (400, 414, 431) and response.headers.get("Content-Type", "").startswith("text/html"):
            counts[api]["gunicorn"] += 1  # refused by the HTTP server before the app (a request line too long)
            return
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 500 or body is None or (response.status_code >= 400
                                                           and not strategies.is_error_shape(body)):
            counts[api]["bad"] += 1
            if len(problems) < 20:
                problems.append(f"{api} {what[:300]} -> {response.status_code} {response.text[:200]!r}")

    run = settings(max_examples=max(1, args.n // 2), deadline=None, database=None, phases=[Phase.generate],
                   suppress_health_check=list(HealthCheck))

    @run
    @given(body=strategies.event_bodies())
    def events(body: bytes):
        record("events", repr(body[:120]), session.post(f"{base}/events", data=body, timeout=30))

    @run
    @given(request=strategies.ledger_requests())
    def ledger(request):
        method, path, body, query = request
        url = f"{base}{path}" + (f"?{query}" if query else "")
        record("ledger", f"{method} {path}?{query} {body[:120] if body else b''!r}",
               session.request(method, url, data=body, timeout=30))

    started = time.monotonic()
    try:
        for product in strategies.SEED_PRODUCTS:
            session.post(f"{base}/products", json=product, timeout=30)
        for order in strategies.SEED_ORDERS:
            session.post(f"{base}/orders", json=order, timeout=30)
        events()
        ledger()
    finally:
        server.terminate()
        server.wait(15)
        connection = redis.Redis.from_url(args.redis)
        keys = list(connection.scan_iter(f"rq:*{queue}*")) + list(connection.scan_iter(f"merchant-notify:{queue}:*"))
        if keys:
            connection.delete(*keys)
    elapsed = time.monotonic() - started
    database = "SQLite" if env["DATABASE_URL"].startswith("sqlite") else env["DATABASE_URL"].split("@")[-1]
    print(f"database: {database}; {sum(sum(c[k] for k in ('2xx', '3xx', '4xx', '5xx')) for c in counts.values())} "
          f"requests in {elapsed:.0f} s")
    for api, counter in counts.items():
        print(f"  {api:6}: " + ", ".join(f"{counter[k]} × {k}" for k in ("2xx", "3xx", "4xx", "5xx"))
              + f" ({counter['gunicorn']} of the 4xx from gunicorn itself: request line too long); "
              f"not the API's JSON answer: {counter['bad']}")
    for problem in problems:
        print("  " + problem)
    stored, invalid, unrenderable = check_stored_events(env)
    print(f"  stored events: {stored}; failing their schema: {invalid}; not preparable for a channel kind: "
          f"{unrenderable}")
    fives = counts["events"]["5xx"] + counts["ledger"]["5xx"]
    print(f"5xx answers: {fives}")
    return 1 if fives or invalid or unrenderable or any(c["bad"] for c in counts.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
