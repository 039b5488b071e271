"""Standard Webhooks, chosen per WebHook: real deliveries from a real worker to a loopback receiver,
verified with the official `standardwebhooks` package (never with the product's own code), in the
normal and the rotation-window case; the secret's form; the form's checkbox; the settings file."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote_plus

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.conftest import run_worker


class VerifyingReceiver:
    """A receiver on loopback that keeps each request's exact body and headers, and answers 204
    when `standardwebhooks` verifies it with `secret`, 401 otherwise."""

    def __init__(self, secret: str):
        received = self.received = []
        verifier = Webhook(secret)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = dict(self.headers.items())
                received.append((body, headers))
                try:
                    verifier.verify(body, headers)
                    status = 204
                except WebhookVerificationError:
                    status = 401
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def verifying_receiver():
    receivers = []

    def start(secret: str) -> VerifyingReceiver:
        receivers.append(VerifyingReceiver(secret))
        return receivers[-1]

    yield start
    for receiver in receivers:
        receiver.close()


def seed_token(secret: str, timestamp_ms: str) -> str:
    """CHANNELS.md §1, written out here rather than taken from notify.signing."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def new_secret(app) -> str:
    from notify import signing

    return signing.generate_secret()


def deliver_one(app, channel_id: int) -> str:
    """An order_pay_hook event to that channel, sent by a real worker; returns the delivery id."""
    from extensions import db
    from models import Channel, Delivery
    from notify import dispatch, hooks

    with app.app_context():
        channel = db.session.get(Channel, channel_id)
        event = dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample, channels=[channel])
        delivery_id = event.delivery_ids[0]
    run_worker(app)
    with app.app_context():
        delivery = db.session.get(Delivery, delivery_id)
        assert delivery.status == "delivered", (delivery.status, delivery.last_error)
    return delivery_id


def test_a_real_delivery_verifies_with_the_official_library_and_keeps_the_seed_headers(
        app, make_channel, verifying_receiver):
    secret = new_secret(app)
    receiver = verifying_receiver(secret)
    channel_id = make_channel("webhook", {"url": receiver.url, "auth_mode": "signature", "standard_webhooks": True},
                              secret)
    delivery_id = deliver_one(app, channel_id)

    [(body, headers)] = receiver.received
    payload = Webhook(secret).verify(body, headers)
    assert payload["data"]["order"]["order_no"] and payload["event"] == "order_pay_hook"
    assert headers["webhook-id"] == headers["X-Apsdai-Delivery"] == delivery_id
    # Seconds, the same moment as the seed's milliseconds.
    assert int(headers["webhook-timestamp"]) == int(headers["X-Apsdai-Timestamp"]) // 1000
    assert headers["webhook-signature"].startswith("v1,") and " " not in headers["webhook-signature"]
    # The seed's headers are unchanged: its token is keyed with the secret's text, whsec_ included.
    assert headers["User-Agent"] == "apsdai-hook" and headers["X-Apsdai-Event"] == "order_pay_hook"
    assert headers["X-Apsdai-Token"] == seed_token(secret, headers["X-Apsdai-Timestamp"])
    assert headers["X-Apsdai-Signature-256"] == "sha256=" + hmac.new(
        secret.encode(), headers["X-Apsdai-Timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()


def test_a_tampered_delivery_is_refused_by_the_official_library(app, make_channel, verifying_receiver):
    secret = new_secret(app)
    receiver = verifying_receiver(secret)
    channel_id = make_channel("webhook", {"url": receiver.url, "auth_mode": "signature", "standard_webhooks": True},
                              secret)
    deliver_one(app, channel_id)
    [(body, headers)] = receiver.received
    Webhook(secret).verify(body, headers)  # the original passes

    tampered = body.replace(b'"128.00"', b'"1.00"')
    assert tampered != body
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, headers)
    with pytest.raises(WebhookVerificationError):  # another message's id with this signature
        Webhook(secret).verify(body, dict(headers, **{"webhook-id": "dlv_other"}))
    with pytest.raises(WebhookVerificationError):  # another secret
        Webhook(new_secret(app)).verify(body, headers)


def test_during_a_rotation_window_both_secrets_verify_and_after_it_only_the_new(app, make_channel, verifying_receiver):
    from extensions import db
    from models import Channel
    from notify import channels as channel_service

    old = new_secret(app)
    receiver = verifying_receiver(old)  # a receiver that knows only the old secret keeps working
    channel_id = make_channel("webhook", {"url": receiver.url, "auth_mode": "signature", "standard_webhooks": True},
                              old)
    with app.app_context():
        channel = db.session.get(Channel, channel_id)
        channel_service.rotate_secret(channel, timedelta(hours=24))
        db.session.commit()
        new = channel.secret
    assert new != old

    deliver_one(app, channel_id)
    [(body, headers)] = receiver.received
    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2 and all(e.startswith("v1,") for e in entries)
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)
    # The new secret's signature comes first, and each entry is one secret's alone.
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, dict(headers, **{"webhook-signature": entries[0]}))
    Webhook(new).verify(body, dict(headers, **{"webhook-signature": entries[0]}))
    # The seed's token keeps the old secret during the window, as before.
    assert headers["X-Apsdai-Token"] == seed_token(old, headers["X-Apsdai-Timestamp"])

    with app.app_context():  # the window ends
        channel = db.session.get(Channel, channel_id)
        channel.previous_secret_until = channel.previous_secret_until - timedelta(hours=25)
        db.session.commit()
    receiver.received.clear()
    with app.app_context():
        from notify import dispatch, hooks

        dispatch.emit("stock_alarm_hook", hooks.get("stock_alarm_hook").sample,
                      channels=[db.session.get(Channel, channel_id)])
    run_worker(app, until=lambda: bool(receiver.received))
    body, headers = receiver.received[0]  # this receiver knows only the old secret: it refuses (retried)
    assert " " not in headers["webhook-signature"]
    Webhook(new).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, headers)


def test_without_the_option_no_standard_headers_are_sent(app, make_webhook, local_receiver):
    receiver = local_receiver(lambda path, headers: (200, {}, b"", 0))
    channel_id = make_webhook(receiver.url + "/hooks", secret=new_secret(app))
    deliver_one(app, channel_id)
    [(_path, headers)] = receiver.requests
    assert not {name.lower() for name in headers} & {"webhook-id", "webhook-timestamp", "webhook-signature"}


def test_generated_secrets_are_standard_webhooks_secrets():
    from notify import signing

    secrets_ = {signing.generate_secret() for _ in range(20)}
    assert len(secrets_) == 20
    for secret in secrets_:
        assert secret.startswith("whsec_")
        raw = base64.b64decode(secret[len("whsec_"):], validate=True)  # standard alphabet, padded
        assert len(raw) == 32
        assert Webhook(secret)._whsecret == raw  # the library reads the same key
        assert signing.standard_key(secret) == raw


@pytest.mark.parametrize("secret, why", [
    ("whsec_" + base64.urlsafe_b64encode(bytes(range(250, 256)) * 6).decode().rstrip("="), "URL-safe alphabet"),
    ("whsec_" + base64.b64encode(b"x" * 23).decode(), "23 bytes"),
    ("whsec_" + base64.b64encode(b"x" * 65).decode(), "65 bytes"),
    (base64.b64encode(b"x" * 32).decode(), "no prefix"),
    ("whsec_not base64!", "not Base64"),
    ("whsec_test_secret_0123456789", "an older test secret"),
    ("SECtest", "the seed's example"),
])
def test_only_whsec_standard_base64_of_24_to_64_bytes_is_a_standard_secret(secret, why):
    from notify import signing

    assert signing.standard_key(secret) is None, why


def test_the_url_safe_secrets_of_older_versions_would_verify_nothing():
    """Why the check is strict: the official library drops `-` and `_` and decodes other bytes."""
    raw = bytes(range(250, 256)) * 6
    old_style = "whsec_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert "-" in old_style or "_" in old_style[6:]
    assert Webhook(old_style)._whsecret != raw


def test_the_option_needs_a_standard_secret_and_signature_mode(app):
    from notify import signing
    from notify.channels.webhook.transport import WebhookTransport

    good = signing.generate_secret()
    config = {"url": "https://example.com/hooks", "auth_mode": "signature", "standard_webhooks": True}
    with app.test_request_context():
        assert WebhookTransport.validate(config, good) == {}
        assert "whsec_" in WebhookTransport.validate(config, "whsec_test_secret_0123456789")["secret"]
        assert "signature mode" in WebhookTransport.validate(dict(config, auth_mode="password"), good)[
            "standard_webhooks"]
        assert "standard_webhooks" in WebhookTransport.validate(dict(config, standard_webhooks="yes"), good)
        # Without the option, any secret goes, as before.
        assert WebhookTransport.validate(dict(config, standard_webhooks=False), "SECtest") == {}


def test_the_form_turns_it_on_and_explains_an_old_secret(app, login, make_webhook):
    from extensions import db
    from models import Channel
    from notify import signing

    channel_id = make_webhook("http://127.0.0.1:9/hooks", secret="whsec_test_secret_0123456789")
    page = login.get(f"/settings/notifications/webhooks/{channel_id}")
    assert b'name="standard_webhooks"' in page.data
    form = {"url": "http://127.0.0.1:9/hooks", "auth_mode": "signature", "hooks": ["order_pay_hook"],
            "enabled": "y", "standard_webhooks": "y", "secret": ""}
    refused = login.post(f"/settings/notifications/webhooks/{channel_id}", data=form)
    assert refused.status_code == 200
    assert "Standard Webhooks needs a secret of the form whsec_" in refused.get_data(as_text=True)
    with app.app_context():
        assert not db.session.get(Channel, channel_id).config.get("standard_webhooks")

    secret = signing.generate_secret()
    saved = login.post(f"/settings/notifications/webhooks/{channel_id}", data=dict(form, secret=secret))
    assert saved.status_code == 302
    with app.app_context():
        channel = db.session.get(Channel, channel_id)
        assert channel.config["standard_webhooks"] is True and channel.secret == secret
    import re

    page = login.get(f"/settings/notifications/webhooks/{channel_id}").get_data(as_text=True)
    [box] = re.findall(r'<input[^>]*name="standard_webhooks"[^>]*>', page)
    assert "checked" in box


def test_the_flag_survives_a_settings_export_and_import(app, make_channel):
    from extensions import db
    from models import Channel
    from notify import settings_io, signing

    secret = signing.generate_secret()
    on = make_channel("webhook", {"url": "http://127.0.0.1:9/on", "auth_mode": "signature", "standard_webhooks": True},
                      secret)
    off = make_channel("webhook", {"url": "http://127.0.0.1:9/off", "auth_mode": "signature"}, "SECtest")
    with app.app_context():
        exported = settings_io.export(include_secrets=True)
        by_url = {c["config"]["url"]: c for c in exported["channels"]}
        assert by_url["http://127.0.0.1:9/on"]["config"]["standard_webhooks"] is True
        assert by_url["http://127.0.0.1:9/off"]["config"]["standard_webhooks"] is False
        for channel in db.session.scalars(db.select(Channel)):
            db.session.delete(channel)
        db.session.commit()

        result = settings_io.import_(json.dumps(exported))
        assert result["created"] == 2
        channels = {c.config["url"]: c for c in db.session.scalars(db.select(Channel))}
        assert channels["http://127.0.0.1:9/on"].config["standard_webhooks"] is True
        assert channels["http://127.0.0.1:9/on"].secret == secret
        assert channels["http://127.0.0.1:9/off"].config["standard_webhooks"] is False

        # A file that turns it on for a secret that cannot carry it is refused, naming the field.
        broken = json.loads(json.dumps(exported))
        for item in broken["channels"]:
            item["config"]["standard_webhooks"] = True
        with pytest.raises(settings_io.ImportError_) as refused:
            settings_io.import_(json.dumps(broken))
        assert any(p.startswith("channels[1].secret:") and "whsec_" in p for p in refused.value.problems)
    assert on and off
