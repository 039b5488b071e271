"""DingTalk, WeCom and Email, end to end: the product's worker sends to the fake DingTalk and
WeCom servers (tests/fakes.py, which follow CHANNELS.md) and to a real SMTP server on loopback."""
from __future__ import annotations

import json
import re
import socket
import time
from datetime import timedelta

import pytest

from extensions import db
from models import Attempt, Channel, Delivery, DeliveryStatus
from models.base import utcnow
from notify import channels as channel_service
from notify import dispatch, hooks, messages
from notify.channels.dingtalk.transport import DingTalkTransport

TOKEN = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
SEC = "SEC0123456789abcdef0123456789abcdef"
SAMPLE = hooks.get("order_pay_hook").sample


def emit(app, hook="order_pay_hook", data=None):
    with app.app_context():
        return dispatch.emit(hook, data or hooks.get(hook).sample).delivery_ids


def send_test(app, channel_id, hook="order_pay_hook") -> str:
    with app.app_context():
        return channel_service.send_test(db.session.get(Channel, channel_id), hook)


def delivery(app, delivery_id) -> Delivery:
    with app.app_context():
        found = db.session.get(Delivery, delivery_id)
        found.attempts  # load them before the session ends
        db.session.expunge(found)
        return found


def channel(app, channel_id) -> Channel:
    with app.app_context():
        found = db.session.get(Channel, channel_id)
        db.session.expunge(found)
        return found


def settled(app, delivery_ids):
    def check():
        with app.app_context():
            rows = db.session.scalars(db.select(Delivery.status).where(Delivery.id.in_(delivery_ids))).all()
            return all(status in DeliveryStatus.FINAL for status in rows)
    return check


# -- DingTalk ---------------------------------------------------------------------------------
def test_dingtalk_signed_markdown_with_keyword_and_mentions(app, worker, dingtalk, make_channel):
    url = dingtalk.add_robot(TOKEN, secret=SEC, keywords=("订单",))
    make_channel("dingtalk", {"url": url, "keyword": "订单", "keyword_position": "suffix",
                              "mentions": {"inventory": {"all": True}, "order": {"mobiles": "13800000000"}}},
                 secret=SEC)
    pay, alarm = emit(app), emit(app, "stock_alarm_hook")
    worker(until=settled(app, pay + alarm))
    assert delivery(app, pay[0]).status == delivery(app, alarm[0]).status == DeliveryStatus.DELIVERED
    # The two are sent concurrently: which arrives first is not fixed.
    received = dingtalk.robots[TOKEN].messages
    assert len(received) == 2
    (first,) = [m for m in received if m["markdown"]["title"].startswith("Order ")]
    (second,) = [m for m in received if m is not first]
    assert first["msgtype"] == "markdown"
    title, text = first["markdown"]["title"], first["markdown"]["text"]
    assert title == "Order AP202611271830001234 paid — CN¥128.00 订单"
    for fact in ("VPN Monthly Plan (vpnmonthly)", "CN¥128.00", "buyer@example.com", "2026-11-27 10:31:12",
                 "Times in UTC"):
        assert fact in text
    assert text.endswith("订单\n\n@13800000000")
    assert first["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}
    assert second["at"] == {"atMobiles": [], "isAtAll": True}  # @all for inventory alarms only
    assert "Low stock: VPN Monthly Plan has 3 left" in second["markdown"]["title"]
    # The signature travelled once-encoded in the query, and the stored URL hides the token.
    (query, _), = [(r.query, r) for r in dingtalk.requests[:1]]
    assert set(query) == {"access_token", "timestamp", "sign"}
    attempt = delivery(app, pay[0]).attempts[0]
    assert TOKEN not in attempt.request_url and "access_token=••••••••8f90" in attempt.request_url
    assert json.loads(attempt.response_body) == {"errcode": 0, "errmsg": "ok"}


def test_dingtalk_messages_use_the_merchant_language_and_time_zone(app, worker, dingtalk, make_channel):
    app.config.update(MERCHANT_LANGUAGE="zh_CN", MERCHANT_TIMEZONE="Asia/Shanghai")
    url = dingtalk.add_robot(TOKEN)
    make_channel("dingtalk", {"url": url})
    ids = emit(app)
    worker(until=settled(app, ids))
    (message,) = dingtalk.robots[TOKEN].messages
    assert "¥128.00" in message["markdown"]["title"] and "CN¥" not in message["markdown"]["title"]
    assert "2026-11-27 18:31:12" in message["markdown"]["text"]  # 10:31:12 UTC in Shanghai
    assert "订单" in message["markdown"]["text"]


@pytest.mark.parametrize("robot, configured_secret, keyword, explanation", [
    ({"secret": SEC}, "SEC9999999999wrongwrongwrong", "", "Signature does not match: check the secret"),
    ({"keywords": ("商城",)}, None, "", "security keyword is not in the message"),
    ({}, None, "", "access_token does not exist"),
])
def test_dingtalk_permanent_failures_stop_and_explain(app, worker, dingtalk, make_channel, robot, configured_secret,
                                                      keyword, explanation):
    if explanation.startswith("access_token"):
        url = dingtalk.base_url + "/robot/send?access_token=removedrobot0000"
    else:
        url = dingtalk.add_robot(TOKEN, **robot)
    channel_id = make_channel("dingtalk", {"url": url, "keyword": keyword}, secret=configured_secret)
    ids = emit(app)
    worker(until=settled(app, ids))
    failed = delivery(app, ids[0])
    assert failed.status == DeliveryStatus.FAILED and failed.attempt_count == 1  # no retries
    assert explanation in failed.last_error and "errcode" in failed.last_error
    broken = channel(app, channel_id)
    assert broken.needs_attention and explanation in broken.attention_reason
    # A robot that does not exist (removed from its group) disables the channel; a wrong secret
    # or keyword is the merchant's to fix, and the channel stays on.
    assert broken.enabled == (not explanation.startswith("access_token"))


@pytest.mark.parametrize("kind, path", [("dingtalk", "/robot/send?access_token=" + "ab12" * 16),
                                         ("wecom", "/cgi-bin/webhook/send?key=0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")])
@pytest.mark.parametrize("status", [404, 410])
def test_a_robot_url_answering_404_or_410_fails_and_410_disables(app, worker, local_receiver, make_channel, kind,
                                                                 path, status):
    receiver = local_receiver(lambda path, headers: (status, {}, b"no such robot", 0))
    channel_id = make_channel(kind, {"url": receiver.url + path})
    ids = emit(app)
    worker(until=settled(app, ids))
    failed = delivery(app, ids[0])
    assert failed.status == DeliveryStatus.FAILED and failed.attempt_count == 1 and str(status) in failed.last_error
    gone = channel(app, channel_id)
    assert gone.needs_attention and gone.enabled == (status == 404)


def test_fixing_the_secret_and_testing_clears_needs_attention(app, worker, dingtalk, make_channel, login):
    url = dingtalk.add_robot(TOKEN, secret=SEC)
    channel_id = make_channel("dingtalk", {"url": url}, secret="SEC9999999999wrongwrongwrong")
    response = login.post(f"/settings/notifications/channels/{channel_id}/test", data={"hook": "order_pay_hook"})
    ids = [response.location.rsplit("/", 1)[-1]]
    worker(until=settled(app, ids))
    result = login.get(f"/deliveries/{ids[0]}/result").text
    assert "Signature does not match" in result and "errcode 310000: sign not match" in result
    assert "&#34;errcode&#34;: 310000" in result or "&#34;errcode&#34;:310000" in result  # the service's answer
    page = login.get("/settings/notifications/").text
    assert "needs attention" in page and "Signature does not match" in page
    response = login.post(f"/settings/notifications/dingtalk/{channel_id}",
                          data={"url": "", "secret": SEC, "keyword_position": "prefix", "hooks": ["order_pay_hook"],
                                "enabled": "y"})
    assert response.status_code == 302
    ids = [send_test(app, channel_id)]
    worker(until=settled(app, ids))
    assert delivery(app, ids[0]).status == DeliveryStatus.DELIVERED
    assert not channel(app, channel_id).needs_attention
    assert channel(app, channel_id).config["url"] == url  # the blank URL field kept the saved one


def test_dingtalk_system_busy_is_retried(app, worker, dingtalk, make_channel):
    make_channel("dingtalk", {"url": dingtalk.add_robot(TOKEN)})
    dingtalk.system_busy = 1
    ids = emit(app)
    worker(until=settled(app, ids))
    done = delivery(app, ids[0])
    assert done.status == DeliveryStatus.DELIVERED and done.attempt_count == 2
    assert [a.outcome for a in done.attempts] == ["transient", "success"]


def test_dingtalk_throttle_answer_waits_ten_minutes(app, worker, dingtalk, make_channel):
    make_channel("dingtalk", {"url": dingtalk.add_robot(TOKEN)})
    robot = dingtalk.robots[TOKEN]
    robot.throttled_until = dingtalk.clock() + 600  # another system used this robot too fast
    ids = emit(app)
    worker()
    waiting = delivery(app, ids[0])
    assert waiting.status == DeliveryStatus.RETRYING and "130101" in waiting.last_error
    assert waiting.next_attempt_at >= utcnow() + timedelta(seconds=590)


def test_a_burst_to_one_robot_is_paced_never_throttled(app, worker, dingtalk, make_channel, monkeypatch, login):
    """60 stock alarms at once (alarms are never folded into digests: tests/test_digests.py has
    orders): 20 a minute reach the robot, the rest wait their turn; none is lost and the fake never
    answers 130101. Time runs 20x faster for the fake, and the limiter's window is shortened to
    match (3 s for DingTalk's 60), through the older one-window `rate_limit` attribute."""
    start = time.time()
    dingtalk.clock = lambda: start + (time.time() - start) * 20
    monkeypatch.setattr(DingTalkTransport, "rate_limit", (20, 3.0))
    make_channel("dingtalk", {"url": dingtalk.add_robot(TOKEN)}, hooks_=["stock_alarm_hook"])
    with app.app_context():
        alarm = hooks.get("stock_alarm_hook").sample
        ids = [dispatch.emit("stock_alarm_hook", alarm).delivery_ids[0] for _ in range(60)]
    worker()  # the first 20 go at once; the others wait for their slots
    assert len(dingtalk.robots[TOKEN].messages) == 20
    assert "Waiting for its turn: the robot accepts 20 messages a minute" in login.get(f"/deliveries/{ids[-1]}").text
    worker(until=settled(app, ids), timeout=60)
    robot = dingtalk.robots[TOKEN]
    assert robot.throttled_count == 0
    assert len(robot.messages) == 60
    with app.app_context():
        statuses = db.session.scalars(db.select(Delivery.status).where(Delivery.id.in_(ids))).all()
        assert statuses == [DeliveryStatus.DELIVERED] * 60
        # Waiting for a slot is not an attempt: one attempt each.
        assert db.session.scalar(db.select(db.func.count()).select_from(Attempt)) == 60


def test_an_over_long_dingtalk_message_is_shortened_not_rejected(app, worker, dingtalk, make_channel, monkeypatch):
    original = messages.render
    monkeypatch.setattr(messages, "render", lambda template, summary, **kw: original(template, summary, **kw)
                        + "\n" + "长" * 9000)  # 27,000 bytes of text
    make_channel("dingtalk", {"url": dingtalk.add_robot(TOKEN, keywords=("Shop",))})
    ids = emit(app)
    worker(until=settled(app, ids))
    assert delivery(app, ids[0]).status == DeliveryStatus.DELIVERED
    (message,) = dingtalk.robots[TOKEN].messages
    assert message["markdown"]["text"].endswith("(shortened: the message was too long for DingTalk)")
    assert len(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()) <= 20000


# -- WeCom ------------------------------------------------------------------------------------
def test_wecom_markdown_with_colour_and_user_mentions(app, worker, wecom, make_channel):
    key = "693a91f6-7aaa-4bc4-97a0-0ec2sifa5aaa"
    make_channel("wecom", {"url": wecom.add_robot(key), "mentions": {"order": {"user_ids": "zhangsan"}}})
    ids = emit(app, "order_refund_hook")
    worker(until=settled(app, ids))
    (message,) = wecom.robots[key].messages
    assert message["msgtype"] == "markdown"
    content = message["markdown"]["content"]
    assert '<font color="warning">Order Refunded</font>' in content
    assert "Order AP202611271830001234 refunded" in content and content.endswith("\n<@zhangsan>")


def test_wecom_mentions_by_mobile_are_sent_as_text(app, worker, wecom, make_channel):
    key = "wecomkey0000000000001"
    make_channel("wecom", {"url": wecom.add_robot(key),
                           "mentions": {"inventory": {"all": True, "mobiles": ["13800000000"], "user_ids": ["lisi"]}}})
    ids = emit(app, "key_stock_alarm_hook")
    worker(until=settled(app, ids))
    (message,) = wecom.robots[key].messages
    assert message["msgtype"] == "text"
    assert message["text"]["mentioned_mobile_list"] == ["13800000000"]
    assert message["text"]["mentioned_list"] == ["lisi", "@all"]
    assert "Low key stock: VPN Monthly Plan has 2 keys left" in message["text"]["content"]
    assert "<font" not in message["text"]["content"]


def test_wecom_removed_key_is_permanent_and_rate_limit_answer_waits(app, worker, wecom, make_channel):
    removed = make_channel("wecom", {"url": wecom.base_url + "/cgi-bin/webhook/send?key=removedkey0000"})
    ids = emit(app)
    worker(until=settled(app, ids))
    assert delivery(app, ids[0]).status == DeliveryStatus.FAILED
    assert "webhook key is not valid" in channel(app, removed).attention_reason
    assert not channel(app, removed).enabled  # a removed robot: disabled, as Feishu's 19001
    with app.app_context():
        channel_service.delete(db.session.get(Channel, removed))
    # 45009: transient, and the next attempt waits at least a minute.
    key = "wecomkey0000000000002"
    make_channel("wecom", {"url": wecom.add_robot(key)})
    wecom.robots[key].attempts.extend([wecom.clock()] * 20)  # the window is full already
    ids = emit(app)
    worker()
    waiting = delivery(app, ids[0])
    assert waiting.status == DeliveryStatus.RETRYING and "45009" in waiting.last_error
    assert waiting.next_attempt_at >= utcnow() + timedelta(seconds=50)


def test_wecom_markdown_is_cut_on_a_character_boundary(app, worker, wecom, make_channel, monkeypatch):
    original = messages.render
    monkeypatch.setattr(messages, "render", lambda template, summary, **kw: original(template, summary, **kw)
                        + "\n" + "长" * 2000)
    key = "wecomkey0000000000003"
    make_channel("wecom", {"url": wecom.add_robot(key)})
    ids = emit(app)
    worker(until=settled(app, ids))
    assert delivery(app, ids[0]).status == DeliveryStatus.DELIVERED
    content = wecom.robots[key].messages[0]["markdown"]["content"]
    assert len(content.encode("utf-8")) <= 4096 and content.endswith("too long for WeCom)")


def test_truncate_utf8_never_splits_a_character():
    text = "订单" * 1000
    for limit in range(100, 110):
        cut = messages.truncate_utf8(text, limit, "…")
        assert len(cut.encode("utf-8")) <= limit and cut.endswith("…") and "\ufffd" not in cut


# -- Email ------------------------------------------------------------------------------------
def test_email_has_subject_recipients_text_and_html(app, worker, smtp_server, make_channel, login):
    channel_id = make_channel("email", {"recipients": "owner@example.com, Ops@Example.com"})
    ids = [send_test(app, channel_id, "order_count_amount_hook"), *emit(app)]
    worker(until=settled(app, ids))
    assert {delivery(app, i).status for i in ids} == {DeliveryStatus.DELIVERED}
    (paid, _), (report, report_envelope) = sorted(smtp_server.parsed(), key=lambda m: m[0]["Subject"])
    assert report_envelope.rcpt_tos == ["owner@example.com", "Ops@example.com"]
    assert report_envelope.mail_from == "shop@example.com"
    assert report["Subject"] == "[Shop] [TEST] Orders of the last 2 days"
    assert paid["Subject"] == "[Shop] Order AP202611271830001234 paid — CN¥128.00"
    assert paid["X-Apsdai-Event"] == "order_pay_hook" and paid["X-Apsdai-Delivery"] == ids[1]
    text = paid.get_body(("plain",)).get_content()
    html = paid.get_body(("html",)).get_content()
    assert "Amount: CN¥128.00" in text and "buyer@example.com" in text
    assert "<td style=\"padding: 4px 0;\">CN¥128.00</td>" in html
    report_html = report.get_body(("html",)).get_content()
    assert "Paid orders" in report_html and "CN¥2,304.00" in report_html and "CN¥1,920.00" in report_html
    attempt = delivery(app, ids[1]).attempts[0]
    assert attempt.request_method == "SMTP" and attempt.response_status == 250
    assert attempt.request_url == f"smtp://127.0.0.1:{smtp_server.port}"
    # The page says the mail server answered the last time.
    assert re.search(r'answered</span> SMTP 250', login.get("/settings/notifications/").text)


def test_email_refused_recipient_is_permanent(app, worker, smtp_server, make_channel):
    channel_id = make_channel("email", {"recipients": ["refuse-me@example.com"]})
    ids = emit(app)
    worker(until=settled(app, ids))
    failed = delivery(app, ids[0])
    assert failed.status == DeliveryStatus.FAILED and failed.attempt_count == 1
    assert "refused every recipient" in failed.last_error and "550" in failed.last_error
    assert channel(app, channel_id).needs_attention
    assert smtp_server.messages == []


def test_email_partly_refused_is_delivered_to_the_others(app, worker, smtp_server, make_channel):
    make_channel("email", {"recipients": ["owner@example.com", "refuse-me@example.com"]})
    ids = emit(app)
    worker(until=settled(app, ids))
    done = delivery(app, ids[0])
    assert done.status == DeliveryStatus.DELIVERED
    assert "refuse-me@example.com: 550" in done.attempts[0].response_body
    assert [e.rcpt_tos for e in smtp_server.messages] == [["owner@example.com"]]


def test_email_to_a_dead_server_is_transient(app, worker, make_channel, login):
    from extensions import mail
    from tests.conftest import free_port

    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port())
    mail.init_app(app)
    make_channel("email", {"recipients": ["owner@example.com"]})
    ids = emit(app)
    worker(until=settled(app, ids))
    given_up = delivery(app, ids[0])  # retried to the end of the (test's short) schedule
    assert given_up.status == DeliveryStatus.DEAD and given_up.attempt_count == 4
    assert {a.outcome for a in given_up.attempts} == {"transient"}
    assert "Connection refused" in given_up.last_error
    page = login.get("/settings/notifications/").text
    assert "did not answer</span>" in page and "Connection refused" in page


def test_email_server_that_never_answers_times_out(app, worker, make_channel):
    from extensions import mail

    with socket.socket() as silent:  # accepts connections (backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=silent.getsockname()[1], MAIL_TIMEOUT=0.5)
        mail.init_app(app)
        make_channel("email", {"recipients": ["owner@example.com"]})
        ids = emit(app)
        worker(until=settled(app, ids))
    given_up = delivery(app, ids[0])
    assert {a.outcome for a in given_up.attempts} == {"transient"} and given_up.status == DeliveryStatus.DEAD
    assert "did not answer within 0.5 s" in given_up.last_error


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_authentication_failure_is_permanent(app, worker, make_channel):
    from aiosmtpd.smtp import AuthResult

    from extensions import mail
    from tests.conftest import SmtpServer

    server = SmtpServer(auth_require_tls=False, auth_required=True,
                        authenticator=lambda *args: AuthResult(success=False, handled=False))
    try:
        app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=server.port, MAIL_USERNAME="shop",
                          MAIL_PASSWORD="wrong")
        mail.init_app(app)
        channel_id = make_channel("email", {"recipients": ["owner@example.com"]})
        ids = emit(app)
        worker(until=settled(app, ids))
    finally:
        server.stop()
    failed = delivery(app, ids[0])
    assert failed.status == DeliveryStatus.FAILED and "refused the login" in failed.last_error
    assert "535" in failed.last_error and "wrong" not in failed.last_error
    assert channel(app, channel_id).needs_attention


def test_a_channel_failing_for_the_configured_time_is_disabled_and_the_merchant_emailed(
        app, worker, smtp_server, make_channel, make_webhook, local_receiver, login):
    app.config["CHANNEL_DISABLE_AFTER_HOURS"] = 0.5 / 3600  # half a second
    app.config["DELIVERY_RETRY_SCHEDULE"] = [0.3] * 8
    receiver = local_receiver(lambda path, headers: (500, {}, b"down", 0))
    failing = make_webhook(receiver.url + "/hook", hooks_=["order_pay_hook"])
    make_channel("email", {"recipients": ["owner@example.com"]}, hooks_=["stock_alarm_hook"])
    ids = emit(app)
    worker(until=lambda: not channel(app, failing).enabled)
    worker(until=lambda: len(smtp_server.messages) == 1)  # the notice job
    disabled = channel(app, failing)
    assert disabled.needs_attention and "Disabled automatically" in disabled.attention_reason
    (notice, envelope), = smtp_server.parsed()
    assert notice["Subject"] == f"[Shop] Notifications to {receiver.url}/hook were disabled"
    assert envelope.rcpt_tos == ["owner@example.com"] and "HTTP 500" in notice.get_content()
    assert "Disabled automatically" in login.get("/settings/notifications/").text
    # The delivery in flight when the channel was disabled is cancelled, not retried forever.
    worker(until=settled(app, ids))
    assert delivery(app, ids[0]).status in (DeliveryStatus.CANCELLED, DeliveryStatus.DEAD)


def test_a_success_ends_the_run_of_failures(app, worker, make_webhook, local_receiver):
    app.config["DELIVERY_RETRY_SCHEDULE"] = [1.5, 1.5]  # far enough for the first drain to stop in between
    answers = [500, 200]
    receiver = local_receiver(lambda path, headers: (answers.pop(0) if len(answers) > 1 else answers[0], {}, b"", 0))
    channel_id = make_webhook(receiver.url + "/hook", hooks_=["order_pay_hook"])
    ids = emit(app)
    worker()  # the first attempt fails
    assert channel(app, channel_id).failing_since is not None
    worker(until=settled(app, ids))
    assert delivery(app, ids[0]).status == DeliveryStatus.DELIVERED
    assert channel(app, channel_id).failing_since is None and channel(app, channel_id).enabled


def test_failures_are_stored_as_codes_and_explained_in_the_readers_language(app, login, worker, dingtalk,
                                                                            make_channel):
    """A worker whose message language is Chinese stores the reason as a code (and an English copy
    for logs); the page says it in its own language, DingTalk's errmsg as it came."""
    app.config["MERCHANT_LANGUAGE"] = "zh_CN"
    url = dingtalk.add_robot(TOKEN, secret=SEC)
    channel_id = make_channel("dingtalk", {"url": url}, secret="SEC9999999999wrongwrongwrong")
    ids = [send_test(app, channel_id)]
    worker(until=settled(app, ids))
    failed = delivery(app, ids[0])
    assert failed.last_error_code["code"] == "robot_errcode"
    assert failed.last_error_code["params"]["explanation"] == {"code": "dingtalk_sign", "params": {}}
    assert failed.last_error.startswith("Signature does not match") and "310000" in failed.last_error
    english = login.get(f"/deliveries/{ids[0]}", headers={"Accept-Language": "en"}).text
    chinese = login.get(f"/deliveries/{ids[0]}", headers={"Accept-Language": "zh-CN"}).text
    assert "Signature does not match" in english and "签名不匹配" not in english
    assert "签名不匹配" in chinese and "Signature does not match" not in chinese
    # errmsg is DingTalk's own words: shown as it came, on either page.
    assert "errcode 310000: sign not match" in english and "钉钉 errcode 310000：sign not match" in chinese
