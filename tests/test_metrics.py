"""The Prometheus endpoint: counters from real deliveries, backlog gauges, and who may read it."""
import re
from datetime import timedelta

from extensions import db
from models import Delivery
from notify import dispatch, hooks


def sample(text: str, name: str, **labels) -> float:
    label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(label_text) + r"\}" if labels else "") + r" ([0-9.e+-]+)"
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_attempts_and_show_the_backlog(app, client, receiver_demo, make_webhook, worker):
    demo = receiver_demo(secret="whsec_metrics_secret_0123456789")
    make_webhook(demo.url, secret="whsec_metrics_secret_0123456789", hooks_=["order_pay_hook"])
    make_webhook("http://127.0.0.1:9/hook", hooks_=["order_create_hook"])  # nothing listens: fails
    before = client.get("/metrics").text
    with app.app_context():
        dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample)
        dispatch.emit("order_create_hook", hooks.get("order_create_hook").sample)
    worker(until=lambda: _final_count(app) == 2)
    after = client.get("/metrics").text
    assert sample(after, "merchant_notify_attempts_total", channel_kind="webhook", outcome="success") - \
        sample(before, "merchant_notify_attempts_total", channel_kind="webhook", outcome="success") == 1
    assert sample(after, "merchant_notify_attempts_total", channel_kind="webhook", outcome="transient") - \
        sample(before, "merchant_notify_attempts_total", channel_kind="webhook", outcome="transient") == 4
    assert sample(after, "merchant_notify_deliveries_finished_total", channel_kind="webhook", status="dead") - \
        sample(before, "merchant_notify_deliveries_finished_total", channel_kind="webhook", status="dead") == 1
    assert sample(after, "merchant_notify_attempt_duration_seconds_count", channel_kind="webhook") - \
        sample(before, "merchant_notify_attempt_duration_seconds_count", channel_kind="webhook") == 5

    # A backlog: two deliveries due for a minute that no worker has taken.
    with app.app_context():
        ids = [dispatch.record_event("order_pay_hook", hooks.get("order_pay_hook").sample).delivery_ids[0]
               for _ in range(2)]
        db.session.commit()
        for delivery in db.session.scalars(db.select(Delivery).where(Delivery.id.in_(ids))):
            delivery.next_attempt_at -= timedelta(minutes=1)
        db.session.commit()
    text = client.get("/metrics").text
    assert sample(text, "merchant_notify_active_deliveries", status="pending") == 2
    assert 59 <= sample(text, "merchant_notify_oldest_due_delivery_seconds") < 120
    assert sample(text, "merchant_notify_queue_due") == 2


def _final_count(app) -> int:
    from models import DeliveryStatus

    with app.app_context():
        return db.session.scalar(db.select(db.func.count(Delivery.id)).where(Delivery.status.in_(DeliveryStatus.FINAL)))


def test_metrics_are_for_loopback_or_the_metrics_token(app, client):
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.10"}).status_code == 403
    app.config["METRICS_TOKEN"] = "scrape-me"
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"},
                          environ_base={"REMOTE_ADDR": "192.0.2.10"})
    assert response.status_code == 200 and "merchant_notify_queue_ready" in response.text
