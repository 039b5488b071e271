"""The WebHook transport: exact headers, masking, URL rules, and how each outcome is classified,
against real HTTP servers on loopback."""
from __future__ import annotations

import hashlib
import hmac
import socket
from types import SimpleNamespace

import pytest

from models import Channel
from notify import reasons, signing
from notify.channels import PERMANENT, SUCCESS, TRANSIENT, DeliverySettings
from notify.channels.webhook.transport import WebhookTransport, url_problem

SETTINGS = DeliverySettings(connect_timeout=1, read_timeout=0.5, response_max_bytes=64 * 1024, allow_private=True)


def fake_event(hook="order_pay_hook"):
    from datetime import datetime

    event = SimpleNamespace(id="evt_1", hook=hook, is_test=False, data={"order": {"order_no": "A1", "name": "绿茶"}},
                            created_at=datetime(2026, 11, 27, 10, 0, 0, 123000))
    from models.deliveries import Event

    event.envelope = lambda: Event.envelope(event)
    return event


def transport(url="http://127.0.0.1:9/hook", mode="signature", secret="SECtest", **channel_fields):
    channel = Channel(kind="webhook", config={"url": url, "auth_mode": mode}, secret=secret, **channel_fields)
    return WebhookTransport(channel, SETTINGS)


def test_signature_mode_headers_are_the_seed_headers_byte_for_byte():
    request = transport().prepare(fake_event(), SimpleNamespace(id="dlv_abc"), 1700000000000)
    assert request.method == "POST"
    assert request.headers == {
        "Content-Type": "application/json",
        "User-Agent": "apsdai-hook",
        "X-Apsdai-Token": "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D",
        "X-Apsdai-Timestamp": "1700000000000",
        "X-Apsdai-Event": "order_pay_hook",
        "X-Apsdai-Delivery": "dlv_abc",
        # Added by this product: the body's signature (the seed's token does not cover the body).
        "X-Apsdai-Signature-256": "sha256=" + hmac.new(b"SECtest", b"1700000000000." + request.body,
                                                       hashlib.sha256).hexdigest(),
    }
    assert request.masked_headers == dict(request.headers, **{"X-Apsdai-Token": "••••••••g%3D"})


def test_during_a_rotation_the_token_keeps_the_old_secret_and_the_body_is_signed_by_both():
    from datetime import timedelta

    from models.base import utcnow

    rotating = transport(secret="whsec_new", previous_secret="SECtest",
                         previous_secret_until=utcnow() + timedelta(hours=1))
    request = rotating.prepare(fake_event(), SimpleNamespace(id="d"), 1700000000000)
    assert request.headers["X-Apsdai-Token"] == "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D"  # the old secret's
    assert request.headers["X-Apsdai-Signature-256"] == ", ".join(
        signing.body_signature(s, 1700000000000, request.body) for s in ("whsec_new", "SECtest"))
    ended = transport(secret="whsec_new", previous_secret="SECtest", previous_secret_until=utcnow() - timedelta(seconds=1))
    request = ended.prepare(fake_event(), SimpleNamespace(id="d"), 1700000000000)
    assert request.headers["X-Apsdai-Token"] == signing.sign("whsec_new", 1700000000000)
    assert request.headers["X-Apsdai-Signature-256"] == signing.body_signature("whsec_new", 1700000000000, request.body)


def test_password_mode_sends_the_password_as_is_and_masks_it():
    request = transport(mode="password", secret="p@ss word/1").prepare(fake_event(), SimpleNamespace(id="d"), 1)
    assert request.headers["X-Apsdai-Token"] == "p@ss word/1"
    assert "p@ss" not in request.masked_headers["X-Apsdai-Token"]


def test_body_is_the_documented_envelope_in_compact_utf8_json():
    request = transport().prepare(fake_event(), SimpleNamespace(id="d"), 1)
    assert request.body == ('{"id":"evt_1","event":"order_pay_hook","created_at":"2026-11-27T10:00:00.123Z",'
                            '"test":false,"data":{"order":{"order_no":"A1","name":"绿茶"}}}').encode("utf-8")


def test_curl_command_reproduces_headers_and_body():
    request = transport().prepare(fake_event(), SimpleNamespace(id="d"), 1700000000000)
    curl = request.curl()
    assert curl.startswith("curl -sS -i -X POST http://127.0.0.1:9/hook")
    assert "'X-Apsdai-Token: aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D'" in curl
    assert "--data-binary" in curl and "绿茶" in curl


@pytest.mark.parametrize("url, fragment", [
    ("", "Enter the URL"),
    ("example.com/hook", "not a valid URL"),
    ("ftp://example.com/hook", "Only http:// and https://"),
    ("javascript:alert(1)", "not a valid URL"),
    ("http://exa mple.com", "spaces"),
    ("http://user:pw@example.com/", "credentials"),
    ("http://example.com:99999/", "not a valid URL"),
    ("https://" + "a" * 2050 + ".com", "longer than"),
])
def test_bad_urls_are_explained(url, fragment):
    assert fragment in url_problem(url)


@pytest.mark.parametrize("url", ["https://example.com/hooks/apsdai", "http://8.8.8.8:5001/webhook",
                                 "https://[2001:4860::8888]:8443/x?y=1"])
def test_good_urls_pass(url):
    assert url_problem(url) is None


def test_loopback_urls_pass_when_private_targets_are_allowed(app):
    with app.app_context():  # the tests' app allows them (ALLOW_PRIVATE_TARGETS=1)
        assert url_problem("http://127.0.0.1:5001/webhook") is None and url_problem("https://[::1]:8443/x") is None
        app.config["ALLOW_PRIVATE_TARGETS"] = False
        assert "loopback or private" in url_problem("http://127.0.0.1:5001/webhook")


def test_validate_requires_a_secret_in_both_modes():
    assert "secret" in WebhookTransport.validate({"url": "https://e.com", "auth_mode": "signature"}, "")
    assert "secret" in WebhookTransport.validate({"url": "https://e.com", "auth_mode": "password"}, " ")
    assert WebhookTransport.validate({"url": "https://e.com", "auth_mode": "bogus"}, "x") == {
        "auth_mode": "Choose password or signature."}
    assert WebhookTransport.validate({"url": "https://e.com", "auth_mode": "signature"}, "s3cret") == {}
    # A password is sent as a header, which http.client writes as Latin-1: anything else could never
    # be delivered. A signature's secret is only a key, so it may be any text.
    assert "secret" in WebhookTransport.validate({"url": "https://e.com", "auth_mode": "password"}, "密码123")
    assert WebhookTransport.validate({"url": "https://e.com", "auth_mode": "password"}, "pässwörd") == {}
    assert WebhookTransport.validate({"url": "https://e.com", "auth_mode": "signature"}, "密钥123") == {}


@pytest.fixture
def scripted_server(local_receiver):
    """A receiver answering each path as the test scripts it in `routes`."""
    routes = {}
    receiver = local_receiver(lambda path, headers: routes[path])
    return receiver.url, routes


def send(url):
    t = transport(url=url)
    return t.send(t.prepare(fake_event(), SimpleNamespace(id="d"), signing.now_ms()))


def test_2xx_is_success_with_status_latency_and_body_excerpt(scripted_server):
    base, routes = scripted_server
    routes["/ok"] = (204, {"X-Receiver": "yes"}, b"", 0)
    routes["/ok2"] = (200, {}, b'{"ok":true}' + b"x" * 5000, 0)
    outcome = send(base + "/ok")
    assert outcome.kind == SUCCESS and outcome.status == 204 and outcome.response_headers["X-Receiver"] == "yes"
    outcome = send(base + "/ok2")
    assert outcome.kind == SUCCESS and outcome.response_body.startswith('{"ok":true}')
    assert len(outcome.response_body) == 2048  # the excerpt kept in the attempt row


def test_5xx_and_4xx_are_transient_failures_naming_the_status(scripted_server):
    base, routes = scripted_server
    routes["/500"] = (500, {}, b"boom", 0)
    routes["/401"] = (401, {}, b'{"ok":false,"reason":"signature does not match"}', 0)
    outcome = send(base + "/500")
    assert (outcome.kind, outcome.status, outcome.error) == (TRANSIENT, 500, reasons.reason("webhook_status", status=500))
    outcome = send(base + "/401")
    assert outcome.kind == TRANSIENT and "signature does not match" in outcome.response_body
    assert outcome.error.code == "webhook_unauthorized" and "this WebHook's secret" in str(outcome.error)


def test_410_gone_is_permanent(scripted_server):
    base, routes = scripted_server
    routes["/gone"] = (410, {}, b"", 0)
    outcome = send(base + "/gone")
    assert outcome.kind == PERMANENT and "410 Gone" in str(outcome.error)


def test_redirects_are_not_followed_and_count_as_failure(scripted_server):
    base, routes = scripted_server
    routes["/moved"] = (301, {"Location": base + "/ok"}, b"", 0)
    routes["/ok"] = (200, {}, b"", 0)
    outcome = send(base + "/moved")
    assert outcome.kind == TRANSIENT and outcome.status == 301
    assert "redirect" in str(outcome.error) and base + "/ok" in str(outcome.error)


def test_retry_after_is_read_on_429_and_503(scripted_server):
    base, routes = scripted_server
    routes["/slow-down"] = (429, {"Retry-After": "120"}, b"", 0)
    routes["/maint"] = (503, {"Retry-After": "30"}, b"", 0)
    routes["/err"] = (500, {"Retry-After": "30"}, b"", 0)
    assert send(base + "/slow-down").retry_after == 120
    assert send(base + "/maint").retry_after == 30
    assert send(base + "/err").retry_after is None


def test_read_timeout_is_explained(scripted_server):
    base, routes = scripted_server
    routes["/hang"] = (200, {}, b"", 1.5)
    outcome = send(base + "/hang")
    assert outcome.kind == TRANSIENT and outcome.status is None
    assert "did not answer within 0.5 s" in str(outcome.error)


def test_connection_refused_is_explained():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outcome = send(f"http://127.0.0.1:{port}/hook")
    assert outcome.kind == TRANSIENT and outcome.status is None
    assert str(outcome.error).startswith(f"127.0.0.1:{port} refused the connection")


def test_unresolvable_host_is_explained():
    outcome = send("http://no-such-host.invalid/hook")
    assert outcome.kind == TRANSIENT and "DNS lookup failed" in str(outcome.error)


def test_tls_failure_is_explained(scripted_server):
    base, _ = scripted_server
    outcome = send(base.replace("http://", "https://") + "/ok")  # TLS handshake against plain HTTP
    assert outcome.kind == TRANSIENT and "TLS error" in str(outcome.error)
