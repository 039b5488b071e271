"""Messages carry data, not markup, and rendering never raises.

Whatever an event's data holds (it may have been stored before any check at the door, or come
from the ledger), `messages.summarize()` and every transport's `prepare()` build a message: values
from the shop and its buyers are one line each, escaped for each target's markup, and only the
product's templates make links, mentions, headings and tags. End to end, the injection cases are
asserted on what the fake DingTalk and WeCom servers and a real SMTP server receive; a Hypothesis
property covers arbitrary JSON for every hook and every channel kind.
"""
from __future__ import annotations

import json
import math
import re
from datetime import datetime
from zoneinfo import ZoneInfo
from email import message_from_bytes, policy
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extensions import db
from models import Channel, Delivery, DeliveryStatus, Event
from models.base import utcnow
from notify import dispatch, hooks, messages
from notify.channels import CannotPrepare, DeliverySettings, transport_for
from notify.channels.webhook.transport import dumps_without_recursion, encode_body

WECOM_KEY = "wecomkey0000000000009"
DINGTALK_TOKEN = "a1b2c3d4e5f60718293a4b5c6d7e8f90"

# What a shop (or a buyer typing into it) could put in a value, aimed at each target's markup.
HOSTILE_ORDER = {"order": {
    "order_no": "AP1 [click here](http://evil.example/refund)",
    "product": {"name": 'VPN ![x](http://evil.example/p.png) <font color="warning">FREE</font> **50% off**',
                "path": "vpn <@zhangsan>"},
    # Not an amount: it is shown as it came, and must still be one line.
    "amount": "12.00\n### Refund at http://evil.example\n- Buyer: **admin**",
    "currency": "CNY",
    "buyer_email": "@13800000000 @all <http://evil.example>",
    "paid_at": "2026-11-27T10:31:12Z",
}}


def store(app, hook: str, data) -> list[str]:
    """Store an event as it is, past any check at the door (as an older version could have
    accepted it), with a delivery for each subscribed channel; the workers are told at commit."""
    with app.app_context():
        event = Event(hook=hook, data=data, source="api")
        db.session.add(event)
        db.session.flush()
        rows = [dict(event_id=event.id, hook=hook, channel=target) for target in dispatch.subscribed_channels(hook)]
        ids = dispatch.add_deliveries(rows, dispatch.full_schedule())
        db.session.commit()
        return list(ids)


def settled(app, delivery_ids):
    def check():
        with app.app_context():
            rows = db.session.scalars(db.select(Delivery.status).where(Delivery.id.in_(delivery_ids))).all()
            return all(status in DeliveryStatus.FINAL for status in rows)
    return check


def statuses(app, delivery_ids) -> list[str]:
    with app.app_context():
        return db.session.scalars(db.select(Delivery.status).where(Delivery.id.in_(delivery_ids))).all()


def summarize(app, hook: str, data, **config):
    app.config.update(config)
    with app.app_context(), messages.merchant_locale():
        return messages.summarize(hook, data)


# -- what the markup checks look for ------------------------------------------------------------
FACT_LINE = re.compile(r"- [^*\n]+: \*\*[^*\n]*\*\*")        # `- Label: **value**`, nothing else
DAY_LINE = re.compile(r"- \*\*[^*\n]+\*\*: [^*\n]+ · \*\*[^*\n]*\*\*")
MENTION = re.compile(r"(?<![\w.+-])@\w")                     # what a chat reads as @someone
SCHEME_LINK = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def assert_chat_markdown_is_the_templates(content: str) -> None:
    """The markdown of chat.md, with the product's own markup removed, has none left: the data
    made no link, image, tag, mention, heading or emphasis, and every value stayed on its line."""
    lines = content.split("\n")
    assert lines[0].startswith("### ") and not lines[0][4:].startswith("#")
    assert re.fullmatch(r'(<font color="(info|comment|warning)">[^<>*]+</font>|\*\*[^*]+\*\*)( · [^*<>]+)?', lines[1])
    for text in lines[2:]:
        assert text == "" or FACT_LINE.fullmatch(text) or DAY_LINE.fullmatch(text) or text.startswith("Times in ") \
            or text.startswith("时间为"), text
    own = re.sub(r'^<font color="(info|comment|warning)">|</font>', "", "\n".join([lines[0]] + lines[2:] + [
        re.sub(r'<font color="(info|comment|warning)">|</font>', "", lines[1])]))
    for mark in "[]<>`":
        assert mark not in own, (mark, content)
    assert not MENTION.search(own), content
    assert not SCHEME_LINK.search(own), content


# -- the cases of issue 12, one by one -----------------------------------------------------------
@pytest.mark.parametrize("hook, data", [
    ("order_pay_hook", {"order": {"product": "abc"}}),
    ("order_pay_hook", {"order": "abc"}),
    ("order_pay_hook", {"order": ["x", 1]}),
    ("order_pay_hook", "not an object at all"),
    ("order_pay_hook", None),
    ("stock_alarm_hook", {"product": ["x"], "inventory": {"n": 1}, "threshold": True}),
    ("key_stock_alarm_hook", {"product": 7, "available_keys": float("nan"), "threshold": float("inf")}),
    ("order_count_amount_hook", {"days": "yesterday"}),
    ("order_count_amount_hook", {"days": [None, 1, {"date": 5, "order_count": float("inf"), "amount": [1]}]}),
])
def test_wrong_types_at_any_level_are_shown_as_question_marks(app, hook, data):
    summary = summarize(app, hook, data)
    assert summary.title and all(value and "\n" not in value for _, value in summary.facts)
    if hook == "order_pay_hook":
        assert summary.title == "Order ? paid — ?"
    if data == {"order": {"product": "abc"}}:
        assert ("Product", "abc") in summary.facts  # a bare string is the product's name


def test_lone_surrogates_are_replaced(app):
    summary = summarize(app, "order_pay_hook", {"order": {"order_no": "A\ud800B", "product": {"name": "\udfff"},
                                                          "amount": "1\ud83d"}})
    assert summary.title == "Order A\ufffdB paid — 1\ufffd"
    assert ("Product", "\ufffd") in summary.facts
    assert "\ufffd" in messages.without_lone_surrogates("\ud83d") and messages.utf8("a\ud800") == "a\ufffd".encode()
    # A surrogate pair (two code points in Python) is the character it stands for.
    assert messages.without_lone_surrogates("\ud83d\ude00") == "😀"


@pytest.mark.parametrize("tz", ["Asia/Shanghai", "America/New_York", "Pacific/Kiritimati", "Etc/GMT+12"])
@pytest.mark.parametrize("moment, unreachable", [
    ("9999-12-31T23:59:59Z", "9999-12-31 23:59:59 UTC"),
    ("0001-01-01T00:00:00+05:00", "0001-01-01 00:00:00 UTC+05:00"),
    ("0001-01-01T00:00:00-05:00", "0001-01-01 00:00:00 UTC-05:00"),
    ("0001-01-01T00:00:00Z", "0001-01-01 00:00:00 UTC"),
    ("9999-12-31T23:59:59.999999-14:00", "9999-12-31 23:59:59 UTC-14:00"),
])
def test_times_at_the_ends_of_the_calendar_in_any_zone(app, tz, moment, unreachable):
    summary = summarize(app, "order_pay_hook", {"order": {"order_no": "A1", "paid_at": moment}},
                        MERCHANT_TIMEZONE=tz)
    try:  # where the zone reaches the moment, it is shown there; else with the offset it came with
        local = datetime.fromisoformat(moment).astimezone(ZoneInfo(tz))
        expected = f"{local.year:04d}-{local:%m-%d %H:%M:%S}"
    except OverflowError:
        expected = unreachable
    assert dict(summary.facts)["Time"] == expected


def test_a_time_the_zone_reaches_is_shown_in_the_zone(app):
    summary = summarize(app, "order_pay_hook", {"order": {"paid_at": "9999-12-31T10:00:00Z"}},
                        MERCHANT_TIMEZONE="Asia/Shanghai")
    assert dict(summary.facts)["Time"] == "9999-12-31 18:00:00"
    summary = summarize(app, "order_pay_hook", {"order": {"paid_at": "9999-12-31T20:00:00Z"}},
                        MERCHANT_TIMEZONE="Asia/Shanghai")
    assert dict(summary.facts)["Time"] == "9999-12-31 20:00:00 UTC"


@pytest.mark.parametrize("amount, shown", [
    ("1e999999", "1e999999 CNY"),            # formatting it would write a million digits
    (10 ** 4000, "1" + "0" * 198 + "… CNY"),  # as json.loads reads it; bounded like any value
    (float("nan"), "? CNY"),
    (float("inf"), "? CNY"),
    ("NaN", "NaN CNY"),
    (True, "true CNY"),
    ("128.00", "CN¥128.00"),
    (128, "CN¥128.00"),
    ("0.000000000000000000001", "CN¥0.00"),
])
def test_amounts_that_are_not_amounts_are_shown_as_they_came(app, amount, shown):
    summary = summarize(app, "order_pay_hook", {"order": {"order_no": "A1", "amount": amount, "currency": "CNY"}})
    assert dict(summary.facts)["Amount"] == shown


def test_a_bad_currency_is_shown_not_used(app):
    summary = summarize(app, "order_pay_hook", {"order": {"amount": "5", "currency": "<b>euros</b>\nmore"}})
    assert dict(summary.facts)["Amount"] == "5 <b>euros</b> more"  # escaped by each target when rendered
    summary = summarize(app, "order_pay_hook", {"order": {"amount": "5", "currency": "usd"}})
    assert dict(summary.facts)["Amount"] == "$5.00"


def test_a_value_is_one_bounded_line_without_mentions_or_links():
    value = "a\r\nb\u2028c\x85d\x00e\x1bf\u202eg\x0bh  " + "x" * 500
    text = messages.line(value)
    assert text.startswith("a b c d e f g h x") and text.endswith("…") and len(text) == messages.MAX_VALUE
    assert messages.line("@13800000000 and @all, mail buyer@example.com") == \
        "＠13800000000 and ＠all, mail buyer@example.com"
    assert messages.line("see https://evil.example/a and ftp://x") == "see https：//evil.example/a and ftp：//x"
    assert messages.line(None) == "" and messages.line({"a": 1}) == "?" and messages.line([1]) == "?"
    assert messages.line(float("nan")) == "?" and messages.line(1.5) == "1.5" and messages.line(False) == "false"


def test_markdown_escaping_leaves_no_markup_and_keeps_words():
    assert messages.escape_markdown("[x](y) ![i](j) <@u> <font> **b** `c` ~~s~~ _e_ a\\") == \
        "［x］(y) !［i］(j) ＜@u＞ ＜font＞ ＊＊b＊＊ ｀c｀ ～～s～～ ＿e＿ a＼"
    assert messages.escape_markdown("vpn_monthly & America/Los_Angeles") == "vpn_monthly & America/Los_Angeles"


# -- WebHook bodies ------------------------------------------------------------------------------
def nested(depth: int) -> dict:
    data: dict = {"leaf": "订单"}
    for _ in range(depth):
        data = {"a": [data]}
    return data


def webhook_request(app, data, hook="order_pay_hook"):
    channel = Channel(kind="webhook", config={"url": "http://127.0.0.1:9/hook", "auth_mode": "signature"},
                      secret="whsec_test_secret_0123456789")
    event = Event(id="evt_1", hook=hook, data=data, source="api", is_test=False, created_at=utcnow())
    transport = transport_for("webhook")(channel, DeliverySettings())
    return transport.prepare(event, Delivery(id="dlv_1"), 1_700_000_000_000)


@pytest.mark.parametrize("depth", [970, 5000])
def test_a_deeply_nested_event_still_goes_to_a_webhook_as_stored(app, depth):
    with app.app_context():
        request = webhook_request(app, {"order": {"order_no": "A1"}, "extra": nested(depth)})
        summary = messages.summarize("order_pay_hook", {"order": {"order_no": "A1"}, "extra": nested(depth)})
    body = request.body.decode("utf-8")
    assert body.endswith('"extra":' + '{"a":[' * depth + '{"leaf":"订单"}' + "]}" * depth + "}}")
    assert summary.title.startswith("Order A1 paid")


def test_the_writer_without_recursion_writes_what_json_writes():
    assert dumps_without_recursion({1: [True, None, 1.5, -0.0, 10 ** 30], None: {"订": "a\"\\\n\u2028"}}) == \
        json.dumps({1: [True, None, 1.5, -0.0, 10 ** 30], None: {"订": "a\"\\\n\u2028"}}, ensure_ascii=False,
                   separators=(",", ":"))
    with pytest.raises(ValueError):
        dumps_without_recursion([float("nan")])


def test_a_lone_surrogate_reaches_a_webhook_replaced(app):
    with app.app_context():
        request = webhook_request(app, {"order": {"order_no": "A\ud800B"}})
    assert json.loads(request.body)["data"] == {"order": {"order_no": "A\ufffdB"}}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("depth", [0, 3000])
def test_a_webhook_body_that_cannot_be_json_is_refused_with_a_reason(app, value, depth):
    app.config["MERCHANT_LANGUAGE"] = "zh_CN"
    data = {"order": {"amount": value}, "extra": nested(depth)}
    with app.app_context(), pytest.raises(CannotPrepare) as refused:
        webhook_request(app, data)
    assert refused.value.reason.code == "data_not_json"
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        words = str(refused.value.reason)
    assert "NaN" in words and "WebHook" in words and "无法发送" in words


@pytest.mark.parametrize("subject", [
    "[Shop] New order " + "0" * 199 + "… — ?",            # a long word beside non-ASCII: Flask-Mail's garbled
    "[Shop] Order " + "word " * 40 + "— CN¥1",
    "[Shop] 订单 " + "长" * 100 + " paid — ¥1",
    "[Shop] =?utf-8?b?SGk=?= paid",                      # an encoded word in the data stays text
    "[Shop] Order AP202611271830001234 paid — CN¥128.00",
    "[Shop] plain", "😀" * 50,
])
def test_email_subjects_read_back_to_the_character(app, subject):
    from flask_mail import Message

    from notify.channels.email.transport import encode_header

    with app.app_context():
        raw = Message(subject=encode_header(subject), recipients=["a@example.com"], body="x",
                      sender="s@example.com").as_bytes()
    head = raw.split(b"\n\n")[0].decode("ascii")
    assert message_from_bytes(raw, policy=policy.default)["Subject"] == subject
    assert head.count("Subject:") == 1 and max(len(text) for text in head.splitlines()) <= 78


# -- end to end: what the services receive ---------------------------------------------------------
def test_the_issue_12_event_is_delivered_on_every_channel_kind(app, worker, dingtalk, wecom, smtp_server,
                                                               make_channel, make_webhook, local_receiver):
    receiver = local_receiver(lambda path, headers: (200, {}, b"ok", 0))
    make_webhook(receiver.url + "/hook")
    make_channel("dingtalk", {"url": dingtalk.add_robot(DINGTALK_TOKEN)})
    make_channel("wecom", {"url": wecom.add_robot(WECOM_KEY)})
    make_channel("email", {"recipients": ["owner@example.com"]})
    ids = store(app, "order_pay_hook", {"order": {"product": "abc"}})
    worker(until=settled(app, ids))
    assert statuses(app, ids) == [DeliveryStatus.DELIVERED] * 4
    (message,) = dingtalk.robots[DINGTALK_TOKEN].messages
    assert "- Product: **abc**" in message["markdown"]["text"]
    assert "- Product: **abc**" in wecom.robots[WECOM_KEY].messages[0]["markdown"]["content"]
    (mail, _), = smtp_server.parsed()
    assert mail["Subject"] == "[Shop] Order ? paid — ?" and "Product: abc" in mail.get_body(("plain",)).get_content()
    assert len(receiver.requests) == 1


def test_dingtalk_receives_the_data_as_text_not_markup(app, worker, dingtalk, make_channel):
    app.config["MERCHANT_TIMEZONE"] = "Asia/Shanghai"
    # Mentions for stock alarms only: nothing in an order's data may ping anyone.
    make_channel("dingtalk", {"url": dingtalk.add_robot(DINGTALK_TOKEN),
                              "mentions": {"inventory": {"mobiles": "13800000000"}}})
    ids = store(app, "order_pay_hook", HOSTILE_ORDER)
    worker(until=settled(app, ids))
    (message,) = dingtalk.robots[DINGTALK_TOKEN].messages
    text, title = message["markdown"]["text"], message["markdown"]["title"]
    assert_chat_markdown_is_the_templates(text)
    assert message["at"] == {"atMobiles": [], "isAtAll": False}
    assert "\n" not in title and "@13800000000" not in text and "＠13800000000" in text
    # What the merchant reads: the words, with look-alike brackets and a colon that links nowhere.
    assert "- Order number: **AP1 ［click here］(http：//evil.example/refund)**" in text
    assert ("- Amount: **12.00 ### Refund at http：//evil.example - Buyer: ＊＊admin＊＊ CNY**") in text
    assert '＜font color="warning"＞FREE＜/font＞ ＊＊50% off＊＊' in text


def test_wecom_markdown_carries_only_the_templates_colour_and_mentions(app, worker, wecom, make_channel):
    make_channel("wecom", {"url": wecom.add_robot(WECOM_KEY), "mentions": {"order": {"user_ids": "lisi"}}})
    ids = store(app, "order_pay_hook", HOSTILE_ORDER)
    worker(until=settled(app, ids))
    (message,) = wecom.robots[WECOM_KEY].messages
    content = message["markdown"]["content"]
    # The one mention is the configured one, after the message; the one colour is the state's.
    assert content.count("<@") == 1 and content.endswith("\n<@lisi>")
    assert content.count("<font") == 1 and '<font color="info">Order Paid</font>' in content
    assert_chat_markdown_is_the_templates(content.removesuffix("\n<@lisi>"))
    assert "vpn ＜＠zhangsan＞" in content


def test_wecom_text_messages_keep_each_value_on_its_line(app, worker, wecom, make_channel):
    make_channel("wecom", {"url": wecom.add_robot(WECOM_KEY), "mentions": {"order": {"mobiles": "13800000000"}}})
    ids = store(app, "order_pay_hook", HOSTILE_ORDER)
    worker(until=settled(app, ids))
    (message,) = wecom.robots[WECOM_KEY].messages
    assert message["msgtype"] == "text" and message["text"]["mentioned_mobile_list"] == ["13800000000"]
    lines = message["text"]["content"].split("\n")
    labels = ("Order number: ", "Product: ", "Quantity: ", "Amount: ", "Buyer: ", "Time: ")
    facts = [text for text in lines[3:] if text and not text.startswith("Times in ")]
    assert [text.split(": ", 1)[0] + ": " for text in facts] == list(labels)
    assert "Amount: 12.00 ### Refund at http：//evil.example - Buyer: **admin** CNY" in lines
    assert not any(MENTION.search(text) or SCHEME_LINK.search(text) for text in lines)


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attributes, self.text = set(), set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)

    def handle_data(self, data):
        self.text.append(data)


def test_email_headers_and_html_carry_the_data_as_text(app, worker, smtp_server, make_channel):
    make_channel("email", {"recipients": ["owner@example.com"]})
    data = {"order": {"order_no": "A1\r\nBcc: victim@example.com\r\n\r\n<b>body</b>",
                      "product": {"name": '"><img src=x onerror="alert(1)">', "path": "' onmouseover='x"},
                      "amount": "1\nX-Evil: 1", "buyer_email": "<a href=\"http://evil.example\">refund</a>"}}
    ids = store(app, "order_refund_hook", data)
    worker(until=settled(app, ids))
    assert statuses(app, ids) == [DeliveryStatus.DELIVERED]
    (mail, envelope), = smtp_server.parsed()
    assert envelope.rcpt_tos == ["owner@example.com"]
    assert mail["Bcc"] is None and mail["X-Evil"] is None
    assert mail["Subject"] == "[Shop] Order A1 Bcc: victim@example.com <b>body</b> refunded — 1 X-Evil: 1"
    html = mail.get_body(("html",)).get_content()
    parsed = _Tags()
    parsed.feed(html)
    assert parsed.tags == {"html", "head", "meta", "title", "body", "p", "h1", "table", "tr", "th", "td"}
    assert parsed.attributes == {"lang", "charset", "style"}
    shown = "".join(parsed.text)
    assert '"><img src=x onerror="alert(1)"> (\' onmouseover=\'x)' in shown  # as text, whole
    assert '<a href="http：//evil.example">refund</a>' in shown
    plain = mail.get_body(("plain",)).get_content()
    assert not any(text.startswith(("Bcc", "X-Evil", "<b>")) for text in plain.splitlines())


# -- the property: any JSON, every hook, every channel kind ------------------------------------------
HOSTILE_TEXT = [
    "[click](http://evil.example)", "![i](http://evil.example/x.png)", "[x][1]", "<http://evil.example>",
    "http://evil.example/a", "HTTPS://evil.example", "www.evil.example", "<@zhangsan>", "<@all>",
    '<font color="warning">x</font>', "</font>", "<b>", "\n### injected", "\r\nBcc: victim@example.com",
    "**bold**", "__u__", "_e_", "~~s~~", "`code`", "\\", "@13800000000", "@all", "@", "\x00", "\ud800",
    "\udfff", "\ud83d\ude00", "\u2028", "\u2029", "\x85", "\u202e", "\t", "# h", "> q", "- item", "|a|b|",
    "&lt;@x&gt;", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00-05:00",
    "0001-01-01", "9999-12-31", "2026-11-27T10:31:12.000Z", "NaN", "Infinity", "-Infinity", "1e999999",
    "1E-999999", "-0", "128.00", "1_000", " 12 ", "CNY", "usd", "XYZ", "", " ", "%(no)s", "%s", "{{ 7*7 }}",
    "{% raw %}", "订单", "x" * 300,
]
text_values = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=20),
    st.lists(st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=4)), min_size=2, max_size=4).map("".join),
)
scalars = st.one_of(
    st.none(), st.booleans(), text_values,
    st.integers(), st.integers(min_value=-10 ** 400, max_value=10 ** 400), st.just(10 ** 4000),
    st.floats(),  # NaN, ±Infinity and ±1e308 included
)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(text_values, inner, max_size=4)),
                           max_leaves=12)
field_values = st.one_of(scalars, json_values)
ORDER_FIELDS = ("order_no", "status", "quantity", "amount", "currency", "buyer_email", "created_at", "paid_at",
                "cancelled_at", "refunded_at", "completed_at")
products = st.one_of(field_values, st.fixed_dictionaries({}, optional={"name": field_values, "path": field_values}))
orders = st.fixed_dictionaries({}, optional={**{name: field_values for name in ORDER_FIELDS}, "product": products})
days = st.fixed_dictionaries({}, optional={"date": field_values, "order_count": field_values,
                                           "amount": field_values, "currency": field_values})
shaped_data = st.fixed_dictionaries({}, optional={
    "order": st.one_of(orders, field_values),
    "product": products,
    "inventory": field_values, "available_keys": field_values, "threshold": field_values,
    "days": st.one_of(st.lists(st.one_of(days, field_values), max_size=8), field_values),
    "currency": field_values, "late": field_values,
})

CHANNELS = {
    # DingTalk with a keyword and mentions (of every group), so their text is added too.
    "dingtalk": dict(config={"url": f"http://127.0.0.1:9/robot/send?access_token={DINGTALK_TOKEN}", "keyword": "订单",
                             "keyword_position": "suffix",
                             "mentions": {group: {"all": False, "mobiles": ["13800000000"], "user_ids": []}
                                          for group in hooks.GROUP_LABELS}}),
    "wecom": dict(config={"url": f"http://127.0.0.1:9/cgi-bin/webhook/send?key={WECOM_KEY}",
                          "mentions": {group: {"all": False, "mobiles": [], "user_ids": ["lisi"]}
                                       for group in hooks.GROUP_LABELS}}),
    "wecom-text": dict(kind="wecom", config={"url": f"http://127.0.0.1:9/cgi-bin/webhook/send?key={WECOM_KEY}",
                                             "mentions": {group: {"all": True, "mobiles": [], "user_ids": []}
                                                          for group in hooks.GROUP_LABELS}}),
    "email": dict(config={"recipients": ["owner@example.com"]}),
    "webhook": dict(config={"url": "http://127.0.0.1:9/hook", "auth_mode": "password"}, secret="pw-0123456789"),
}


def has_nan(value) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def check_request(name: str, request, summary, data) -> None:
    """What each kind's request carries: the product's layout, and the data only as text."""
    body = json.loads(request.body) if name != "email" else None
    if name == "dingtalk":
        text = body["markdown"]["text"]
        assert text.endswith("\n\n订单\n\n@13800000000") and "\n" not in body["markdown"]["title"]
        assert body["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}
        assert_chat_markdown_is_the_templates(text.removesuffix("\n\n订单\n\n@13800000000"))
    elif name == "wecom":
        content = body["markdown"]["content"]
        assert content.endswith("\n<@lisi>") and content.count("<@") == 1 and content.count("<font") == 1
        assert_chat_markdown_is_the_templates(content.removesuffix("\n<@lisi>"))
    elif name == "wecom-text":
        assert body["text"]["mentioned_list"] == ["@all"]
        expected = {summary.title, ""} | {f"{label}: {value}" for label, value in summary.facts}
        lines = body["text"]["content"].split("\n")
        assert all(text in expected or text.startswith((summary.hook_label, "Times in ", "时间为"))
                   or " · " in text for text in lines), lines
        assert not any(MENTION.search(text) or SCHEME_LINK.search(text) for text in lines)
    elif name == "email":
        mail = message_from_bytes(request.payload, policy=policy.default)
        assert set(mail.keys()) >= {"Subject", "To", "From"} and mail["To"] == "owner@example.com"
        assert mail["Subject"] == summary.subject  # one line, and read back to the character
        parsed = _Tags()
        parsed.feed(mail.get_body(("html",)).get_content())
        assert parsed.tags <= {"html", "head", "meta", "title", "body", "p", "h1", "table", "thead", "tbody", "tr",
                               "th", "td"}
        assert parsed.attributes <= {"lang", "charset", "style"}
    else:
        assert request.headers["X-Apsdai-Token"] == "pw-0123456789"
        # The data as stored, lone surrogates replaced.
        assert body["data"] == json.loads(messages.utf8(json.dumps(data, ensure_ascii=False)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(hook=st.sampled_from(hooks.HOOK_NAMES), data=st.one_of(shaped_data, json_values),
       tz=st.sampled_from(["UTC", "Asia/Shanghai", "America/New_York", "Pacific/Kiritimati", "Etc/GMT+12"]),
       language=st.sampled_from(["en", "zh_CN"]))
def test_any_json_renders_for_every_channel_kind_as_text_not_markup(app, hook, data, tz, language):
    app.config.update(MERCHANT_TIMEZONE=tz, MERCHANT_LANGUAGE=language)
    event = Event(id="evt_p", hook=hook, data=data, source="api", is_test=False, created_at=utcnow())
    with app.app_context():
        with messages.merchant_locale():
            summary = messages.summarize(hook, data)
        for label, value in summary.facts:
            assert value and len(value.splitlines()) == 1 and "\n" not in value and len(value) <= 450, (label, value)
        for day in summary.days:
            assert all(len(part.splitlines()) == 1 for part in (day.date, day.order_count, day.amount))
        assert len(summary.title.splitlines()) == 1
        for name, spec in CHANNELS.items():
            channel = Channel(id=1, kind=spec.get("kind", name), config=spec["config"], secret=spec.get("secret"))
            transport = transport_for(channel.kind)(channel, DeliverySettings())
            if name == "webhook" and has_nan(data):
                with pytest.raises(CannotPrepare):
                    transport.prepare(event, Delivery(id="dlv_p"), 1_700_000_000_000)
                continue
            request = transport.prepare(event, Delivery(id="dlv_p"), 1_700_000_000_000)
            request.body.decode("utf-8")  # UTF-8 throughout: no lone surrogate got through
            check_request(name, request, summary, data)


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_the_writer_without_recursion_matches_json_for_any_value(value):
    try:
        expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        with pytest.raises(ValueError):
            dumps_without_recursion(value)
        return
    assert dumps_without_recursion(value) == expected
    assert encode_body(value) == messages.utf8(expected)


@settings(max_examples=200, deadline=None)
@given(value=field_values)
def test_any_value_is_one_bounded_line(value):
    text = messages.line(value)
    assert len(text) <= messages.MAX_VALUE and text == " ".join(text.split())
    assert not re.search("[\ud800-\udfff\x00-\x1f\x7f]", text)
    assert not MENTION.search(text) and not SCHEME_LINK.search(text)
    escaped = messages.escape_markdown(text)
    assert not any(mark in escaped for mark in "[]<>*`~")


def test_an_event_stored_today_still_reads_the_same(app):
    """The hardening changed nothing for ordinary data: the sample reads as before."""
    summary = summarize(app, "order_pay_hook", hooks.get("order_pay_hook").sample)
    assert summary.title == "Order AP202611271830001234 paid — CN¥128.00"
    assert summary.facts == [("Order number", "AP202611271830001234"), ("Product", "VPN Monthly Plan (vpnmonthly)"),
                             ("Quantity", "1"), ("Amount", "CN¥128.00"), ("Buyer", "buyer@example.com"),
                             ("Time", "2026-11-27 10:31:12")]


ORDER_HOOKS = [hook.name for hook in hooks.HOOKS if hook.group == hooks.ORDER]
DIGEST_LINK = "http://admin.example/deliveries/?digest=dig_0000000000001"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(events=st.lists(st.tuples(st.sampled_from(ORDER_HOOKS), st.one_of(shaped_data, json_values)),
                       min_size=1, max_size=6),
       language=st.sampled_from(["en", "zh_CN"]))
def test_any_json_folds_into_a_digest_for_every_kind_that_folds_as_text_not_markup(app, events, language):
    """A digest carries the shop's data, never its markup: whatever the orders hold, every folding
    kind builds its message, one line per order, and the only link in a robot's markdown is the
    digest's own."""
    app.config.update(MERCHANT_LANGUAGE=language)
    kinds = dict(CHANNELS, feishu=dict(config={"url": "http://127.0.0.1:9/open-apis/bot/v2/hook/feishu-digest-tok"}))
    with app.app_context():
        with messages.merchant_locale():
            digest = messages.digest("dig_0000000000001", [(hook, data, utcnow()) for hook, data in events],
                                     DIGEST_LINK)
        assert digest.count == len(events) == sum(len(group.lines) for group in digest.groups)
        for line in (part for group in digest.groups for item in group.lines
                     for part in (item.number, item.product, item.amount)):
            assert line and "\n" not in line
        for name, spec in kinds.items():
            kind = spec.get("kind", name)
            if not transport_for(kind).folds:
                continue
            channel = Channel(id=1, kind=kind, config=spec["config"], secret=spec.get("secret"))
            request = transport_for(kind)(channel, DeliverySettings()).prepare_digest(digest, 1_700_000_000_000)
            text = request.body.decode("utf-8")  # UTF-8 throughout: no lone surrogate got through
            if kind in ("dingtalk", "feishu") or name == "wecom":
                body = json.loads(text)
                markdown = (body.get("markdown") or {}).get("text") or (body.get("markdown") or {}).get("content") \
                    or body["card"]["elements"][0]["content"]
                assert markdown.count("](") == 1 and DIGEST_LINK in markdown, (name, markdown)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(events=st.lists(st.tuples(st.sampled_from(ORDER_HOOKS), st.one_of(shaped_data, json_values),
                                 st.integers(0, 3600)), min_size=1, max_size=40),
       lead=st.integers(0, 39), overdue=st.sets(st.integers(0, 39), max_size=10), room=st.integers(300, 3000),
       language=st.sampled_from(["en", "zh_CN"]))
def test_a_digest_fitted_to_any_room_carries_what_it_lists_and_what_is_overdue(app, events, lead, overdue, room,
                                                                              language):
    """Whatever the orders hold and however little room the message has: the fitted message is
    within the room (or lists nothing), one more line would not fit, it lists the leader first
    and then the oldest, it carries what it lists and the overdue ones, the rest follow, and its
    headlines count what it carries. Through WeCom's markdown and the email's HTML, escaped."""
    from datetime import timedelta

    app.config.update(MERCHANT_LANGUAGE=language)
    start = utcnow()
    given_events = [(hook, data, start + timedelta(seconds=offset)) for hook, data, offset in events]
    lead = lead if lead < len(events) else None
    overdue = {n for n in overdue if n < len(events)}
    with app.app_context():
        with messages.merchant_locale():
            whole = messages.digest("dig_0000000000001", given_events, DIGEST_LINK, lead=lead, overdue=overdue)
            assert whole.gathered == len(events) and whole.following == 0 and whole.more == 0
            for template in ("channels/wecom/digest.md", "channels/email/digest.html"):
                def size(d):
                    return len(messages.render_digest(template, d).encode("utf-8"))

                fitted = messages.fit_digest(whole, size, room)
                n = fitted.listed_count
                assert size(fitted) <= room or n == 0
                assert n == len(events) or size(whole.take(n + 1)) > room
                order = sorted(range(len(events)), key=lambda i: (i != lead, given_events[i][2], i))
                listed = set(order[:n])
                assert set(fitted.carried) == listed | overdue | ({lead} if lead is not None else set())
                assert fitted.count == len(fitted.carried) == n + fitted.more
                assert fitted.following == len(events) - fitted.count
                assert sum(group.count for group in fitted.groups) == fitted.count
                shown = [line for group in fitted.groups for line in group.lines]
                assert sorted(id(line) for line in shown) == sorted(id(item.line) for item in whole.items
                                                                     if item.index in listed)
                text = messages.render_digest(template, fitted)
                if template.endswith(".md"):
                    assert text.count("](") == 1 and DIGEST_LINK in text
                    assert ("more follow" in text or "下一条消息" in text) == bool(fitted.following)
