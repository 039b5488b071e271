"""From an event to the receiver: a real Redis, the product's real RQ worker, and the receiver demo
running as a real server on loopback."""
from __future__ import annotations

import json
import re
import time


from rq import Queue

from extensions import db
from models import Attempt, Channel, Delivery, DeliveryStatus
from notify import dispatch, hooks, jobs, queue
from notify.queue import get_queue
from tests.conftest import lose_redis_work

SECRET = "whsec_e2e_secret_abcdefghijklmnop"


def emit(app, hook="order_pay_hook", data=None):
    with app.app_context():
        event = dispatch.emit(hook, data or hooks.get(hook).sample)
        return event.id, list(event.delivery_ids)


def load(app, delivery_id):
    with app.app_context():
        delivery = db.session.get(Delivery, delivery_id)
        attempts = [dict(number=a.number, status=a.response_status, outcome=a.outcome, error=a.error,
                         headers=a.request_headers, body=a.request_body, response=a.response_body,
                         duration=a.duration_ms) for a in delivery.attempts]
        return delivery.status, attempts


def test_event_from_the_api_reaches_the_receiver_demo_signed_and_verified(client, app, api_token, receiver_demo,
                                                                          make_webhook, worker):
    demo = receiver_demo(secret=SECRET)
    make_webhook(demo.url, secret=SECRET)
    data = {"order": {"order_no": "AP1001", "amount": "128.00", "currency": "CNY", "product": {"name": "绿茶"}}}
    response = client.post("/api/v1/events", json={"event": "order_pay_hook", "data": data},
                           headers={"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 202
    worker()
    received = demo.events()
    assert len(received) == 1
    entry = received[0]
    assert entry["verified"] is True and entry["event"] == "order_pay_hook"
    assert entry["body"]["id"] == response.json["id"] and entry["body"]["data"] == data
    assert entry["body"]["event"] == "order_pay_hook" and entry["body"]["test"] is False
    with app.app_context():
        delivery = db.session.scalar(db.select(Delivery))
        assert entry["delivery"] == delivery.id
        assert delivery.status == DeliveryStatus.DELIVERED and delivery.delivered_at is not None
        (attempt,) = delivery.attempts
        assert attempt.response_status == 200 and attempt.outcome == "success" and attempt.error is None
        assert json.loads(attempt.response_body) == {"ok": True, "duplicate": False}
        # The stored request shows every header, the token masked.
        assert attempt.request_headers["X-Apsdai-Delivery"] == delivery.id
        assert attempt.request_headers["X-Apsdai-Token"].startswith("••••••••")
        assert SECRET not in json.dumps(attempt.request_headers)
        assert json.loads(attempt.request_body)["id"] == response.json["id"]


def test_password_mode_reaches_the_receiver_demo(app, receiver_demo, make_webhook, worker):
    demo = receiver_demo(secret="a plain password", mode="password")
    make_webhook(demo.url, secret="a plain password", auth_mode="password")
    _, (delivery_id,) = emit(app)
    worker()
    assert load(app, delivery_id)[0] == DeliveryStatus.DELIVERED
    assert demo.events()[0]["verified"] is True


def test_wrong_secret_is_rejected_by_the_demo_and_the_attempt_shows_the_401(app, receiver_demo, make_webhook,
                                                                            worker, login):
    demo = receiver_demo(secret=SECRET)
    make_webhook(demo.url, secret="whsec_not_the_receivers_secret")
    _, (delivery_id,) = emit(app)
    worker(until=lambda: load(app, delivery_id)[0] == DeliveryStatus.DEAD)
    status, attempts = load(app, delivery_id)
    assert [a["number"] for a in attempts] == [1, 2, 3, 4]  # retried over the whole (test) schedule
    assert {a["status"] for a in attempts} == {401}
    assert "signature does not match: check the secret" in attempts[0]["response"]
    assert attempts[0]["error"].startswith("The receiver answered HTTP 401: it did not accept the request's token.")
    assert demo.events()[0]["verified"] is False
    page = login.get(f"/deliveries/{delivery_id}").text
    assert "HTTP 401" in page and "signature does not match" in page


def test_receiver_down_is_retried_and_delivered_when_it_comes_back(app, receiver_demo, make_webhook, worker):
    demo = receiver_demo(secret=SECRET, started=False)
    make_webhook(demo.url, secret=SECRET)
    # Retries far enough apart that the drain hands the next one to RQ's scheduler.
    app.config["DELIVERY_RETRY_SCHEDULE"] = [1.5, 1.5, 1.5]
    _, (delivery_id,) = emit(app)
    worker()  # first attempt: nothing listens on the port
    status, attempts = load(app, delivery_id)
    assert status == DeliveryStatus.RETRYING
    assert attempts[0]["error"].startswith("127.0.0.1:") and "refused the connection" in attempts[0]["error"]
    demo.start()
    worker(until=lambda: load(app, delivery_id)[0] == DeliveryStatus.DELIVERED)
    status, attempts = load(app, delivery_id)
    assert attempts[-1]["status"] == 200 and len(attempts) >= 2
    # Every attempt carried the same delivery id, and the receiver logged it once.
    assert {a["headers"]["X-Apsdai-Delivery"] for a in attempts} == {delivery_id}
    assert [e["delivery"] for e in demo.events()] == [delivery_id]


def test_test_button_sends_a_sample_and_the_page_shows_the_result(login, app, receiver_demo, make_webhook, worker):
    demo = receiver_demo(secret=SECRET)
    channel_id = make_webhook(demo.url, secret=SECRET, hooks_=["order_create_hook"])
    response = login.post(f"/settings/notifications/channels/{channel_id}/test", data={"hook": "stock_alarm_hook"})
    assert response.status_code == 302
    delivery_id = response.location.rsplit("/", 1)[-1]
    pending = login.get(f"/deliveries/{delivery_id}/result")
    assert pending.headers["X-Delivery-Final"] == "0" and "Waiting for a worker" in pending.text
    worker()
    panel = login.get(f"/deliveries/{delivery_id}/result")
    assert panel.headers["X-Delivery-Final"] == "1"
    assert "HTTP 200" in panel.text and re.search(r"\d+ ms", panel.text)
    assert "X-Apsdai-Token: ••••••••" in panel.text and SECRET not in panel.text
    assert "&#34;ok&#34;:true" in panel.text  # the receiver's JSON answer, escaped in the HTML
    page = login.get(f"/deliveries/{delivery_id}").text
    curl = re.search(r'<pre class="code" id="curl">(.*?)</pre>', page, re.S).group(1)
    assert curl.startswith("curl -sS -i -X POST " + demo.url) and "X-Apsdai-Delivery: " + delivery_id in curl
    (entry,) = demo.events()
    assert entry["event"] == "stock_alarm_hook" and entry["body"]["test"] is True
    assert entry["body"]["data"] == hooks.get("stock_alarm_hook").sample
    # The last result shows on the notifications page.
    assert "✔ delivered · HTTP 200" in login.get("/settings/notifications/").text


def test_a_failed_test_is_not_retried_and_explains_itself(login, app, make_webhook, worker):
    channel_id = make_webhook("http://127.0.0.1:9/hook")  # discard port: nothing listens
    response = login.post(f"/settings/notifications/channels/{channel_id}/test", data={"hook": "order_pay_hook"})
    delivery_id = response.location.rsplit("/", 1)[-1]
    worker()
    status, attempts = load(app, delivery_id)
    assert status == DeliveryStatus.DEAD and len(attempts) == 1
    page = login.get(f"/deliveries/{delivery_id}/result").text
    assert "127.0.0.1:9 refused the connection" in page
    # One attempt, by design: not "dead" (retries exhausted) but a Test that is not retried.
    assert "failed (test, not retried)" in page and ">dead<" not in page


def test_a_delivery_queued_twice_is_sent_once(app, receiver_demo, make_webhook, worker):
    demo = receiver_demo(secret=SECRET)
    channel_id = make_webhook(demo.url, secret=SECRET)
    _, (delivery_id,) = emit(app)
    with app.app_context():
        queue.schedule([(channel_id, delivery_id, 0.0)])  # a stray duplicate…
        get_queue().enqueue("notify.jobs.drain")  # …and a second drain racing for it
    worker()
    with app.app_context():
        assert jobs.claim([delivery_id])[1] == set()  # a stale claim afterwards finds nothing to do
    status, attempts = load(app, delivery_id)
    assert status == DeliveryStatus.DELIVERED and len(attempts) == 1 and len(demo.events()) == 1


def test_sweeper_recovers_deliveries_whose_work_was_lost(app, receiver_demo, make_webhook, worker):
    demo = receiver_demo(secret=SECRET)
    make_webhook(demo.url, secret=SECRET)
    _, delivery_ids = emit(app)
    _, more_ids = emit(app, "order_create_hook")
    lose_redis_work(app)
    with app.app_context():
        # Overdue: due longer ago than the sweeper's grace period.
        for delivery in db.session.scalars(db.select(Delivery)):
            delivery.next_attempt_at -= jobs.SWEEP_GRACE * 2
        db.session.commit()
        assert jobs.sweep() == 2
        assert jobs.sweep() == 0  # already waiting in Redis: nothing is queued twice
    worker()
    assert {load(app, i)[0] for i in delivery_ids + more_ids} == {DeliveryStatus.DELIVERED}
    assert len(demo.events()) == 2


def test_events_are_kept_when_redis_is_down_and_sent_once_it_is_back(app, client, api_token, receiver_demo,
                                                                      make_webhook, worker, redis_url):
    demo = receiver_demo(secret=SECRET)
    make_webhook(demo.url, secret=SECRET)
    app.config["REDIS_URL"] = "redis://127.0.0.1:9/0"  # nothing listens there
    app.extensions.pop("merchant_notify.redis", None)
    try:
        response = client.post("/api/v1/events", json={"event": "order_pay_hook", "data": {"order": {}}},
                               headers={"Authorization": f"Bearer {api_token}"})
        assert response.status_code == 202  # accepted: the event is safe in the database
        with app.app_context():
            delivery = db.session.scalar(db.select(Delivery))
            assert delivery.status == DeliveryStatus.PENDING
            delivery.next_attempt_at -= jobs.SWEEP_GRACE * 2
            delivery_id = delivery.id
            db.session.commit()
    finally:
        app.config["REDIS_URL"] = redis_url
        app.extensions.pop("merchant_notify.redis", None)
    with app.app_context():
        assert jobs.sweep() == 1
    worker()
    assert load(app, delivery_id)[0] == DeliveryStatus.DELIVERED
    assert [e["body"]["id"] for e in demo.events()] == [response.json["id"]]


def test_permanent_failure_marks_the_channel_and_a_success_clears_it(app, login, make_webhook, worker,
                                                                     local_receiver):
    answers = [410]
    receiver = local_receiver(lambda path, headers: (answers[0], {}, b"", 0))
    channel_id = make_webhook(receiver.url + "/hook")
    _, (delivery_id,) = emit(app)
    worker()
    status, attempts = load(app, delivery_id)
    assert status == DeliveryStatus.FAILED and len(attempts) == 1  # no retries for 410
    with app.app_context():
        channel = db.session.get(Channel, channel_id)
        assert channel.needs_attention and "410 Gone" in channel.attention_reason
        assert channel.enabled is False  # the endpoint is gone: no new deliveries to it
    assert "needs attention" in login.get("/settings/notifications/").text
    assert emit(app)[1] == []
    assert login.post(f"/settings/notifications/channels/{channel_id}/toggle").status_code == 302  # enable again
    answers[0] = 200
    emit(app)
    worker()
    with app.app_context():
        assert db.session.get(Channel, channel_id).needs_attention is False


def test_a_receiver_stops_the_retries_of_one_delivery_with_422(app, make_webhook, worker, local_receiver):
    receiver = local_receiver(lambda path, headers: (422, {}, b"not for us", 0))
    channel_id = make_webhook(receiver.url + "/hook")
    _, (delivery_id,) = emit(app)
    worker()
    status, attempts = load(app, delivery_id)
    assert status == DeliveryStatus.FAILED and len(attempts) == 1 and "not retried" in attempts[0]["error"]
    with app.app_context():
        channel = db.session.get(Channel, channel_id)
        assert channel.enabled and not channel.needs_attention  # the endpoint itself is fine


def test_deliveries_to_a_channel_disabled_meanwhile_are_cancelled(app, make_webhook, worker):
    channel_id = make_webhook("http://127.0.0.1:9/hook")
    _, (delivery_id,) = emit(app)
    with app.app_context():
        db.session.get(Channel, channel_id).enabled = False
        db.session.commit()
    worker()
    status, attempts = load(app, delivery_id)
    assert status == DeliveryStatus.CANCELLED and attempts == []


def test_a_drain_running_on_sees_a_channel_disabled_within_a_second(app, make_webhook, local_receiver):
    """A drain reads a channel at most once every CHANNEL_FRESH seconds: a channel disabled while a
    long drain runs gets no more sends once that time has passed, and its waiting deliveries are
    cancelled, not sent."""
    receiver = local_receiver(lambda path, headers: (200, {}, b"", 0))
    channel_id = make_webhook(receiver.url + "/hook")
    with app.app_context():
        work = jobs.Drain(app.config)

        def send(delivery_id):
            work.held[channel_id].append(delivery_id)
            work.start_sends()
            while work.in_flight:
                work.collect(0.1)
            work.flush(force=True)

        (_, (first,)), (_, (second,)) = emit(app), emit(app)
        send(first)
        db.session.get(Channel, channel_id).enabled = False
        db.session.commit()
        time.sleep(jobs.CHANNEL_FRESH + 0.1)
        send(second)
    assert load(app, first)[0] == DeliveryStatus.DELIVERED
    status, attempts = load(app, second)
    assert status == DeliveryStatus.CANCELLED and attempts == []
    assert len(receiver.requests) == 1


def test_retry_delays_follow_the_schedule_with_jitter_and_honour_retry_after():
    schedule = [10, 60, 300]
    for attempt, base in [(1, 10), (2, 60), (3, 300), (7, 300)]:
        delays = [jobs.retry_delay(attempt, schedule) for _ in range(200)]
        assert all(base * 0.8 <= d <= base * 1.2 for d in delays)
        assert len({round(d, 3) for d in delays}) > 100  # jittered, not a constant
    assert jobs.retry_delay(1, schedule, retry_after=120) >= 120
    assert jobs.retry_delay(3, schedule, retry_after=5) >= 240  # Retry-After never shortens the wait


def test_a_delivery_held_by_a_dead_worker_is_sent_once_its_lease_runs_out(app, receiver_demo, make_webhook,
                                                                           worker):
    from datetime import timedelta

    from models.base import utcnow

    demo = receiver_demo(secret=SECRET)
    make_webhook(demo.url, secret=SECRET)
    _, (delivery_id,) = emit(app)
    lose_redis_work(app)
    with app.app_context():
        assert jobs.claim([delivery_id])[1] == {delivery_id}  # a worker took it… and died before sending
        assert jobs.sweep() == 0  # its lease still holds: nobody else may send it
        delivery = db.session.get(Delivery, delivery_id)
        delivery.lease_until = utcnow() - timedelta(seconds=1)
        db.session.commit()
        assert jobs.sweep() == 1
        assert jobs.sweep() == 0
    worker()
    status, attempts = load(app, delivery_id)
    assert status == DeliveryStatus.DELIVERED and len(attempts) == 1 and len(demo.events()) == 1


def test_a_transport_that_crashes_costs_one_attempt_not_the_batch(app, monkeypatch, receiver_demo, make_webhook,
                                                                 worker):
    """A bug in one channel kind's code is recorded as a failed attempt and retried; the other
    deliveries of the same batch go out."""
    from notify.channels import REGISTRY
    from notify.channels.webhook.transport import WebhookTransport

    class Broken(WebhookTransport):
        kind = "broken"

        def send(self, request):
            raise RuntimeError("boom")

    monkeypatch.setitem(REGISTRY, "broken", Broken)
    demo = receiver_demo(secret=SECRET)
    make_webhook(demo.url, secret=SECRET)
    broken_id = make_webhook("https://broken.example.com/hook")
    with app.app_context():
        db.session.get(Channel, broken_id).kind = "broken"
        db.session.commit()
    app.config["DELIVERY_RETRY_SCHEDULE"] = [60]
    _, delivery_ids = emit(app)
    worker()
    results = {load(app, d)[0]: load(app, d)[1] for d in delivery_ids}
    assert set(results) == {DeliveryStatus.DELIVERED, DeliveryStatus.RETRYING}
    (attempt,) = results[DeliveryStatus.RETRYING]
    assert attempt["error"] == "Internal error while sending (RuntimeError: boom); tried again later."
    assert len(demo.events()) == 1


def test_drains_hand_over_when_their_budget_is_spent_and_nothing_is_lost(app, receiver_demo, make_webhook, worker):
    """A tiny budget and one request at a time: many drains in turn, each giving back what it held."""
    demo = receiver_demo(secret=SECRET)
    make_webhook(demo.url, secret=SECRET, hooks_=["order_pay_hook"])
    app.config.update(DRAIN_BUDGET=0.05, DELIVERY_CONCURRENCY=2, DELIVERY_PER_ENDPOINT_CONCURRENCY=1)
    ids = [emit(app)[1][0] for _ in range(30)]

    def all_final():
        with app.app_context():
            return db.session.scalar(db.select(db.func.count(Delivery.id))
                                     .where(Delivery.status == DeliveryStatus.DELIVERED)) == 30

    worker(until=all_final, timeout=60)
    assert sorted(e["delivery"] for e in demo.events()) == sorted(ids)  # each exactly once
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Attempt.id))) == 30


def test_a_drain_at_its_time_limit_hands_its_request_in_flight_to_the_next_drain(app, local_receiver, make_webhook,
                                                                                 monkeypatch):
    """At its hard limit (3 s here: what RQ's job timeout leaves after a 2 s connect and a 95 s read
    timeout) a drain does not wait for a request that hangs: it ends and queues the next drain on
    the worker's own queue, which records the answer once it comes. The request is sent once,
    recorded once."""
    receiver = local_receiver(lambda path, headers: (200, {}, b"ok", 4.5))
    make_webhook(receiver.url + "/slow", hooks_=["order_pay_hook"])
    app.config.update(DELIVERY_READ_TIMEOUT=95.0, DRAIN_BUDGET=1.0)
    own = f"{app.config['RQ_QUEUE']}.worker.test"
    monkeypatch.setattr(jobs, "OWN_QUEUE", own)
    monkeypatch.setattr(jobs, "_carried", None)
    _, (delivery_id,) = emit(app)
    with app.app_context():
        jobs.drain()
        own_queue = Queue(own, connection=get_queue().connection)
        assert own_queue.job_ids and len(own_queue.job_ids) == 1  # the next drain, for this process only
        assert load(app, delivery_id) == (DeliveryStatus.SENDING, [])  # its request is still out
        jobs.collect_carried()
        own_queue.delete(delete_jobs=True)
    status, attempts = load(app, delivery_id)
    assert status == DeliveryStatus.DELIVERED and [(a["number"], a["status"]) for a in attempts] == [(1, 200)]
    assert len(receiver.requests) == 1


def test_without_a_queue_of_its_own_a_drain_at_its_time_limit_waits_for_its_request(app, local_receiver,
                                                                                    make_webhook, monkeypatch):
    receiver = local_receiver(lambda path, headers: (200, {}, b"ok", 5.5))
    make_webhook(receiver.url + "/slow", hooks_=["order_pay_hook"])
    app.config.update(DELIVERY_READ_TIMEOUT=95.0, DRAIN_BUDGET=1.0)
    monkeypatch.setattr(jobs, "OWN_QUEUE", None)
    _, (delivery_id,) = emit(app)
    with app.app_context():
        jobs.drain()
    status, attempts = load(app, delivery_id)
    assert status == DeliveryStatus.DELIVERED and len(attempts) == 1 and len(receiver.requests) == 1


def test_redeliver_sends_a_dead_delivery_again_with_the_same_delivery_id(app, login, receiver_demo, make_webhook,
                                                                        worker):
    demo = receiver_demo(secret=SECRET, started=False)
    make_webhook(demo.url, secret=SECRET)
    app.config["DELIVERY_RETRY_SCHEDULE"] = []  # one attempt, then dead
    _, (delivery_id,) = emit(app)
    worker()
    assert load(app, delivery_id)[0] == DeliveryStatus.DEAD
    demo.start()
    page = login.get(f"/deliveries/{delivery_id}").text
    assert f'action="/deliveries/{delivery_id}/redeliver"' in page
    response = login.post(f"/deliveries/{delivery_id}/redeliver", follow_redirects=True)
    assert "Sent again, with the same X-Apsdai-Delivery id." in response.text
    worker()
    status, attempts = load(app, delivery_id)
    assert status == DeliveryStatus.DELIVERED and [a["number"] for a in attempts] == [1, 2]
    assert [e["delivery"] for e in demo.events()] == [delivery_id]


def test_redeliver_refuses_when_the_channel_is_gone(app, login, make_webhook):
    channel_id = make_webhook("http://127.0.0.1:9/hook")
    _, (delivery_id,) = emit(app)
    login.post(f"/settings/notifications/channels/{channel_id}/delete")
    response = login.post(f"/deliveries/{delivery_id}/redeliver", follow_redirects=True)
    assert "Cannot send it again: its channel was deleted." in response.text
    assert load(app, delivery_id)[0] == DeliveryStatus.CANCELLED
