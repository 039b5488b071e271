"""A channel's filters and quiet hours (notify.rules, issue 14 parts 2 and 3): through the real
events API, the ledger, a real worker and a receiver on loopback; the quiet period's end across
midnight and daylight-saving changes; the form's errors next to their fields in both languages;
the settings file; and rule evaluation against arbitrary event data (Hypothesis). Runs on SQLite
and PostgreSQL."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extensions import db
from models import Channel, Delivery, Event
from models.base import utcnow
from notify import channels as channel_service
from notify import dispatch, hooks, queue, rules, settings_io, shop_settings
from tests.strategies import JSON_VALUES

VPN = {"path": "vpn", "name": "VPN Monthly Plan", "price": "128.00", "currency": "CNY"}
CHEAP = {"path": "sticker", "name": "Sticker", "price": "5.00", "currency": "CNY"}


@pytest.fixture
def receiver(local_receiver):
    return local_receiver(lambda _path, _headers: (200, {}, b"ok", 0))


@pytest.fixture
def api(client, api_token):
    def call(method: str, path: str, body=None):
        response = client.open(f"/api/v1{path}", method=method, json=body,
                               headers={"Authorization": f"Bearer {api_token}"})
        return response.status_code, response.get_json()
    return call


@pytest.fixture
def channel_with(app, receiver):
    """A WebHook to `receiver` + `path` with these rules (through the domain, as the form saves them)."""
    def make(path: str, rules_=None, hooks_=None, description: str = "") -> int:
        with app.app_context():
            channel = channel_service.apply(
                Channel(kind="webhook"), config={"url": receiver.url + path, "auth_mode": "signature"},
                secret="whsec_test_secret_0123456789", hooks_=list(hooks_ or hooks.HOOK_NAMES), enabled=True,
                description=description, rules_=rules_)
            db.session.add(channel)
            db.session.commit()
            return channel.id
    return make


def order(amount="128.00", currency="CNY", path="vpn", order_no="AP1") -> dict:
    return {"order": {"order_no": order_no, "status": "paid", "product": {"path": path, "name": path},
                      "quantity": 1, "amount": amount, "currency": currency,
                      "created_at": "2026-11-27T10:30:00.000Z"}}


def deliveries_of(app, event_id: str) -> dict[int, Delivery]:
    with app.app_context():
        return {d.channel_id: d for d in db.session.scalars(db.select(Delivery).where(Delivery.event_id == event_id))}


def filtered_of(app, event_id: str):
    with app.app_context():
        return db.session.get(Event, event_id).filtered


def page(client, url: str, language: str = "en") -> str:
    response = client.get(url, headers={"Accept-Language": "zh-CN" if language == "zh" else "en"})
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", "", html).split())


# -- the filters, through the API and the ledger --------------------------------------------------
def test_an_order_below_the_minimum_reaches_only_the_other_channel_and_its_page_says_why(
        app, api, login, channel_with, receiver, worker):
    big_only = channel_with("/big", {"min_amount": "100"}, description="Boss")
    everyone = channel_with("/all")
    status, small = api("POST", "/events", {"event": "order_pay_hook", "data": order("50.00")})
    assert status == 202 and small["deliveries"] == 1
    status, large = api("POST", "/events", {"event": "order_pay_hook", "data": order("100.00", order_no="AP2")})
    assert large["deliveries"] == 2  # "at or above": exactly the minimum passes
    worker()

    assert set(deliveries_of(app, small["id"])) == {everyone}
    assert filtered_of(app, small["id"]) == [{"channel_id": big_only, "reason": {
        "code": "filtered_amount", "params": {"amount": "50.00", "minimum": "100.00", "currency": "CNY"}}}]
    assert filtered_of(app, large["id"]) is None
    assert sorted(path for path, _ in receiver.requests) == ["/all", "/all", "/big"]

    english = text_of(page(login, f"/deliveries/events/{small['id']}"))
    assert "Filtered by WebHook · Boss: order amount CN¥50.00 is below CN¥100.00" in english
    chinese = text_of(page(login, f"/deliveries/events/{small['id']}", "zh"))
    assert "WebHook · Boss" in chinese and "订单金额 ¥50.00 低于 ¥100.00" in chinese
    # The channel is named as it is called now, not as it was.
    with app.app_context():
        db.session.get(Channel, big_only).description = "Owner"
        db.session.commit()
    assert "Filtered by WebHook · Owner:" in text_of(page(login, f"/deliveries/events/{small['id']}"))


def test_an_order_in_another_currency_is_not_compared_and_is_sent(app, api, channel_with):
    channel = channel_with("/big", {"min_amount": "100.00"})
    status, body = api("POST", "/events", {"event": "order_pay_hook", "data": order("5.00", currency="USD")})
    assert status == 202 and set(deliveries_of(app, body["id"])) == {channel}


def test_products_filter_orders_and_stock_alarms_from_the_ledger(app, api, channel_with, worker, receiver):
    vpn_only = channel_with("/vpn", {"products": ["vpn"]})
    everyone = channel_with("/all")
    assert api("POST", "/products", VPN)[0] == 201
    assert api("POST", "/products", dict(CHEAP, inventory=3, low_stock_threshold=2))[0] == 201
    api("POST", "/orders", {"product": "sticker", "order_no": "S1", "quantity": 1})
    api("POST", "/orders", {"product": "vpn", "order_no": "V1"})
    assert api("POST", "/orders/S1/pay")[0] == 200  # 3 → 2: the low-stock alarm fires too
    assert api("POST", "/orders/V1/pay")[0] == 200
    worker()
    with app.app_context():
        events = {(e.hook, (e.data.get("order") or e.data)["product"]["path"] if "order" in e.data
                   else e.data["product"]["path"]): e for e in db.session.scalars(db.select(Event))}
        sticker_paid, alarm = events[("order_pay_hook", "sticker")], events[("stock_alarm_hook", "sticker")]
        vpn_paid = events[("order_pay_hook", "vpn")]
        for event in (sticker_paid, alarm):
            assert {d.channel_id for d in event.deliveries} == {everyone}
            assert event.filtered == [{"channel_id": vpn_only, "reason": {
                "code": "filtered_product", "params": {"product": "sticker", "count": 1}}}]
        assert {d.channel_id for d in vpn_paid.deliveries} == {vpn_only, everyone}
        assert all(d.status == "delivered" for e in events.values() for d in e.deliveries)


def test_the_daily_report_is_never_filtered_by_amount_or_product(app, channel_with):
    channel = channel_with("/f", {"min_amount": "1000", "products": ["vpn"]})
    with app.app_context():
        event = dispatch.emit("order_count_amount_hook", hooks.get("order_count_amount_hook").sample, source="report")
        assert len(event.delivery_ids) == 1 and db.session.get(Event, event.id).filtered is None
        # …while an order event without a product is left out by the products filter.
        event = dispatch.emit("order_pay_hook", {"order": {"order_no": "X", "amount": "2000.00"}})
        assert event.delivery_ids == ()
        assert db.session.get(Event, event.id).filtered[0]["reason"]["code"] == "filtered_no_product"
    assert channel


def test_test_events_from_the_api_are_left_out_but_the_test_button_always_reaches_the_channel(
        app, api, login, channel_with, worker, receiver):
    no_tests = channel_with("/live", {"tests": False})
    status, body = api("POST", "/events", {"event": "order_pay_hook", "data": order(), "test": True})
    assert status == 202 and body["deliveries"] == 0
    assert filtered_of(app, body["id"])[0]["reason"]["code"] == "filtered_test"
    assert api("POST", "/events", {"event": "order_pay_hook", "data": order(), "test": "yes"})[0] == 400
    assert api("POST", "/events", {"event": "order_pay_hook", "data": order()})[1]["deliveries"] == 1
    # The Test button is not an event from the shop: it reaches the channel whatever its filters.
    response = login.post(f"/settings/notifications/channels/{no_tests}/test", data={"hook": "order_pay_hook"})
    assert response.status_code == 302 and "/deliveries/dlv_" in response.headers["Location"]
    worker()
    assert len(receiver.requests) == 2
    sent = [json.loads(body) for body, _ in receiver.received]
    assert sorted(item["test"] for item in sent) == [False, True]


def test_an_event_every_filter_left_out_is_found_by_the_search_box(app, api, login, channel_with):
    channel_with("/big", {"min_amount": "100"})
    event_id = api("POST", "/events", {"event": "order_pay_hook", "data": order("1.00")})[1]["id"]
    response = login.get(f"/deliveries/?q={event_id.upper()}")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/deliveries/events/{event_id}")
    assert login.get("/deliveries/events/evt_000000000000000000000000").status_code == 404


def test_the_delivery_page_links_to_its_event_which_lists_every_delivery(app, api, login, channel_with):
    first, second = channel_with("/a"), channel_with("/b")
    event_id = api("POST", "/events", {"event": "order_pay_hook", "data": order()})[1]["id"]
    delivered = deliveries_of(app, event_id)
    html = page(login, f"/deliveries/{delivered[first].id}")
    assert f'href="/deliveries/events/{event_id}"' in html
    assert f'href="/deliveries/events/{event_id}"' in page(login, f"/deliveries/?q={event_id}")
    html = page(login, f"/deliveries/events/{event_id}")
    for delivery in delivered.values():
        assert f'href="/deliveries/{delivery.id}"' in html
    assert second


# -- quiet hours ---------------------------------------------------------------------------------------
def at(zone: str, text: str) -> datetime:
    """A wall-clock time in `zone` ("2026-03-28 23:00") as naive UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(timezone.utc).replace(tzinfo=None)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


NIGHT = rules.parse({"quiet": {"from": "22:00", "to": "08:00", "urgent": list(rules.DEFAULT_URGENT)}})


@pytest.mark.parametrize("zone, now, end", [
    # Across midnight, in Beijing time (no daylight saving): before midnight, after, and outside.
    ("Asia/Shanghai", "2026-11-27 23:30", "2026-11-28 00:00"),  # 08:00 +08:00 is 00:00 UTC
    ("Asia/Shanghai", "2026-11-28 03:00", "2026-11-28 00:00"),
    ("Asia/Shanghai", "2026-11-28 22:00", "2026-11-29 00:00"),  # "from" is inside
    ("Asia/Shanghai", "2026-11-28 07:59", "2026-11-28 00:00"),
    ("Asia/Shanghai", "2026-11-28 08:00", None),  # "to" is outside
    ("Asia/Shanghai", "2026-11-28 12:00", None),
    # Berlin: a winter night (+01:00), a summer night (+02:00), and the nights the clocks change.
    ("Europe/Berlin", "2026-01-10 23:00", "2026-01-11 07:00"),
    ("Europe/Berlin", "2026-07-10 23:00", "2026-07-11 06:00"),
    ("Europe/Berlin", "2026-03-28 23:00", "2026-03-29 06:00"),  # went to bed in +01:00, wakes in +02:00
    ("Europe/Berlin", "2026-10-24 23:00", "2026-10-25 07:00"),  # went to bed in +02:00, wakes in +01:00
])
def test_the_quiet_period_ends_at_the_merchants_to_time_across_midnight_and_dst(zone, now, end):
    assert rules.quiet_until(NIGHT, "order_pay_hook", at(zone, now), zone) == (utc(end) if end else None)


def test_a_to_time_the_clocks_skip_or_repeat_ends_when_the_clock_first_shows_it():
    ending = rules.parse({"quiet": {"from": "22:00", "to": "02:30"}})
    # 29 March 2026, 02:00 → 03:00 in Berlin: 02:30 never shows; the period ends at the jump.
    assert rules.quiet_until(ending, "order_pay_hook", at("Europe/Berlin", "2026-03-28 23:00"),
                             "Europe/Berlin") == utc("2026-03-29 01:00")
    # 25 October 2026, 03:00 → 02:00: 02:30 shows twice; the first time.
    assert rules.quiet_until(ending, "order_pay_hook", at("Europe/Berlin", "2026-10-24 23:00"),
                             "Europe/Berlin") == utc("2026-10-25 00:30")


def test_urgent_hooks_and_rules_without_quiet_hours_are_never_held():
    now = at("Asia/Shanghai", "2026-11-28 03:00")
    for hook in rules.DEFAULT_URGENT:
        assert rules.quiet_until(NIGHT, hook, now, "Asia/Shanghai") is None
    assert rules.quiet_until(NIGHT, "order_count_amount_hook", now, "Asia/Shanghai") is not None  # it waits
    assert rules.quiet_until(rules.parse({"min_amount": "1"}), "order_pay_hook", now, "Asia/Shanghai") is None
    custom = rules.parse({"quiet": {"from": "22:00", "to": "08:00", "urgent": ["order_pay_hook"]}})
    assert rules.quiet_until(custom, "order_pay_hook", now, "Asia/Shanghai") is None
    assert rules.quiet_until(custom, "stock_alarm_hook", now, "Asia/Shanghai") is not None


def test_in_quiet_hours_a_delivery_is_parked_until_they_end_in_the_database_and_in_redis(
        app, api, login, channel_with):
    zone = "Asia/Shanghai"
    with app.app_context():
        shop_settings.save({"timezone": zone})
        db.session.commit()
    # Quiet hours around the present moment, whatever it is: from two hours ago to two hours ahead
    # (across midnight for part of every day).
    local_now = datetime.now(ZoneInfo(zone)).replace(tzinfo=None)
    start, stop = (local_now - timedelta(hours=2)), (local_now + timedelta(hours=2))
    quiet = channel_with("/quiet", {"quiet": {"from": start.strftime("%H:%M"), "to": stop.strftime("%H:%M"),
                                              "urgent": ["order_out_of_stock_hook"]}})
    loud = channel_with("/loud")
    expected = stop.replace(second=0, microsecond=0).replace(tzinfo=ZoneInfo(zone)).astimezone(timezone.utc) \
        .replace(tzinfo=None)

    event_id = api("POST", "/events", {"event": "order_pay_hook", "data": order()})[1]["id"]
    parked, sent = deliveries_of(app, event_id)[quiet], deliveries_of(app, event_id)[loud]
    assert (parked.fold, parked.status, parked.next_attempt_at) == ("quiet", "pending", expected)
    assert sent.fold is None and sent.next_attempt_at <= utcnow()
    with app.app_context():
        ready = queue.get_redis().zscore(queue.key("ready"), queue.member(quiet, parked.id))
        assert ready == expected.replace(tzinfo=timezone.utc).timestamp()
        now_score = queue.get_redis().zscore(queue.key("ready"), queue.member(loud, sent.id))
        assert abs(now_score - datetime.now(timezone.utc).timestamp()) < 30
    assert "Waiting for the end of the channel's quiet hours" in page(login, f"/deliveries/{parked.id}")
    assert "正在等待此渠道的免打扰时段结束" in page(login, f"/deliveries/{parked.id}", "zh")

    # An urgent hook goes at once; so does a Test, whatever the hook.
    urgent_id = api("POST", "/events", {"event": "order_out_of_stock_hook", "data": order()})[1]["id"]
    urgent = deliveries_of(app, urgent_id)[quiet]
    assert urgent.fold is None and urgent.next_attempt_at <= utcnow()
    with app.app_context():
        test_id = channel_service.send_test(db.session.get(Channel, quiet), "order_pay_hook")
        test = db.session.get(Delivery, test_id)
        assert test.fold is None and test.next_attempt_at <= utcnow()
        # The daily report is not urgent: it waits with the rest.
        report = dispatch.emit("order_count_amount_hook", hooks.get("order_count_amount_hook").sample)
        held = {d.channel_id: d for d in db.session.scalars(db.select(Delivery).where(
            Delivery.event_id == report.id))}[quiet]
        assert (held.fold, held.next_attempt_at) == ("quiet", expected)


# -- the settings page ----------------------------------------------------------------------------
def form_data(**rules_fields) -> dict:
    return {"url": "https://example.com/hooks", "auth_mode": "signature", "secret": "whsec_test_secret_0123456789",
            "hooks": ["order_pay_hook", "order_out_of_stock_hook"], "enabled": "y", **rules_fields}


@pytest.mark.parametrize("language, words", [
    ("en", {"rules_min_amount": "at most two decimals", "quiet_from": "HH:MM", "quiet_to": "differ",
            "rules_product_paths": "not a product path"}),
    ("zh", {"rules_min_amount": "两位小数", "quiet_from": "HH:MM", "quiet_to": "不同",
            "rules_product_paths": "不是商品路径"}),
])
def test_the_form_refuses_bad_rules_next_to_each_field_in_both_languages(app, login, language, words):
    headers = {"Accept-Language": "zh-CN" if language == "zh" else "en"}
    bad = form_data(rules_min_amount="12.345", rules_product_paths="vpn, ../etc", quiet_from="24:00", quiet_to="")
    html = login.post("/settings/notifications/webhooks/new", data=bad, headers=headers).get_data(as_text=True)
    for field in ("rules_min_amount", "quiet_from", "rules_product_paths"):
        error = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', html)
        assert error and words[field] in error.group(1), (field, error and error.group(1))
    same = form_data(quiet_from="22:00", quiet_to="22:00")
    html = login.post("/settings/notifications/webhooks/new", data=same, headers=headers).get_data(as_text=True)
    error = re.search(r'<p class="error" id="quiet_to-error">([^<]*)</p>', html)
    assert error and words["quiet_to"] in error.group(1)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Channel.id))) == 0


def test_the_form_saves_rules_and_the_list_summarises_them(app, login, api):
    api("POST", "/products", VPN)
    api("POST", "/products", CHEAP)
    data = form_data(rules_min_amount="100", rules_products=["vpn"], rules_product_paths="giftcard",
                     quiet_from="22:00", quiet_to="08:00", quiet_urgent=["order_out_of_stock_hook"])
    response = login.post("/settings/notifications/webhooks/new", data=data)
    assert response.status_code == 302
    with app.app_context():
        channel = db.session.scalars(db.select(Channel)).one()
        assert channel.rules == {"min_amount": "100.00", "products": ["giftcard", "vpn"],
                                 "quiet": {"from": "22:00", "to": "08:00", "urgent": ["order_out_of_stock_hook"]}}
        channel_id = channel.id
    assert "≥ CN¥100.00 · 2 products · quiet 22:00–08:00" in page(login, "/settings/notifications/")
    assert "≥ ¥100.00 · 2 个商品 · 免打扰 22:00–08:00" in page(login, "/settings/notifications/", "zh")
    # The edit page shows them back: the known product ticked, the other typed, the times.
    html = page(login, f"/settings/notifications/webhooks/{channel_id}")
    assert re.search(r'name="rules_products" value="vpn" checked', html)
    assert 'value="giftcard"' in html and 'value="22:00"' in html
    # A product ticked that the ledger does not have is refused.
    refused = login.post(f"/settings/notifications/webhooks/{channel_id}", data=form_data(rules_products=["ghost"]))
    assert refused.status_code == 200 and 'id="rules_products-error"' in refused.get_data(as_text=True)
    # Emptied, the rules are gone.
    assert login.post(f"/settings/notifications/webhooks/{channel_id}", data=form_data()).status_code == 302
    with app.app_context():
        assert db.session.get(Channel, channel_id).rules is None


def test_the_settings_file_carries_rules_both_ways(app, channel_with):
    saved = {"min_amount": "99.50", "products": ["vpn"], "tests": False,
             "quiet": {"from": "23:00", "to": "07:30", "urgent": ["stock_alarm_hook"]}}
    channel_id = channel_with("/r", saved)
    with app.app_context():
        exported = settings_io.export(include_secrets=True)
        assert exported["channels"][0]["rules"] == saved
        db.session.get(Channel, channel_id).rules = None
        db.session.commit()
        assert settings_io.import_(json.dumps(exported))["updated"] == 1
        assert db.session.get(Channel, channel_id).rules == saved
        # A file without "rules" (an older version's) leaves them; null removes them.
        del exported["channels"][0]["rules"]
        settings_io.import_(json.dumps(exported))
        assert db.session.get(Channel, channel_id).rules == saved
        exported["channels"][0]["rules"] = None
        settings_io.import_(json.dumps(exported))
        assert db.session.get(Channel, channel_id).rules is None
        # Bad rules are refused like the form refuses them, naming the place.
        exported["channels"][0]["rules"] = {"min_amount": "-1", "quiet": {"from": "7:00", "to": "08:00"}}
        with pytest.raises(settings_io.ImportError_) as refused:
            settings_io.import_(json.dumps(exported))
        assert {p.split(":")[0] for p in refused.value.problems} == {"channels[0].rules.min_amount",
                                                                     "channels[0].rules.quiet_from"}


# -- rule evaluation against anything ------------------------------------------------------------
STORED_RULES = st.one_of(JSON_VALUES, st.fixed_dictionaries({}, optional={
    "min_amount": st.one_of(JSON_VALUES, st.decimals(allow_nan=True).map(str)),
    "products": st.one_of(JSON_VALUES, st.lists(st.text(max_size=5), max_size=3)),
    "tests": JSON_VALUES,
    "quiet": st.one_of(JSON_VALUES, st.fixed_dictionaries({}, optional={
        "from": st.one_of(JSON_VALUES, st.sampled_from(["22:00", "00:00", "23:59"])),
        "to": st.one_of(JSON_VALUES, st.sampled_from(["08:00", "22:00"])),
        "urgent": JSON_VALUES})),
}))
EVENT_DATA = st.one_of(JSON_VALUES, st.fixed_dictionaries({"order": st.one_of(JSON_VALUES, st.fixed_dictionaries(
    {}, optional={"amount": JSON_VALUES, "currency": JSON_VALUES,
                  "product": st.one_of(JSON_VALUES, st.fixed_dictionaries({}, optional={"path": JSON_VALUES}))}))}))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored=STORED_RULES, data=EVENT_DATA, hook=st.sampled_from(hooks.HOOK_NAMES), is_test=st.booleans(),
       moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 1, 1)))
def test_rules_never_raise_whatever_is_stored_or_sent(app, stored, data, hook, is_test, moment):
    with app.test_request_context():
        parsed = rules.parse(stored)
        why = rules.left_out(parsed, hook, data, is_test=is_test, currency="CNY")
        if why is not None:
            assert str(why) and why.english()
        end = rules.quiet_until(parsed, hook, moment, "Europe/Berlin")
        assert end is None or moment < end <= moment + timedelta(days=1, hours=1)
        rules.summary(stored, "CNY")
        cleaned, errors = rules.clean(stored)
        assert cleaned is None or not errors


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=JSON_VALUES)
def test_an_amount_that_cannot_be_read_is_not_at_or_above_the_minimum(app, amount):
    minimum = rules.parse({"min_amount": "0"})
    with app.test_request_context():
        why = rules.left_out(minimum, "order_pay_hook", {"order": {"amount": amount}}, is_test=False, currency="CNY")
    readable = rules._decimal(amount)
    if readable is None:
        assert why is not None and why.code == "filtered_amount_unreadable"
    else:
        assert (why is None) == (readable >= Decimal(0))


def test_recovery_does_not_send_what_the_filters_leave_out(app, channel_with):
    from notify import recovery

    channel_id = channel_with("/big", {"min_amount": "100"})
    with app.app_context():
        since = utcnow() - timedelta(minutes=1)
        left_out = dispatch.emit("order_pay_hook", order("5.00")).id  # filtered while enabled
        channel = db.session.get(Channel, channel_id)
        channel.enabled = False
        db.session.commit()
        dispatch.emit("order_pay_hook", order("6.00", order_no="AP2"))  # while disabled: below the minimum
        missed = dispatch.emit("order_pay_hook", order("600.00", order_no="AP3")).id  # really missed
        channel.enabled = True
        db.session.commit()
        assert recovery.preview(channel, since)["missed"] == {"order_pay_hook": 1}
        assert recovery.recover(channel, since) == 1
        assert [d.event_id for d in db.session.scalars(db.select(Delivery).where(Delivery.channel_id == channel_id))] \
            == [missed]
        assert db.session.get(Event, left_out).filtered[0]["channel_id"] == channel_id


def test_the_cli_emits_test_events_that_a_channel_may_leave_out(app, runner, channel_with):
    channel_with("/live", {"tests": False})
    result = runner.invoke(args=["emit", "order_pay_hook", "--data", json.dumps(order()), "--test"])
    assert result.exit_code == 0 and ": 0 deliveries queued" in result.output
    result = runner.invoke(args=["emit", "order_pay_hook", "--data", json.dumps(order())])
    assert result.exit_code == 0 and ": 1 deliveries queued" in result.output


def test_a_stored_minimum_no_form_would_save_is_still_summarised(app):
    with app.test_request_context():
        assert rules.summary({"min_amount": "1e999999"}, "CNY") == "≥ 1E+999999 CNY"


def test_changing_the_quiet_hours_re_times_what_waits_for_them(app, api, login, channel_with):
    zone = "Asia/Shanghai"
    with app.app_context():
        shop_settings.save({"timezone": zone})
        db.session.commit()
    local_now = datetime.now(ZoneInfo(zone)).replace(tzinfo=None)
    start, stop = local_now - timedelta(hours=2), local_now + timedelta(hours=2)
    quiet = {"from": start.strftime("%H:%M"), "to": stop.strftime("%H:%M"), "urgent": []}
    channel_id = channel_with("/quiet", {"quiet": quiet})
    event_id = api("POST", "/events", {"event": "order_pay_hook", "data": order()})[1]["id"]
    parked = deliveries_of(app, event_id)[channel_id]
    assert parked.fold == "quiet" and parked.next_attempt_at > utcnow()
    # Later: one more hour of quiet.
    later = (stop + timedelta(hours=1)).strftime("%H:%M")
    data = {"url": "http://x.invalid", "auth_mode": "signature", "hooks": list(hooks.HOOK_NAMES), "enabled": "y",
            "quiet_from": quiet["from"], "quiet_to": later}
    with app.app_context():
        data["url"] = db.session.get(Channel, channel_id).config["url"]
    assert login.post(f"/settings/notifications/webhooks/{channel_id}", data=data).status_code == 302
    moved = deliveries_of(app, event_id)[channel_id]
    assert moved.fold == "quiet" and moved.next_attempt_at == parked.next_attempt_at + timedelta(hours=1)
    with app.app_context():
        score = queue.get_redis().zscore(queue.key("ready"), queue.member(channel_id, parked.id))
        assert score == moved.next_attempt_at.replace(tzinfo=timezone.utc).timestamp()
    # No quiet hours any more: it goes now, on its own.
    del data["quiet_from"], data["quiet_to"]
    assert login.post(f"/settings/notifications/webhooks/{channel_id}", data=data).status_code == 302
    released = deliveries_of(app, event_id)[channel_id]
    assert released.fold is None and released.next_attempt_at <= utcnow()


def test_the_events_api_lists_which_channels_left_an_event_out_and_why(app, api, channel_with):
    big_only = channel_with("/big", {"min_amount": "100"})
    channel_with("/all")
    small = api("POST", "/events", {"event": "order_pay_hook", "data": order("50.00")})[1]["id"]
    listed = {event["id"]: event for event in api("GET", "/events")[1]["events"]}
    assert listed[small]["filtered"] == [{"channel_id": big_only, "reason": {
        "code": "filtered_amount", "params": {"amount": "50.00", "minimum": "100.00", "currency": "CNY"}},
        "message": "order amount CN¥50.00 is below CN¥100.00"}]
    assert len(listed[small]["deliveries"]) == 1
