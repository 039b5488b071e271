"""Failure reasons are stored as codes and put into words when shown (notify/reasons.py): in the
page's language on pages, in the message language in emails; rows from before codes show their
text as stored. Tests mention nobody unless asked; a Test's failure is not called "dead"."""
from __future__ import annotations

import re

import pytest
from flask_babel import force_locale, gettext

from extensions import db
from models import Attempt, Channel, Delivery, DeliveryStatus, Event
from notify import dispatch, hooks, http, reasons
from notify.channels.email.transport import notice, send_test_email
from tests.conftest import free_port

PLACEHOLDER = re.compile(r"%\((\w+)\)s")
CHINESE = re.compile(r"[\u4e00-\u9fff]")
TOKEN = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


def sample_params(code: str) -> dict:
    """Parameters for every placeholder of `code`'s text, each recognisable in the result."""
    if code == "service":
        return {"kind": "dingtalk"}
    if code == "address_range":
        return {"network": "169.254.0.0/16"}
    if code == "filtered_amount":
        return {"amount": "50.00", "minimum": "100.00", "currency": "CNY"}
    if code == "filtered_amount_unreadable":
        return {"amount": "<amount-value>", "minimum": "100.00", "currency": "CNY"}
    return {name: f"<{name}-value>" for name in PLACEHOLDER.findall(reasons.TEXTS[code])}


@pytest.mark.parametrize("locale", ["en", "zh_Hans_CN"])
def test_every_code_has_words_in_both_languages(app, locale):
    """No code renders its fallback, every parameter appears as given (service replies are data),
    and in Chinese every text is translated."""
    unknown = {}
    with app.test_request_context(), force_locale(locale):
        for code in reasons.TEXTS:
            params = sample_params(code)
            words = str(reasons.Reason(code, params))
            fallback = str(reasons.Reason("no-such-code"))
            if words == fallback or words.startswith(f"{code}: ") or not words.strip():
                unknown[code] = words
            for value in params.values():
                if value.startswith("<"):
                    assert value in words, (code, words)
            text = reasons.TEXTS[code]
            translated = CHINESE.search(words) if callable(text) else gettext(text) != text
            if locale == "zh_Hans_CN" and not translated:
                unknown[code] = words
            if locale == "en":
                assert words == reasons.Reason(code, params).english(), code
    assert unknown == {}


def test_the_fallbacks_unknown_codes_and_unfit_parameters_never_raise(app):
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        # A code this version does not know: the stored English copy, else a sentence naming the code.
        assert reasons.show({"code": "from_the_future", "params": {}}, "Written by a newer version") == \
            "Written by a newer version"
        assert "from_the_future" in reasons.show({"code": "from_the_future", "params": {}}, None)
        # Parameters that do not fit the text: what is known, not an error page.
        assert "host=x" in reasons.show({"code": "dns_timeout", "params": {"host": "x"}}, None)
        # A row from before codes: its text, as stored.
        assert reasons.show(None, "DNS lookup failed: the host name in a.example could not be resolved") == \
            "DNS lookup failed: the host name in a.example could not be resolved"
        assert reasons.show(None, None) is None


def test_a_dns_failure_names_the_host_and_the_fix(app):
    with app.test_request_context():
        result = http.post("http://nonexistent.invalid:8080/hook", {}, b"{}", connect_timeout=2, read_timeout=2,
                           max_bytes=100)
        assert result.status is None and result.error == reasons.reason("dns_failed", host="nonexistent.invalid")
        words = str(result.error)
    assert "nonexistent.invalid" in words and "cannot reach" in words
    assert "internet access" in words and "DNS resolver" in words and "proxy" in words
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        words = str(result.error)
    assert "nonexistent.invalid" in words and "DNS 解析失败" in words and "互联网" in words


@pytest.mark.parametrize("worker_language, page_language, said, not_said", [
    ("en", "zh-CN", "nonexistent.invalid 的 DNS 解析失败", "DNS lookup failed"),
    ("zh_CN", "en", "DNS lookup failed for nonexistent.invalid", "DNS 解析失败"),
])
def test_a_reason_written_by_a_worker_in_one_language_is_read_in_the_other(
        app, login, worker, make_webhook, worker_language, page_language, said, not_said):
    app.config["MERCHANT_LANGUAGE"] = worker_language
    make_webhook("http://nonexistent.invalid/hook")
    with app.app_context():
        (delivery_id,) = dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample).delivery_ids
    worker()
    with app.app_context():
        stored = db.session.get(Delivery, delivery_id)
        assert stored.status in (DeliveryStatus.RETRYING, DeliveryStatus.DEAD)
        assert stored.last_error_code == {"code": "dns_failed", "params": {"host": "nonexistent.invalid"}}
        assert stored.last_error.startswith("DNS lookup failed for nonexistent.invalid")  # the English copy
        assert all(attempt.error_code == stored.last_error_code for attempt in stored.attempts)
    headers = {"Accept-Language": page_language}
    for url in (f"/deliveries/{delivery_id}", f"/deliveries/{delivery_id}/result", "/deliveries/"):
        page = login.get(url, headers=headers).text
        assert said in page and not_said not in page, url


def test_rows_from_before_codes_show_their_text_as_stored(app, login, make_webhook):
    channel_id = make_webhook("https://hooks.example.com/in")
    legacy = "Connection refused by hooks.example.com: is the receiver running and listening on that port?"
    with app.app_context():
        event = Event(hook="order_pay_hook", data={}, source="api")
        db.session.add(event)
        db.session.flush()
        delivery = Delivery(event_id=event.id, channel_id=channel_id, hook=event.hook, channel_kind="webhook",
                            target="https://hooks.example.com/in", status=DeliveryStatus.DEAD, attempt_count=1,
                            max_attempts=1, last_error=legacy)
        db.session.add(delivery)
        db.session.flush()
        db.session.add(Attempt(delivery_id=delivery.id, channel_id=channel_id, number=1, outcome="transient",
                               error=legacy))
        channel = db.session.get(Channel, channel_id)
        channel.needs_attention, channel.attention_reason = True, "旧版本写的原因"
        db.session.commit()
        delivery_id = delivery.id
    for language in ("en", "zh-CN"):
        headers = {"Accept-Language": language}
        assert legacy in login.get(f"/deliveries/{delivery_id}", headers=headers).text
        assert legacy[:60] in login.get("/deliveries/", headers=headers).text
        assert "旧版本写的原因" in login.get("/settings/notifications/", headers=headers).text


def test_the_auto_disable_reason_and_its_email_follow_the_reader(app, login, make_webhook):
    channel_id = make_webhook("https://hooks.example.com/in")
    why = reasons.reason("auto_disabled", hours="24")
    with app.app_context():
        channel = db.session.get(Channel, channel_id)
        channel.needs_attention, channel.attention_reason, channel.attention_code = True, why.english(), why.to_json()
        db.session.commit()
        app.config["MERCHANT_LANGUAGE"] = "zh_CN"
        last = reasons.reason("webhook_status", status=500)
        # As notify.jobs.tell_disabled passes it: put into words when the email is written.
        body = notice(["owner@example.com"], "channel_disabled.txt", channel=channel,
                      last_error=reasons.find(last.to_json(), last.english())).body
    assert "接收方返回了 HTTP 500" in body and "The receiver answered" not in body
    assert "Disabled automatically: every delivery failed for 24 hours" in login.get(
        "/settings/notifications/", headers={"Accept-Language": "en"}).text
    assert "Disabled automatically" not in login.get("/settings/notifications/",
                                                     headers={"Accept-Language": "zh-CN"}).text


def test_an_smtp_failure_is_explained_in_the_readers_language(app):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port(), MAIL_TIMEOUT=2)
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        outcome = send_test_email("owner@example.com")
        assert outcome.kind == "transient" and outcome.error.code == "smtp_refused"
        assert "127.0.0.1" in str(outcome.error) and "防火墙" in str(outcome.error)
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert "Check the host, the port and the firewall" in str(outcome.error)


# -- Tests: their status, and whom they mention -------------------------------------------------
def test_a_failed_test_reads_failed_not_retried_on_the_list_and_its_page(app, login, make_webhook, worker):
    channel_id = make_webhook("http://127.0.0.1:9/hook")  # discard port: nothing listens
    response = login.post(f"/settings/notifications/channels/{channel_id}/test", data={"hook": "order_pay_hook"})
    test_id = response.location.rsplit("/", 1)[-1]
    with app.app_context():  # a real event that used up its one attempt is "dead", as before
        (real_id,) = dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample, max_attempts=1).delivery_ids
    worker()
    with app.app_context():
        assert db.session.get(Delivery, test_id).attempt_count == 1
    for url in (f"/deliveries/{test_id}", f"/deliveries/{test_id}/result"):
        assert "failed (test, not retried)" in login.get(url).text
        assert "失败（测试，不重试）" in login.get(url, headers={"Accept-Language": "zh-CN"}).text
    assert 'badge-dead">dead<' in login.get(f"/deliveries/{real_id}").text
    listing = login.get("/deliveries/").text
    assert listing.count("failed (test, not retried)") == 1 and listing.count('badge-dead">dead<') == 1


def test_an_email_test_that_fails_claims_no_success(app, login, make_channel, worker):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port(), MAIL_TIMEOUT=2)
    channel_id = make_channel("email", {"recipients": ["owner@example.com"]})
    response = login.post(f"/settings/notifications/channels/{channel_id}/test", data={"hook": "order_pay_hook"})
    delivery_id = response.location.rsplit("/", 1)[-1]
    worker()
    page = login.get(f"/deliveries/{delivery_id}").text
    assert "failed (test, not retried)" in page and "Connection refused by smtp://127.0.0.1" in page
    assert "your email notifications work." not in page.replace("if it reached you, your email notifications work.", "")
    notifications = login.get("/settings/notifications/").text
    assert "did not answer" in notifications and "Connection refused by smtp://127.0.0.1" in notifications


MENTIONS = {"order": {"all": True, "mobiles": "13800000000", "user_ids": "zhangsan"}}


def _test(login, channel_id, **extra) -> str:
    response = login.post(f"/settings/notifications/channels/{channel_id}/test",
                          data={"hook": "order_pay_hook", **extra})
    return response.location.rsplit("/", 1)[-1]


def test_a_dingtalk_test_mentions_nobody_unless_asked(app, login, worker, dingtalk, make_channel):
    channel_id = make_channel("dingtalk", {"url": dingtalk.add_robot(TOKEN),
                                           "mentions": {"order": {"all": True, "mobiles": "13800000000"}}})
    assert "Also @mention as configured" in login.get(f"/settings/notifications/dingtalk/{channel_id}").text
    _test(login, channel_id)
    worker()
    _test(login, channel_id, mentions="y")
    worker()
    with app.app_context():  # a real event mentions as configured, as before
        dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample)
    worker()
    quiet, asked, real = dingtalk.robots[TOKEN].messages
    assert quiet["at"] == {"atMobiles": [], "isAtAll": False} and "@13800000000" not in quiet["markdown"]["text"]
    assert asked["at"] == {"atMobiles": ["13800000000"], "isAtAll": True}
    assert asked["markdown"]["text"].endswith("@13800000000")
    assert real["at"] == asked["at"]


def test_a_wecom_test_mentions_nobody_unless_asked(app, login, worker, wecom, make_channel):
    key = "wecomkey0000000000009"
    channel_id = make_channel("wecom", {"url": wecom.add_robot(key), "mentions": MENTIONS})
    _test(login, channel_id)
    worker()
    _test(login, channel_id, mentions="y")
    worker()
    quiet, asked = wecom.robots[key].messages
    # Without mentions, the usual markdown with nobody named; asked, the text message that can mention.
    assert quiet["msgtype"] == "markdown" and "<@zhangsan>" not in quiet["markdown"]["content"]
    assert asked["msgtype"] == "text"
    assert asked["text"]["mentioned_list"] == ["zhangsan", "@all"]
    assert asked["text"]["mentioned_mobile_list"] == ["13800000000"]


def test_the_mentions_box_is_offered_for_robots_only(app, login, make_webhook):
    channel_id = make_webhook("https://hooks.example.com/in")
    assert "Also @mention as configured" not in login.get(f"/settings/notifications/webhooks/{channel_id}").text
