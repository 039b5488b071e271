"""The signature check: a real worker sends a request signed with a wrong secret to a real receiver
on loopback; the receiver demo refuses it (passes), a receiver that accepts everything is flagged on
the WebHook's page and the notifications page until a later check passes."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import quote_plus

import pytest

from tests.conftest import SwitchableReceiver, run_worker


@pytest.fixture
def accept_all():
    receiver = SwitchableReceiver(200)
    yield receiver
    receiver.close()


def check(app, login, channel_id: int) -> str:
    """Press the button, let a real worker send the probe, and return the result page's text."""
    pressed = login.post(f"/settings/notifications/webhooks/{channel_id}/signature-check")
    assert pressed.status_code == 302
    assert pressed.headers["Location"].endswith(f"/webhooks/{channel_id}/signature-check")
    pending = login.get(pressed.headers["Location"]).get_data(as_text=True)
    assert 'http-equiv="refresh"' in pending and "checking" in pending
    run_worker(app)
    return login.get(pressed.headers["Location"]).get_data(as_text=True)


def channel_state(app, channel_id: int):
    from extensions import db
    from models import Channel

    with app.app_context():
        channel = db.session.get(Channel, channel_id)
        return (channel.signature_check_status, channel.signature_check_detail, channel.signature_check_id,
                channel.forgery_accepted_at, channel.needs_attention, channel.failing_since)


def seed_token(secret: str, timestamp_ms: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def test_the_receiver_demo_refuses_the_forgery_and_the_check_passes(app, login, make_webhook, receiver_demo):
    demo = receiver_demo()
    channel_id = make_webhook(demo.url, secret=demo.secret)
    page = check(app, login, channel_id)
    status, detail, probe_id, flagged_at, attention, failing = channel_state(app, channel_id)
    assert (status, detail, flagged_at) == ("passed", "HTTP 401", None)
    assert "passed" in page and "HTTP 401" in page and probe_id in page and 'http-equiv="refresh"' not in page
    # A refusal is what we hoped for: the channel is not blamed for it.
    assert not attention and failing is None
    # The probe is no delivery: the history has none.
    assert not _deliveries(app)
    # The demo lists it as refused, by the probe's own delivery id, and verified nothing.
    [seen] = demo.events()
    assert seen["delivery"] == probe_id and seen["verified"] is False and "signature" in seen["reason"]
    channel_page = login.get(f"/settings/notifications/webhooks/{channel_id}").get_data(as_text=True)
    assert "Check that my receiver verifies signatures" in channel_page and "passed" in channel_page
    assert "data-forgery-flag" not in channel_page


def _deliveries(app):
    from extensions import db
    from models import Delivery

    with app.app_context():
        return db.session.scalars(db.select(Delivery)).all()


def test_a_receiver_that_accepts_everything_is_flagged_until_a_later_check_passes(
        app, login, make_webhook, accept_all):
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    channel_id = make_webhook(accept_all.url, secret=secret)

    page = check(app, login, channel_id)
    status, detail, probe_id, flagged_at, attention, _failing = channel_state(app, channel_id)
    assert (status, detail) == ("flagged", "HTTP 200") and flagged_at is not None and not attention
    assert "accepts forged requests" in page

    # What was sent: the Test sample, marked test, with its own delivery id, signed with another secret.
    [(body, headers)] = accept_all.received
    envelope = json.loads(body)
    assert envelope["test"] is True and envelope["event"] == headers["X-Apsdai-Event"] == "order_pay_hook"
    assert headers["X-Apsdai-Delivery"] == probe_id and probe_id.startswith("dlv_")
    assert headers["User-Agent"] == "apsdai-hook"
    assert headers["X-Apsdai-Token"] != seed_token(secret, headers["X-Apsdai-Timestamp"])
    assert headers["X-Apsdai-Signature-256"] != "sha256=" + hmac.new(
        secret.encode(), headers["X-Apsdai-Timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert not _deliveries(app)

    # Flagged on the WebHook's page and on its row of the notifications page.
    channel_page = login.get(f"/settings/notifications/webhooks/{channel_id}").get_data(as_text=True)
    assert "data-forgery-flag" in channel_page and "Accepts forged requests:" in channel_page
    index = login.get("/settings/notifications/").get_data(as_text=True)
    assert "data-forgery-flag" in index and f"/webhooks/{channel_id}/signature-check" in index

    # A check without an answer proves nothing: the flag stays.
    accept_all.close()
    page = check(app, login, channel_id)
    status, detail, _probe, still_flagged, *_ = channel_state(app, channel_id)
    assert status == "unknown" and detail and still_flagged == flagged_at
    assert "data-forgery-flag" in login.get("/settings/notifications/").get_data(as_text=True)
    assert "stays flagged until a check passes" in page

    # The receiver is fixed (it now refuses what it cannot verify): the next check passes and clears it.
    fixed = SwitchableReceiver(403)
    try:
        from extensions import db
        from models import Channel

        with app.app_context():
            channel = db.session.get(Channel, channel_id)
            channel.config = dict(channel.config, url=fixed.url)
            db.session.commit()
        page = check(app, login, channel_id)
    finally:
        fixed.close()
    status, detail, _probe, flagged_at, *_ = channel_state(app, channel_id)
    assert (status, detail, flagged_at) == ("passed", "HTTP 403", None)
    assert "data-forgery-flag" not in login.get("/settings/notifications/").get_data(as_text=True)
    assert "data-forgery-flag" not in login.get(f"/settings/notifications/webhooks/{channel_id}").get_data(as_text=True)


def test_a_standard_webhooks_probe_is_refused_by_the_official_library(app, login, make_channel, accept_all):
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    from notify import signing

    secret = signing.generate_secret()
    channel_id = make_channel("webhook", {"url": accept_all.url, "auth_mode": "signature", "standard_webhooks": True},
                              secret)
    check(app, login, channel_id)
    [(body, headers)] = accept_all.received
    assert headers["webhook-id"] == headers["X-Apsdai-Delivery"]
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_the_probe_goes_through_the_outbound_guard(app, login, make_webhook, accept_all):
    channel_id = make_webhook(accept_all.url)
    app.config["ALLOW_PRIVATE_TARGETS"] = False  # loopback is private: the guard refuses it now
    try:
        check(app, login, channel_id)
    finally:
        app.config["ALLOW_PRIVATE_TARGETS"] = True
    status, detail, *_ = channel_state(app, channel_id)
    assert status == "unknown" and "127.0.0.1" in detail
    assert accept_all.received == []
    # The reason is stored as data and put into words on the page, in the page's language.
    for lang in ("en", "zh_CN"):
        page = login.get(f"/settings/notifications/webhooks/{channel_id}/signature-check?lang={lang}").get_data(as_text=True)
        assert "127.0.0.1" in page and '"code"' not in page and "&#34;code&#34;" not in page


def test_a_newer_check_replaces_a_pending_one(app, login, make_webhook, accept_all):
    from notify import probe

    channel_id = make_webhook(accept_all.url)
    login.post(f"/settings/notifications/webhooks/{channel_id}/signature-check")
    first = channel_state(app, channel_id)[2]
    login.post(f"/settings/notifications/webhooks/{channel_id}/signature-check")
    second = channel_state(app, channel_id)[2]
    assert first != second
    run_worker(app)
    # Only the newer probe's result is kept; the older one's job found itself replaced.
    assert channel_state(app, channel_id)[:3] == ("flagged", "HTTP 200", second)
    with app.app_context():
        assert probe.check_signatures(channel_id, first) == "superseded"


def test_the_check_is_for_webhooks_only_and_needs_csrf(app, client, login, make_channel, make_webhook):
    robot = make_channel("dingtalk", {"url": "https://oapi.dingtalk.com/robot/send?access_token=abcdefgh12345678"})
    assert login.post(f"/settings/notifications/webhooks/{robot}/signature-check").status_code == 404
    hook = make_webhook("http://127.0.0.1:9/hooks")
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        login.post(f"/settings/notifications/webhooks/{hook}/signature-check")
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert channel_state(app, hook)[0] is None  # no token, no check


def test_the_check_reads_in_chinese(app, login, make_webhook, accept_all):
    channel_id = make_webhook(accept_all.url)
    login.post(f"/settings/notifications/webhooks/{channel_id}/signature-check")
    run_worker(app)
    zh = {"Accept-Language": "zh-CN"}
    page = login.get(f"/settings/notifications/webhooks/{channel_id}/signature-check", headers=zh).get_data(as_text=True)
    assert "签名检查" in page and "接受伪造请求" in page and "没有校验签名" in page
    channel_page = login.get(f"/settings/notifications/webhooks/{channel_id}", headers=zh).get_data(as_text=True)
    assert "检查我的接收端是否校验签名" in channel_page and "同时按 Standard Webhooks 签名" in channel_page
