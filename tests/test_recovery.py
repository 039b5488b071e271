"""Recovering a channel: a preview by hook, then failed, dead and cancelled deliveries sent again
with their ids, and the events it missed while disabled delivered too."""
import re

from extensions import db
from models import Delivery, DeliveryStatus
from notify import dispatch, hooks


def test_recover_since_previews_then_resends_and_fills_the_gap(app, login, worker, make_webhook, local_receiver):
    answers = [500]
    receiver = local_receiver(lambda path, headers: (answers[0], {}, b"", 0))
    channel_id = make_webhook(receiver.url + "/hook", hooks_=["order_pay_hook", "stock_alarm_hook"])
    with app.app_context():
        failed = [dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample).delivery_ids[0] for _ in range(2)]
    worker(until=lambda: all(s == DeliveryStatus.DEAD for s in statuses(app, failed)))
    # Disabled by the merchant; an alarm happens meanwhile and is not delivered to it.
    login.post(f"/settings/notifications/channels/{channel_id}/toggle")
    with app.app_context():
        dispatch.emit("stock_alarm_hook", hooks.get("stock_alarm_hook").sample)
        dispatch.emit("order_cancel_hook", hooks.get("order_cancel_hook").sample)  # not subscribed: not missed
    # Enabling it again leads to the recovery page, with its preview.
    response = login.post(f"/settings/notifications/channels/{channel_id}/toggle")
    assert "/recover?since=" in response.location
    page = login.get(f"/settings/notifications/channels/{channel_id}/recover?since=2000-01-01T00:00").text
    assert "Send 3 deliveries" in page and "order_cancel_hook" not in page
    counts = re.findall(r"<td[^>]*>(\d+)</td><td[^>]*>(\d+)</td>", page)  # the cells carry labels for phones
    assert ("2", "0") in counts and ("0", "1") in counts
    answers[0] = 200
    response = login.post(f"/settings/notifications/channels/{channel_id}/recover", data={"since": "2000-01-01T00:00"})
    assert response.status_code == 302
    with app.app_context():
        ids = list(db.session.scalars(db.select(Delivery.id).where(Delivery.channel_id == channel_id)))
    assert len(ids) == 3 and set(failed) <= set(ids)  # the same ids: receivers can de-duplicate
    worker(until=lambda: statuses(app, ids) == [DeliveryStatus.DELIVERED] * 3)
    # The receiver saw each failed delivery's id again: its four failed attempts, then the one that worked.
    sent = [headers["X-Apsdai-Delivery"] for _, headers in receiver.requests]
    assert all(sent.count(delivery_id) == 5 for delivery_id in failed)
    assert login.get(f"/settings/notifications/channels/{channel_id}/recover?since=2000-01-01T00:00").text.count(
        "Nothing failed or was missed since then.") == 1


def statuses(app, ids):
    with app.app_context():
        return [db.session.get(Delivery, i).status for i in ids]
