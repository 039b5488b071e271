"""The product as it runs: `flask worker` and `flask scheduler` as real processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from extensions import db
from models import Delivery, DeliveryStatus
from notify import jobs
from tests.conftest import lose_redis_work

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_process_secret_0123456789"
pytestmark = pytest.mark.processes


@pytest.fixture
def flask_process(app_env, tmp_path):
    processes = []

    def start(*args: str, **extra_env: str) -> subprocess.Popen:
        log = open(tmp_path / f"{args[0]}-{len(processes)}.log", "w")
        # A session of its own, so that the whole process group (a worker and RQ's scheduler process
        # it forks) can be killed at once, as a machine or container going down would.
        process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT,
                                   env={**os.environ, **app_env, **extra_env}, stdout=log, stderr=log,
                                   start_new_session=True)
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def statuses(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(db.select(Delivery.status)))


def test_worker_process_delivers_api_events_and_stops_on_sigterm(app, client, api_token, receiver_demo,
                                                                 make_webhook, flask_process):
    demo = receiver_demo(secret=SECRET)
    make_webhook(demo.url, secret=SECRET)
    worker = flask_process("worker")
    ids = []
    for n in range(5):
        response = client.post("/api/v1/events", json={"event": "order_create_hook",
                                                       "data": {"order": {"order_no": f"A{n}"}}},
                               headers={"Authorization": f"Bearer {api_token}"})
        assert response.status_code == 202
        ids.append(response.json["id"])
    wait_for(lambda: statuses(app) == [DeliveryStatus.DELIVERED] * 5)
    assert sorted(e["body"]["id"] for e in demo.events()) == sorted(ids)
    assert all(e["verified"] for e in demo.events())
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0


def test_scheduler_and_worker_recover_lost_jobs(app, receiver_demo, make_webhook, flask_process, runner):
    demo = receiver_demo(secret=SECRET)
    make_webhook(demo.url, secret=SECRET)
    result = runner.invoke(args=["emit", "order_pay_hook", "--data", '{"order": {"order_no": "A1"}}'])
    assert result.exit_code == 0
    lose_redis_work(app)  # as when Redis restarts without its data
    with app.app_context():
        for delivery in db.session.scalars(db.select(Delivery)):
            delivery.next_attempt_at -= jobs.SWEEP_GRACE * 2
        db.session.commit()
    flask_process("worker")
    flask_process("scheduler", SWEEP_INTERVAL="1")
    wait_for(lambda: statuses(app) == [DeliveryStatus.DELIVERED])
    assert len(demo.events()) == 1


def test_worker_burst_drains_and_exits(app, runner, make_webhook, app_env):
    make_webhook("http://127.0.0.1:9/hook")
    runner.invoke(args=["emit", "order_pay_hook", "--data", '{"order": {}}'])
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "worker", "--burst"], cwd=ROOT,
                            env={**os.environ, **app_env, "DELIVERY_RETRY_SCHEDULE": "60"}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert statuses(app) == [DeliveryStatus.RETRYING]  # attempted once, retry scheduled


def test_a_worker_killed_mid_delivery_loses_nothing(app, make_webhook, flask_process, local_receiver):
    """SIGKILL a worker while its request is at the receiver: once the claim's lease runs out, the
    sweeper hands the delivery to another worker, which sends it with the same X-Apsdai-Delivery."""
    from models import Attempt
    from notify import dispatch

    # Slow enough to kill the worker while the request is at the receiver.
    receiver = local_receiver(lambda path, headers: (200, {}, b"", 1.5))
    seen = lambda: [headers["X-Apsdai-Delivery"] for _, headers in receiver.requests]  # noqa: E731
    fast = {"DELIVERY_LEASE_SECONDS": "8", "DELIVERY_CONNECT_TIMEOUT": "1", "DELIVERY_READ_TIMEOUT": "2",
            "SWEEP_INTERVAL": "1"}
    make_webhook(receiver.url + "/hook")
    first = flask_process("worker", **fast)
    with app.app_context():
        (delivery_id,) = dispatch.emit("order_pay_hook", {"order": {"order_no": "K1"}}).delivery_ids
    wait_for(lambda: seen() == [delivery_id])
    os.killpg(first.pid, signal.SIGKILL)  # the worker and its scheduler process
    first.wait(10)
    assert statuses(app) == [DeliveryStatus.SENDING]  # claimed by the dead worker, never recorded
    flask_process("worker", **fast)
    flask_process("scheduler", **fast)
    wait_for(lambda: statuses(app) == [DeliveryStatus.DELIVERED], timeout=40)
    assert seen() == [delivery_id, delivery_id]  # sent again, with the same delivery id
    with app.app_context():
        assert [a.response_status for a in db.session.scalars(db.select(Attempt))] == [200]


def test_one_worker_keeps_delivering_past_its_drain_time_limit_while_a_request_hangs(app, make_webhook, flask_process,
                                                                                    local_receiver):
    """One `flask worker`, continuous events, and an endpoint that answers after 9 s. The drain's
    hard limit (3 s here: 120 s less 20 s, the connect and the read timeout) comes while that request is out: the healthy endpoint's events emitted
    after it still arrive before the slow answer does (the request is handed on, not waited for),
    and the slow delivery is sent and recorded once, even though the worker is stopped before it
    is answered."""
    from models import Attempt
    from notify import dispatch

    slow_since, healthy = [], {}

    def answer(path, headers):
        if path == "/slow":
            slow_since.append(time.monotonic())
            return 200, {}, b"", 9
        healthy[headers["X-Apsdai-Delivery"]] = time.monotonic()
        return 200, {}, b"", 0

    receiver = local_receiver(answer)
    make_webhook(receiver.url + "/slow", hooks_=["order_create_hook"])
    make_webhook(receiver.url + "/ok", hooks_=["order_pay_hook"])
    worker = flask_process("worker", DELIVERY_READ_TIMEOUT="95", DRAIN_BUDGET="1")
    with app.app_context():
        (slow_id,) = dispatch.emit("order_create_hook", {"order": {"order_no": "S1"}}).delivery_ids
    wait_for(lambda: slow_since)
    answered_at = slow_since[0] + 9
    late = []  # healthy deliveries emitted after the hard limit, while the slow request is out
    while time.monotonic() < answered_at - 2:
        with app.app_context():
            (delivery_id,) = dispatch.emit("order_pay_hook", {"order": {"order_no": "P"}}).delivery_ids
        if time.monotonic() > slow_since[0] + 5.5:
            late.append(delivery_id)
        time.sleep(0.2)
    assert late
    wait_for(lambda: all(delivery_id in healthy for delivery_id in late))
    # Stopped while the slow request is still out, the worker waits for it and records it.
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert set(statuses(app)) == {DeliveryStatus.DELIVERED}
    assert all(healthy[delivery_id] < answered_at for delivery_id in late)
    assert len(slow_since) == 1
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Attempt.id)).where(Attempt.delivery_id == slow_id)) == 1


def test_two_schedulers_and_two_workers_send_one_daily_report(app, receiver_demo, make_webhook, flask_process):
    """The report's time passed three hours ago (the admin exists since the day before yesterday):
    two schedulers, two workers, one report delivered, marked late, one report run recorded."""
    from datetime import timedelta

    from models import ReportRun, User
    from models.base import utcnow
    from shop import report

    demo = receiver_demo(secret=SECRET)
    make_webhook(demo.url, secret=SECRET, hooks_=["order_count_amount_hook"])
    with app.app_context():
        db.session.add(User(username="merchant", password_hash="x", created_at=utcnow() - timedelta(days=2)))
        report.set_report_time((utcnow() - timedelta(hours=3)).strftime("%H:%M"))  # MERCHANT_TIMEZONE is UTC
        db.session.commit()
    for _ in range(2):
        flask_process("worker")
        flask_process("scheduler")
    wait_for(lambda: len(demo.events()) >= 1, timeout=30)
    time.sleep(2)  # time for a duplicate to show up, if there were one
    (entry,) = demo.events()
    assert entry["event"] == "order_count_amount_hook" and entry["body"]["data"]["late"] is True
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(ReportRun)) == 1


def test_poison_events_among_a_hundred_healthy_ones_through_a_worker_process(app, login, make_webhook, make_channel,
                                                                             flask_process, local_receiver,
                                                                             dingtalk):
    """Poison events stored as older versions accepted them (a product that is a string, a lone
    surrogate, nesting 970 deep), in the same batches as 100 healthy events, through one real
    `flask worker`: each healthy delivery reaches the receiver exactly once, none is left
    sending, each poison delivery is final (delivered, or failed with its reason), and its page
    renders."""
    from models import Attempt
    from notify import dispatch
    from tests.test_poison import add_deliveries, deep_json, store_event

    seen = []
    receiver = local_receiver(lambda path, headers: (seen.append(headers["X-Apsdai-Delivery"]) or 200, {}, b"", 0))
    make_webhook(receiver.url + "/hook", hooks_=["order_pay_hook", "order_create_hook"])
    make_channel("dingtalk", {"url": dingtalk.add_robot("dingtokenprocess01")}, hooks_=["order_pay_hook"])
    poison, healthy = [], []
    with app.app_context():
        for n in range(100):
            if n in (10, 50, 90):
                data = {10: '{"order": {"product": "abc"}}', 50: '{"order": {"order_no": "\\ud800"}}',
                        90: '{"order": ' + deep_json(970) + "}"}[n]
                poison += add_deliveries(app, store_event(app, "order_pay_hook", data), "order_pay_hook")
            healthy += dispatch.emit("order_create_hook", {"order": {"order_no": f"H{n}"}}).delivery_ids
    assert len(healthy) == 100 and len(poison) == 6
    # Four connections at a time: the test receiver's listen backlog is five, and a connection it
    # drops would be a retry that has nothing to do with the poison.
    flask_process("worker", MERCHANT_TIMEZONE="Asia/Shanghai", DELIVERY_PER_ENDPOINT_CONCURRENCY="4")

    def settled():
        with app.app_context():
            return not db.session.scalar(db.select(db.func.count()).select_from(Delivery).where(
                Delivery.status.in_(DeliveryStatus.ACTIVE)))
    wait_for(settled, timeout=60)
    time.sleep(1)  # a duplicate would have had time to arrive
    assert sorted(d for d in seen if d in healthy) == sorted(healthy)  # each exactly once
    with app.app_context():
        found = {d.id: d for d in db.session.scalars(db.select(Delivery))}
        attempts = db.session.execute(db.select(Attempt.delivery_id, Attempt.number, Attempt.outcome, Attempt.error)
                                      .order_by(Attempt.delivery_id, Attempt.number)).all()
    assert all(found[d].status == DeliveryStatus.DELIVERED for d in healthy)
    assert [a.delivery_id for a in attempts] == sorted(found), [a for a in attempts if a.number > 1]
    for delivery_id in poison:
        delivery = found[delivery_id]
        assert delivery.status in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)
        assert delivery.status == DeliveryStatus.DELIVERED or "Nothing was sent" in delivery.last_error
        assert login.get(f"/deliveries/{delivery_id}").status_code == 200
    assert all(seen.count(d) <= 1 for d in poison)
