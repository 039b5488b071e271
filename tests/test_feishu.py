"""Feishu / Lark custom bots, end to end: the product's worker sends to the fake Feishu server
(tests/fakes.py, which follows CHANNELS.md §3b), and the admin shows what happened."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import pytest

import tests.fakes
from extensions import db
from models import Attempt, Channel, Delivery, DeliveryStatus
from models.base import utcnow
from notify import channels as channel_service
from notify import dispatch, hooks, messages, ratelimit, settings_io
from notify.channels.feishu.transport import FeishuTransport, sign
from tests.test_channels import channel, delivery, settled

TOKEN = "b2c7e1f4-93a0-4d6e-8f15-7a2c9d0e3b48"
SECRET = "Xy7Kq2Lm9Pn4Rs8T"


def emit(app, hook="order_pay_hook"):
    with app.app_context():
        return dispatch.emit(hook, hooks.get(hook).sample).delivery_ids


def markdown(message: dict) -> str:
    (element,) = message["card"]["elements"]
    assert element["tag"] == "markdown"
    return element["content"]


# -- signing ------------------------------------------------------------------------------------
def test_signature_is_feishus_not_dingtalks():
    """Key = timestamp + "\\n" + secret, message empty, Base64 not URL-encoded (CHANNELS.md §3b),
    computed here by hand."""
    expected = base64.b64encode(hmac.new(b"1700000000\nSECtest", b"", hashlib.sha256).digest()).decode()
    assert sign("SECtest", 1700000000) == expected == "G7XpBpG8NgG02fJOAhX6FRAObIljmFoxVReo8I62pEk="
    dingtalk_style = base64.b64encode(hmac.new(b"SECtest", b"1700000000\nSECtest", hashlib.sha256).digest()).decode()
    assert sign("SECtest", 1700000000) != dingtalk_style


def test_the_shared_limiter_keeps_both_windows(app):
    """5 a second and 100 a minute per bot: the sixth message in a second waits for a slot past the
    short window, though the minute's window has room (a real Redis, the Lua limiter)."""
    assert FeishuTransport.limits() == ((100, 60.0), (5, 1.0))
    pacing = ratelimit.Pacing.of(FeishuTransport)
    with app.app_context():
        key = ratelimit.robot_key("feishu-limiter-test")
        verdicts = [ratelimit.reserve(key, f"r{n}", pacing) for n in range(6)]
    assert [v.wait for v in verdicts[:5]] == [0.0] * 5
    assert verdicts[5].wait > 0.5


# -- delivery -----------------------------------------------------------------------------------
def test_signed_card_with_colour_keyword_and_mentions_per_group(app, worker, feishu, make_channel):
    url = feishu.add_bot(TOKEN, secret=SECRET, keywords=("订单",))
    make_channel("feishu", {"url": url, "keyword": "订单",
                            "mentions": {"inventory": {"all": True}, "order": {"user_ids": "ou_7d8a6e6df7621556"}}},
                 secret=SECRET)
    pay, alarm, refund = emit(app), emit(app, "stock_alarm_hook"), emit(app, "order_refund_hook")
    worker(until=settled(app, pay + alarm + refund))
    for delivery_id in pay + alarm + refund:
        assert delivery(app, delivery_id).status == DeliveryStatus.DELIVERED
    received = feishu.bots[TOKEN].messages
    by_title = {m["card"]["header"]["title"]["content"]: m for m in received}
    paid = by_title["Order AP202611271830001234 paid — CN¥128.00"]
    low = next(m for title, m in by_title.items() if title.startswith("Low stock: VPN Monthly Plan has 3 left"))
    refunded = by_title["Order AP202611271830001234 refunded — CN¥128.00"]
    assert paid["msg_type"] == "interactive"
    # The state's colour: paid is good, a stock alarm and a refund are warnings.
    assert [m["card"]["header"]["template"] for m in (paid, low, refunded)] == ["green", "orange", "orange"]
    text = markdown(paid)
    for fact in ("VPN Monthly Plan (vpnmonthly)", "CN¥128.00", "buyer@example.com",
                 "2026-11-27 10:31:12", "Times in UTC"):
        assert fact in text
    # Mentions per group: the order's user id, everyone for inventory; the keyword last.
    assert text.endswith("<at id=ou_7d8a6e6df7621556></at>\n订单")
    assert "<at id=all></at>" not in text
    assert markdown(low).endswith("<at id=all></at>\n订单")
    # The signature travels in the body, in seconds.
    for message in received:
        assert message["timestamp"].isdigit() and len(message["timestamp"]) == 10
        assert message["sign"] == sign(SECRET, int(message["timestamp"]))
    attempt = delivery(app, pay[0]).attempts[0]
    assert TOKEN not in attempt.request_url and attempt.request_url.endswith("/open-apis/bot/v2/hook/••••••••3b48")
    assert SECRET not in attempt.request_body
    assert json.loads(attempt.response_body) == {"code": 0, "msg": "success", "data": {}}


def test_older_bots_statuscode_answer_counts(app, worker, feishu, make_channel):
    make_channel("feishu", {"url": feishu.add_bot(TOKEN, legacy=True)})
    ids = emit(app)
    worker(until=settled(app, ids))
    assert delivery(app, ids[0]).status == DeliveryStatus.DELIVERED
    assert json.loads(delivery(app, ids[0]).attempts[0].response_body) == {"StatusCode": 0, "StatusMessage": "success"}


def test_messages_use_the_merchant_language_and_time_zone(app, worker, feishu, make_channel):
    app.config.update(MERCHANT_LANGUAGE="zh_CN", MERCHANT_TIMEZONE="Asia/Shanghai")
    make_channel("feishu", {"url": feishu.add_bot(TOKEN)})
    ids = emit(app)
    worker(until=settled(app, ids))
    (message,) = feishu.bots[TOKEN].messages
    title = message["card"]["header"]["title"]["content"]
    assert title == "订单 AP202611271830001234 已支付 — ¥128.00"
    text = markdown(message)
    assert "2026-11-27 18:31:12" in text and "订单号" in text and "时间为 Asia/Shanghai 时区" in text


@pytest.mark.parametrize("bot, configured, explanation, code", [
    ({"secret": SECRET}, {"secret": "WrongSecret12345"}, "Signature does not match: check the signing secret", 19021),
    ({"allowed_ips": ("203.0.113.7",)}, {}, "IP address is not in the bot's IP allow-list", 19022),
    ({"keywords": ("商城",)}, {"keyword": "订单"}, "None of the bot's custom keywords is in the message", 19024),
])
def test_configuration_codes_are_permanent_and_explained(app, worker, feishu, make_channel, login, bot, configured,
                                                         explanation, code):
    url = feishu.add_bot(TOKEN, **bot)
    channel_id = make_channel("feishu", {"url": url, "keyword": configured.get("keyword", "")},
                              secret=configured.get("secret"))
    ids = emit(app)
    worker(until=settled(app, ids))
    failed = delivery(app, ids[0])
    assert failed.status == DeliveryStatus.FAILED and failed.attempt_count == 1  # no retries
    assert explanation in failed.last_error and f"Feishu code {code}:" in failed.last_error
    broken = channel(app, channel_id)
    assert broken.needs_attention and broken.enabled
    page = login.get("/settings/notifications/").text
    assert "needs attention" in page and explanation in page.replace("&#39;", "'")
    chinese = login.get("/settings/notifications/?lang=zh_CN").text
    assert "需处理" in chinese and f"飞书 错误码 {code}" in chinese


def test_a_removed_bot_disables_the_channel(app, worker, feishu, make_channel, login):
    channel_id = make_channel("feishu", {"url": feishu.base_url + "/open-apis/bot/v2/hook/removed-bot-0000"})
    ids = emit(app)
    worker(until=settled(app, ids))
    failed = delivery(app, ids[0])
    assert failed.status == DeliveryStatus.FAILED and failed.attempt_count == 1
    gone = channel(app, channel_id)
    assert not gone.enabled and gone.needs_attention
    assert "The bot's webhook token is not valid" in gone.attention_reason and "19001" in gone.attention_reason
    assert "The channel was disabled" in login.get("/settings/notifications/").text


def test_a_refused_message_is_not_the_channels_fault(app, worker, feishu, make_channel, monkeypatch):
    """9499 (malformed, or over 20 KB): permanent for that message; the channel stays as it was."""
    monkeypatch.setattr(tests.fakes, "FEISHU_MAX_BYTES", 300)  # this bot refuses anything longer
    channel_id = make_channel("feishu", {"url": feishu.add_bot(TOKEN)})
    ids = emit(app)
    worker(until=settled(app, ids))
    failed = delivery(app, ids[0])
    assert failed.status == DeliveryStatus.FAILED and failed.attempt_count == 1
    assert "Feishu refused this message as malformed or too large" in failed.last_error
    kept = channel(app, channel_id)
    assert kept.enabled and not kept.needs_attention


def test_frequency_limited_waits_a_minute(app, worker, feishu, make_channel):
    make_channel("feishu", {"url": feishu.add_bot(TOKEN)})
    feishu.bots[TOKEN].minute.extend([feishu.clock()] * 100)  # another sender filled the minute
    ids = emit(app)
    worker()
    waiting = delivery(app, ids[0])
    assert waiting.status == DeliveryStatus.RETRYING and "11232" in waiting.last_error
    assert "Sending too fast: Feishu allows 100 messages a minute" in waiting.last_error
    assert waiting.next_attempt_at >= utcnow() + timedelta(seconds=50)


def test_an_over_long_message_is_shortened_not_refused(app, worker, feishu, make_channel, monkeypatch):
    original = messages.render
    monkeypatch.setattr(messages, "render", lambda template, summary, **kw: original(template, summary, **kw)
                        + "\n" + "长" * 9000)  # 27,000 bytes of text
    make_channel("feishu", {"url": feishu.add_bot(TOKEN, secret=SECRET, keywords=("Shop",)), "keyword": "Shop",
                            "mentions": {"order": {"all": True}}}, secret=SECRET)
    ids = emit(app)
    worker(until=settled(app, ids))
    assert delivery(app, ids[0]).status == DeliveryStatus.DELIVERED
    (message,) = feishu.bots[TOKEN].messages
    text = markdown(message)
    # Shortened content, then the mentions and the keyword, never cut.
    assert "(shortened: the message was too long for Feishu)\n\n<at id=all></at>\nShop" in text
    assert len(feishu.requests[0].raw) <= 20000


def test_a_burst_is_paced_by_the_shared_limiter(app, worker, feishu, make_channel):
    """Six stock alarms at once (alarms never fold into digests): five go, the sixth waits for the
    5-a-second window, and the fake, which enforces both of Feishu's limits, never answers 11232."""
    make_channel("feishu", {"url": feishu.add_bot(TOKEN)}, hooks_=["stock_alarm_hook"])
    with app.app_context():
        ids = [dispatch.emit("stock_alarm_hook", hooks.get("stock_alarm_hook").sample).delivery_ids[0]
               for _ in range(6)]
    worker()
    assert len(feishu.bots[TOKEN].messages) == 5
    worker(until=settled(app, ids), timeout=30)
    assert len(feishu.bots[TOKEN].messages) == 6 and feishu.bots[TOKEN].limited_count == 0


def test_orders_under_pressure_arrive_as_digest_cards(app, worker, feishu, make_channel, monkeypatch):
    """Past the single budget (one here, so the test needs no minute), waiting orders are folded
    into cards: a headline with the count, a line per order, each delivery recorded with the digest."""
    monkeypatch.setattr(FeishuTransport, "fold_budget", (1, 3.0))
    monkeypatch.setattr(FeishuTransport, "digest_spacing", 0.3)
    make_channel("feishu", {"url": feishu.add_bot(TOKEN)}, hooks_=["order_pay_hook"])
    numbers = [f"FS20261201{n:04d}" for n in range(40)]
    sample = hooks.get("order_pay_hook").sample
    with app.app_context():
        ids = [dispatch.emit("order_pay_hook", {"order": dict(sample["order"], order_no=no)}).delivery_ids[0]
               for no in numbers]
    worker(until=settled(app, ids), timeout=30)
    bot = feishu.bots[TOKEN]
    assert bot.limited_count == 0 and len(bot.messages) < 10
    cards = [m for m in bot.messages if "orders paid" in markdown(m)]
    assert cards and all(m["card"]["header"]["template"] == "green" for m in cards)
    shown = "\n".join(markdown(m) for m in bot.messages)
    assert all(no in shown for no in numbers)  # every order number reached the group
    with app.app_context():
        rows = db.session.execute(db.select(Delivery.status, Attempt.digest_id).join(Attempt)
                                  .where(Delivery.id.in_(ids))).all()
    assert len(rows) == 40 and {status for status, _ in rows} == {"delivered"}
    assert sum(1 for _, digest_id in rows if digest_id) >= 30


# -- settings -----------------------------------------------------------------------------------
@pytest.mark.parametrize("url, host", [
    ("https://open.feishu.cn/open-apis/bot/v2/hook/" + TOKEN, None),
    ("https://open.larksuite.com/open-apis/bot/v2/hook/" + TOKEN, None),
    ("https://open.feishu.cn.evil.example/open-apis/bot/v2/hook/" + TOKEN, "open.feishu.cn.evil.example"),
])
def test_feishu_and_lark_hosts_are_the_services_own(url, host):
    assert FeishuTransport.unexpected_host(url) == host
    assert FeishuTransport.validate({"url": url}, None) == {}


@pytest.mark.parametrize("url, problem", [
    ("https://open.feishu.cn/open-apis/bot/v2/hook/", "The URL has no bot token"),
    ("https://open.feishu.cn/robot/send?access_token=abcdefgh", "The URL has no bot token"),
    ("https://open.feishu.cn/open-apis/bot/v2/hook/abc", "does not look right"),
])
def test_a_url_without_a_token_is_refused(app, url, problem):
    with app.test_request_context():
        assert problem in FeishuTransport.validate({"url": url}, None)["url"]


def test_mentions_are_user_ids_not_mobiles(app):
    url = "https://open.feishu.cn/open-apis/bot/v2/hook/" + TOKEN
    with app.test_request_context():
        errors = FeishuTransport.validate({"url": url, "mentions": {"order": {"mobiles": "13800000000"}}}, None)
        assert "by user id only" in errors["mentions_order"]
        errors = FeishuTransport.validate({"url": url, "mentions": {"order": {"user_ids": "li si!"}}}, None)
        assert "Not a user id: si!." in errors["mentions_order_user_ids"]


def test_the_form_saves_confirms_other_hosts_and_keeps_the_secret(app, feishu, login):
    page = login.get("/settings/notifications/feishu/new").text
    assert "Signing secret (签名校验)" in page and 'name="user_ids_order"' in page and 'name="mobiles_order"' not in page
    url = feishu.add_bot(TOKEN, secret=SECRET)
    form = {"url": url, "secret": SECRET, "keyword": "订单", "user_ids_order": "ou_abc123", "at_all_inventory": "y",
            "hooks": ["order_pay_hook", "stock_alarm_hook"], "enabled": "y"}
    refused = login.post("/settings/notifications/feishu/new", data=form)
    assert refused.status_code == 200
    assert "127.0.0.1 is not Feishu&#39;s address (open.feishu.cn, open.larksuite.com)" in refused.text
    saved = login.post("/settings/notifications/feishu/new", data=dict(form, confirm_host="y"))
    assert saved.status_code == 302
    with app.app_context():
        (created,) = db.session.scalars(db.select(Channel).where(Channel.kind == "feishu")).all()
        assert created.secret == SECRET and created.config["keyword"] == "订单"
        assert created.config["mentions"] == {"order": {"all": False, "mobiles": [], "user_ids": ["ou_abc123"]},
                                              "inventory": {"all": True, "mobiles": [], "user_ids": []}}
        channel_id = created.id
    edit = login.get(f"/settings/notifications/feishu/{channel_id}").text
    assert TOKEN not in edit and SECRET not in edit and "••••••••3b48" in edit
    # Blank URL and secret keep the saved ones; "remove" drops the secret.
    kept = dict(form, url="", secret="")
    assert login.post(f"/settings/notifications/feishu/{channel_id}", data=kept).status_code == 302
    assert channel(app, channel_id).secret == SECRET and channel(app, channel_id).config["url"] == url
    assert login.post(f"/settings/notifications/feishu/{channel_id}", data=dict(kept, clear_secret="y")).status_code == 302
    assert channel(app, channel_id).secret is None


def test_the_notifications_page_shows_the_fifth_method(login):
    page = login.get("/settings/notifications/").text
    assert 'id="method-feishu"' in page and "Add Feishu" in page
    assert page.index('id="method-webhook"') < page.index('id="method-feishu"')
    chinese = login.get("/settings/notifications/?lang=zh_CN").text
    assert "添加飞书通知" in chinese and "<h2>飞书</h2>" in chinese


# -- the Test button ----------------------------------------------------------------------------
def test_the_test_button_mentions_nobody_unless_ticked_and_masks_the_token(app, worker, feishu, make_channel, login):
    channel_id = make_channel("feishu", {"url": feishu.add_bot(TOKEN, secret=SECRET),
                                         "mentions": {"order": {"all": True, "user_ids": ["ou_abc123"]}}}, secret=SECRET)
    assert "Also @mention as configured" in login.get(f"/settings/notifications/feishu/{channel_id}").text
    quiet = login.post(f"/settings/notifications/channels/{channel_id}/test", data={"hook": "order_pay_hook"})
    loud = login.post(f"/settings/notifications/channels/{channel_id}/test",
                      data={"hook": "order_pay_hook", "mentions": "y"})
    ids = [quiet.location.rsplit("/", 1)[-1], loud.location.rsplit("/", 1)[-1]]
    worker(until=settled(app, ids))
    # Sent concurrently: which arrives first is not fixed.
    first, second = sorted(feishu.bots[TOKEN].messages, key=lambda m: markdown(m).count("<at"))
    assert "<at" not in markdown(first) and "test message" in markdown(first)
    assert markdown(second).endswith("<at id=all></at><at id=ou_abc123></at>")
    detail = login.get(f"/deliveries/{ids[0]}").text
    assert "delivered" in detail and TOKEN not in detail and SECRET not in detail and "••••••••3b48" in detail
    assert "curl" in detail
    result = login.get(f"/deliveries/{ids[0]}/result").text
    assert TOKEN not in result and "&#34;code&#34;: 0" in result or "&#34;code&#34;:0" in result


def test_test_result_page_explains_a_failure_in_both_languages(app, worker, feishu, make_channel, login):
    channel_id = make_channel("feishu", {"url": feishu.add_bot(TOKEN, keywords=("商城",))})
    response = login.post(f"/settings/notifications/channels/{channel_id}/test", data={"hook": "order_pay_hook"})
    delivery_id = response.location.rsplit("/", 1)[-1]
    worker(until=settled(app, [delivery_id]))
    result = login.get(f"/deliveries/{delivery_id}/result").text.replace("&#39;", "'")
    assert "None of the bot's custom keywords is in the message" in result and "code 19024: Key Words Not Found" in result
    chinese = login.get(f"/deliveries/{delivery_id}/result?lang=zh_CN").text
    assert "机器人的自定义关键词" in chinese and "错误码 19024" in chinese


# -- the settings file --------------------------------------------------------------------------
def test_export_masks_the_token_and_reimport_finds_the_same_bot(app, make_channel):
    url = "https://open.feishu.cn/open-apis/bot/v2/hook/" + TOKEN
    make_channel("feishu", {"url": url, "keyword": "订单", "mentions": {"order": {"user_ids": "ou_abc123"}}},
                 secret=SECRET)
    with app.app_context():
        exported = settings_io.export()
        (item,) = exported["channels"]
        text = json.dumps(exported, ensure_ascii=False)
        assert TOKEN not in text and SECRET not in text
        assert item["config"]["url"].endswith("/hook/••••••••3b48") and item["fingerprint"].startswith("hmac-sha256:")
        settings_io.import_(json.dumps(exported))
        (kept,) = db.session.scalars(db.select(Channel)).all()
        assert kept.config["url"] == url and kept.secret == SECRET  # the same channel, its credential kept
        full = settings_io.export(include_secrets=True)
        assert full["channels"][0]["config"]["url"] == url and full["channels"][0]["secret"] == SECRET
        db.session.delete(kept)
        db.session.commit()
        settings_io.import_(json.dumps(full))
        (restored,) = db.session.scalars(db.select(Channel)).all()
        assert restored.kind == "feishu" and restored.config["url"] == url and restored.secret == SECRET


def test_choice_label_names_the_kind(app, make_channel):
    channel_id = make_channel("feishu", {"url": "https://open.larksuite.com/open-apis/bot/v2/hook/" + TOKEN})
    with app.test_request_context():
        label = channel_service.choice_label(db.session.get(Channel, channel_id))
        assert label.startswith("Feishu · https://open.larksuite.com/") and TOKEN not in label
