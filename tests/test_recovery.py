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


def redeliver_form(page: str) -> dict:
    """The hidden fields of the preview's form (the filter, the preview's moment, the CSRF token)."""
    import html
    import re

    (form,) = [form for form in re.findall(r"<form\b.*?</form>", page, re.S) if 'name="as_of"' in form]
    return {name: html.unescape(value) for name, value in re.findall(r'name="([^"]+)" value="([^"]*)"', form)}


def test_redeliver_what_a_filter_shows_previews_then_sends_each_again_through_a_worker(
        app, login, worker, make_webhook, local_receiver):
    """Failed deliveries of one order to two receivers: the preview names the channels, the hooks,
    the oldest and newest; the POST gives each one more attempt with its id, a real worker sends
    them to the real receivers on loopback; deliveries not final, not in the filter, to a disabled
    channel or made after the preview are left alone."""
    from datetime import datetime

    answers = {"/a": 422, "/b": 422, "/c": 422}
    receiver = local_receiver(lambda path, headers: (answers[path], {}, b"", 0))
    erp, crm = make_webhook(receiver.url + "/a"), make_webhook(receiver.url + "/b")
    paused = make_webhook(receiver.url + "/c")
    order = dict(hooks.get("order_pay_hook").sample["order"], order_no="AP42")
    with app.app_context():
        created = dispatch.emit("order_create_hook", {"order": dict(order, status="created")})
        paid = dispatch.emit("order_pay_hook", {"order": order})
        other = dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample)  # another order
    ids = [*created.delivery_ids, *paid.delivery_ids, *other.delivery_ids]
    worker(until=lambda: all(s == DeliveryStatus.FAILED for s in statuses(app, ids)))
    login.post(f"/settings/notifications/channels/{paused}/toggle")  # disabled: its failures stay
    with app.app_context():
        by_channel = {d.id: d.channel_id for d in db.session.scalars(db.select(Delivery).where(Delivery.id.in_(ids)))}
    resend = [d for d in [*created.delivery_ids, *paid.delivery_ids] if by_channel[d] != paused]
    assert len(resend) == 4

    page = login.get("/deliveries/redeliver?q=AP42&status=failed").text
    assert "<strong>4 deliveries</strong>" in page and "Send 4 deliveries again" in page
    assert f"WebHook · {receiver.url}/a" in page and f"WebHook · {receiver.url}/b" in page
    assert f"{receiver.url}/c" not in page
    assert "Order Created" in page and "Order Paid" in page
    with app.app_context():
        times = sorted(db.session.get(Delivery, d).created_at for d in resend)
    assert f"created from {times[0]:%Y-%m-%d %H:%M:%S} to {times[-1]:%Y-%m-%d %H:%M:%S}." in page
    chinese = login.get("/deliveries/redeliver?q=AP42&status=failed", headers={"Accept-Language": "zh-CN"}).text
    assert "重新发送 4 个投递" in chinese and "订单支付" in chinese

    form = redeliver_form(page)
    assert form["q"] == "AP42" and form["status"] == "failed" and datetime.fromisoformat(form["as_of"])
    # Made after the preview, in the filter: not part of what the merchant agreed to.
    with app.app_context():
        later = dispatch.emit("order_pay_hook", {"order": order}).delivery_ids
    worker(until=lambda: all(s == DeliveryStatus.FAILED for s in statuses(app, later)))
    answers.update({"/a": 200, "/b": 200})
    seen_before = len(receiver.requests)
    response = login.post("/deliveries/redeliver", data=form)
    assert response.status_code == 302 and "q=AP42" in response.location and "status=failed" in response.location
    assert "Sending 4 deliveries again, each with its X-Apsdai-Delivery id." in login.get(response.location).text
    assert statuses(app, resend) == [DeliveryStatus.RETRYING] * 4
    worker(until=lambda: statuses(app, resend) == [DeliveryStatus.DELIVERED] * 4)
    again = [headers["X-Apsdai-Delivery"] for _, headers in receiver.requests[seen_before:]]
    assert sorted(again) == sorted(resend)  # each once, with its own id
    with app.app_context():
        for delivery_id in resend:  # one new attempt cycle of the same delivery, as Redeliver gives
            delivery = db.session.get(Delivery, delivery_id)
            assert (delivery.attempt_count, delivery.max_attempts) == (2, 2)
    untouched = [*other.delivery_ids, *later, *[d for d in ids if by_channel[d] == paused]]
    assert statuses(app, untouched) == [DeliveryStatus.FAILED] * len(untouched)
    # Nothing left that the filter can send again: the preview says so, and a repeated POST too.
    assert "Nothing this filter shows can be sent again" in login.get(
        "/deliveries/redeliver?q=AP42&status=delivered&until=2000-01-01").text
    response = login.post("/deliveries/redeliver", data=dict(form, status="pending"))
    assert "Nothing was sent again" in login.get(response.location).text


def test_redeliver_sends_at_most_its_cap_the_oldest_first(app, login, make_webhook, monkeypatch):
    from notify import recovery

    make_webhook("https://erp.example.com/h")
    with app.app_context():
        ids = [dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample).delivery_ids[0] for _ in range(3)]
        for n, delivery_id in enumerate(ids):
            delivery = db.session.get(Delivery, delivery_id)
            delivery.status, delivery.attempt_count, delivery.max_attempts = DeliveryStatus.DEAD, 4, 4
            delivery.created_at = delivery.created_at.replace(year=2025, month=1, day=1 + n)
        db.session.commit()
    monkeypatch.setattr(recovery, "REDELIVER_CAP", 2)
    page = login.get("/deliveries/redeliver?status=dead").text
    assert "This filter shows more than 2: the oldest 2 are sent now" in page and "Send 2 deliveries again" in page
    response = login.post("/deliveries/redeliver", data=redeliver_form(page))
    shown = login.get(response.location).text
    assert "Sending 2 deliveries again" in shown and "At most 2 are sent at a time" in shown
    assert statuses(app, ids) == [DeliveryStatus.RETRYING, DeliveryStatus.RETRYING, DeliveryStatus.DEAD]


def test_redeliver_needs_a_csrf_token(app_env, admin, make_webhook):
    import re

    from app import create_app

    app = create_app({"TESTING": True})  # CSRF on, as in production
    with app.app_context():
        db.create_all()
    make_webhook("https://erp.example.com/h")
    with app.app_context():
        (delivery_id,) = dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample).delivery_ids
        delivery = db.session.get(Delivery, delivery_id)
        delivery.status, delivery.attempt_count = DeliveryStatus.FAILED, 1
        db.session.commit()
    client = app.test_client()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', client.get("/login").text).group(1)
    assert client.post("/login", data=dict(admin, csrf_token=token)).status_code == 302
    form = redeliver_form(client.get("/deliveries/redeliver?status=failed").text)
    without = {name: value for name, value in form.items() if name != "csrf_token"}
    response = client.post("/deliveries/redeliver", data=without)
    assert response.status_code == 400  # CSRFProtect refuses it before the view
    assert statuses(app, [delivery_id]) == [DeliveryStatus.FAILED]
    assert client.post("/deliveries/redeliver", data=form).status_code == 302
    assert statuses(app, [delivery_id]) == [DeliveryStatus.RETRYING]
