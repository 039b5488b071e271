"""The deliveries page: filters and paging."""
import re
from datetime import datetime

import pytest

from extensions import db
from models import Delivery
from notify import dispatch, hooks


def listed(html: str) -> list[str]:
    return re.findall(r'href="/deliveries/(dlv_[0-9a-f]+)"', html)


def seed(app, make_webhook):
    make_webhook("https://erp.example.com/h")
    made = {}
    with app.app_context():
        for hook, day in [("order_pay_hook", 1), ("order_pay_hook", 2), ("stock_alarm_hook", 2),
                          ("order_refund_hook", 3)]:
            (delivery_id,) = dispatch.record_event(hook, hooks.get(hook).sample).delivery_ids
            made[delivery_id] = (hook, day)
        db.session.commit()
        for delivery_id, (_, day) in made.items():
            db.session.get(Delivery, delivery_id).created_at = datetime(2026, 11, day, 12, 0)
        db.session.commit()
    return made


def test_filter_by_hook_and_by_days(app, login, make_webhook):
    made = seed(app, make_webhook)
    by = lambda pred: sorted(d for d, v in made.items() if pred(*v))  # noqa: E731
    assert sorted(listed(login.get("/deliveries/?hook=order_pay_hook").text)) == by(lambda h, d: h == "order_pay_hook")
    assert sorted(listed(login.get("/deliveries/?since=2026-11-02&until=2026-11-02").text)) == by(lambda h, d: d == 2)
    assert sorted(listed(login.get("/deliveries/?since=2026-11-02").text)) == by(lambda h, d: d >= 2)
    assert sorted(listed(login.get("/deliveries/?hook=order_pay_hook&until=2026-11-01").text)) == by(
        lambda h, d: h == "order_pay_hook" and d == 1)
    # An unknown hook is no filter; a malformed date is explained and ignored.
    assert len(listed(login.get("/deliveries/?hook=nope").text)) == 4
    page = login.get("/deliveries/?since=27/11/2026").text
    assert 'id="since-error"' in page and "Use a date like 2026-11-27." in page and len(listed(page)) == 4


def test_older_link_keeps_the_filters(app, login, make_webhook, monkeypatch):
    from blueprints import deliveries

    monkeypatch.setattr(deliveries, "PAGE_SIZE", 1)
    made = seed(app, make_webhook)
    page = login.get("/deliveries/?hook=order_pay_hook").text
    first = listed(page)
    older = re.search(r'href="(/deliveries/\?[^"]*before=[^"]+)"', page).group(1).replace("&amp;", "&")
    assert "hook=order_pay_hook" in older
    second = listed(login.get(older).text)
    assert len(first) == len(second) == 1 and first != second
    assert {made[first[0]][0], made[second[0]][0]} == {"order_pay_hook"}


def order_events(app, make_webhook):
    """Two WebHooks; order A1 created and paid, order B2 created, a stock alarm: seven deliveries… of
    which A1's are four (two events × two channels)."""
    first, second = make_webhook("https://erp.example.com/h"), make_webhook("https://crm.example.com/h")
    ids = {}
    with app.app_context():
        for key, hook, order_no in [("a_create", "order_create_hook", "A1"), ("a_pay", "order_pay_hook", "A1"),
                                    ("b_create", "order_create_hook", "B2")]:
            data = hooks.get(hook).sample
            data = dict(data, order=dict(data["order"], order_no=order_no))
            ids[key] = dispatch.record_event(hook, data)
        ids["alarm"] = dispatch.record_event("stock_alarm_hook", hooks.get("stock_alarm_hook").sample)
        db.session.commit()
    return first, second, ids


def test_search_by_order_number_event_id_and_delivery_id(app, login, make_webhook):
    first, second, ids = order_events(app, make_webhook)
    a1 = sorted(ids["a_create"].delivery_ids + ids["a_pay"].delivery_ids)
    assert sorted(listed(login.get("/deliveries/?q=A1").text)) == a1
    assert sorted(listed(login.get("/deliveries/?q=+A1+").text)) == a1  # spaces around are forgiven
    assert listed(login.get("/deliveries/?q=A").text) == []  # an order number is compared exactly
    # With the other filters: A1's deliveries to one channel, of one hook.
    with app.app_context():
        to_first = {d.id for d in db.session.scalars(db.select(Delivery).where(Delivery.channel_id == first))}
    assert sorted(listed(login.get(f"/deliveries/?q=A1&channel={first}").text)) == sorted(set(a1) & to_first)
    assert sorted(listed(login.get("/deliveries/?q=A1&hook=order_pay_hook").text)) == sorted(ids["a_pay"].delivery_ids)
    assert listed(login.get("/deliveries/?q=A1&status=delivered").text) == []
    # An event id: that event's deliveries; in capitals too.
    event = ids["b_create"]
    assert sorted(listed(login.get(f"/deliveries/?q={event.id}").text)) == sorted(event.delivery_ids)
    assert sorted(listed(login.get(f"/deliveries/?q={event.id.upper()}").text)) == sorted(event.delivery_ids)
    # A delivery id opens it; an unknown one says so.
    delivery_id = ids["alarm"].delivery_ids[0]
    response = login.get(f"/deliveries/?q={delivery_id}")
    assert response.status_code == 302 and response.location.endswith(f"/deliveries/{delivery_id}")
    page = login.get("/deliveries/?q=dlv_0123456789abcdef0123456789ab").text
    assert listed(page) == [] and "No delivery matches this filter." in page and "0 deliveries" in page


def test_an_order_number_must_be_text_and_is_read_defensively(app, login, make_webhook):
    """The door refuses an order number that is not text (the hook's schema); what
    `order_number` reads from data stored before the schema (the migration's backfill too) is
    the digits of a number, and nothing for anything else."""
    make_webhook("https://erp.example.com/h")
    with app.app_context():
        with pytest.raises(dispatch.InvalidEvent) as refused:
            dispatch.emit("order_pay_hook", {"order": {"order_no": 20261127}})
        assert refused.value.field == "data.order.order_no"
        (delivery_id,) = dispatch.emit("order_pay_hook", {"order": {"order_no": "20261127"}}).delivery_ids
    assert listed(login.get("/deliveries/?q=20261127").text) == [delivery_id]
    assert dispatch.order_number({"order": {"order_no": 20261127}}) == "20261127"
    assert dispatch.order_number({"order": {"order_no": ["not", "a", "number"]}}) is None
    assert dispatch.order_number({"order": {"order_no": True}}) is None
    assert dispatch.order_number({"order": "AP1"}) is None
    assert dispatch.order_number({"order": {"order_no": "x" * 300}}) == "x" * 100


def test_the_search_reads_its_own_index_whatever_the_other_filters(app):
    """On SQLite (no statistics) an equality on the channel or the result would otherwise win, and
    the database would read every delivery of the channel to find one order's."""
    from sqlalchemy import text

    from notify.filters import DeliveryFilter, parse_search

    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            return
        for search in ("A1", "evt_0123456789abcdef0123456789ab"):
            selected = DeliveryFilter(status="dead", channel_id=1, hook="order_pay_hook", search=parse_search(search))
            statement = (selected.select(Delivery.id).order_by(Delivery.created_at.desc()).limit(51)
                         .compile(db.engine, compile_kwargs={"literal_binds": True}))
            plan = " ".join(row[3] for row in db.session.execute(text(f"EXPLAIN QUERY PLAN {statement}")))
            assert "USING INDEX ix_deliveries_event_id" in plan, plan


def test_the_count_says_how_many_the_filter_shows_and_stops_at_its_cap(app, login, make_webhook, monkeypatch):
    from notify import filters

    seed(app, make_webhook)
    assert "<strong>4 deliveries</strong>" in login.get("/deliveries/").text
    assert "<strong>2 deliveries</strong>" in login.get("/deliveries/?hook=order_pay_hook").text
    assert "<strong>1 delivery</strong>" in login.get("/deliveries/?hook=stock_alarm_hook").text
    assert "<strong>0 deliveries</strong>" in login.get("/deliveries/?hook=order_finish_hook").text
    chinese = login.get("/deliveries/?hook=order_pay_hook", headers={"Accept-Language": "zh-CN"}).text
    assert "<strong>2 个投递</strong>" in chinese
    monkeypatch.setattr(filters, "COUNT_CAP", 3)
    assert "<strong>More than 3 deliveries</strong>" in login.get("/deliveries/").text
    assert "<strong>超过 3 个投递</strong>" in login.get("/deliveries/", headers={"Accept-Language": "zh-CN"}).text


def test_the_filters_read_in_the_pages_language(app, login, make_channel, make_webhook):
    make_webhook("https://erp.example.com/h")
    make_channel("dingtalk", {"url": "https://oapi.dingtalk.com/robot/send?access_token=abcdef0123456789"})
    with app.app_context():
        from models import Channel

        channel = db.session.get(Channel, 1)
        channel.description = "ERP " + "x" * 100
        db.session.commit()
    page = login.get("/deliveries/", headers={"Accept-Language": "zh-CN"}).text
    options = re.findall(r"<option [^>]*>([^<]*)</option>", page)
    assert {"已送达", "失败", "重试中", "订单支付", "库存预警"} <= set(options), options
    assert not {"delivered", "failed", "order_pay_hook", "stock_alarm_hook"} & set(options)
    # Channels by their kind's label and their description, or their target (its credential masked),
    # cut short so that the choice never widens the page.
    webhook, robot = [o for o in options if " · " in o]
    assert webhook.startswith("WebHook · ERP xxx") and webhook.endswith("…") and len(webhook) <= 70
    assert robot.startswith("钉钉 · ") and "abcdef0123456789" not in robot and "••••" in robot


def test_bad_filter_values_are_no_filter_and_never_an_error(app, login, make_webhook):
    seed(app, make_webhook)
    for query in ("q=A%00B", "q=" + "9" * 500, "channel=99999999999999999999", "channel=-1", "status=nope",
                  "q=evt_zz", "before=dlv_missing"):
        response = login.get(f"/deliveries/?{query}")
        assert response.status_code == 200, query
    assert len(listed(login.get("/deliveries/?channel=99999999999999999999").text)) == 4
    assert listed(login.get("/deliveries/?q=A%00B").text) == []
    # A malformed date is never a wider selection to send again: the list explains it instead.
    response = login.get("/deliveries/redeliver?status=failed&since=27/11/2026")
    assert response.status_code == 302 and "/deliveries/?" in response.location
