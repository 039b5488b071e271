"""The outbound guard: deliveries go to public addresses only (unless ALLOW_PRIVATE_TARGETS), to the
address that was checked, never to link-local ones such as the cloud metadata service."""
import re

import pytest

from extensions import db
from models import Channel, Delivery, DeliveryStatus
from notify import dispatch, guard, hooks

ALL_HOOKS = list(hooks.HOOK_NAMES)


@pytest.mark.parametrize("host, allow_private, refused", [
    ("127.0.0.1", False, True), ("10.1.2.3", False, True), ("192.168.1.10", False, True), ("::1", False, True),
    ("172.16.0.5", False, True), ("100.64.0.1", False, True), ("fd00::1", False, True),
    ("169.254.169.254", False, True), ("169.254.169.254", True, True), ("fe80::1", True, True),
    ("224.0.0.1", True, True), ("0.0.0.0", True, True), ("::ffff:169.254.169.254", True, True),
    ("127.0.0.1", True, False), ("10.1.2.3", True, False), ("::1", True, False), ("8.8.8.8", False, False), ("2001:4860::8888", False, False),
])
def test_which_addresses_are_refused(app, host, allow_private, refused):
    with app.test_request_context():
        result = guard.resolve(host, 443, allow_private)
    assert result.refused is refused and (result.address is None) is refused


def test_a_name_is_checked_by_what_it_resolves_to(app):
    with app.test_request_context():
        result = guard.resolve("localhost", 80, allow_private=False)
    assert result.refused and "loopback or private" in result.problem


def test_save_refuses_private_targets_with_a_clear_message(login, app):
    app.config["ALLOW_PRIVATE_TARGETS"] = False
    for url in ("http://127.0.0.1:5001/webhook", "http://169.254.169.254/latest/meta-data", "http://localhost/x"):
        response = login.post("/settings/notifications/webhooks/new", data={
            "url": url, "auth_mode": "signature", "secret": "whsec_typed_secret_1234", "hooks": ALL_HOOKS})
        errors = re.findall(r'<p class="error" id="url-error">([^<]*)</p>', response.text)
        assert response.status_code == 200 and errors and ("private address" in errors[0] or "link-local" in errors[0])
    app.config["ALLOW_PRIVATE_TARGETS"] = True
    assert login.post("/settings/notifications/webhooks/new", data={
        "url": "http://127.0.0.1:5001/webhook", "auth_mode": "signature", "secret": "whsec_typed_secret_1234",
        "hooks": ALL_HOOKS}).status_code == 302
    response = login.post("/settings/notifications/webhooks/new", data={
        "url": "http://169.254.169.254/", "auth_mode": "signature", "secret": "whsec_typed_secret_1234",
        "hooks": ALL_HOOKS})
    assert "link-local" in response.text  # never, even with the setting


def test_send_refuses_too_and_nothing_reaches_the_receiver(app, worker, make_webhook, local_receiver):
    receiver = local_receiver(lambda path, headers: (200, {}, b"", 0))
    channel_id = make_webhook(receiver.url + "/hook")  # saved while private targets were allowed
    app.config["ALLOW_PRIVATE_TARGETS"] = False
    with app.app_context():
        (delivery_id,) = dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample).delivery_ids
    worker()
    with app.app_context():
        delivery = db.session.get(Delivery, delivery_id)
        assert delivery.status == DeliveryStatus.FAILED and delivery.attempt_count == 1  # not retried
        assert "loopback or private address" in delivery.last_error
        assert db.session.get(Channel, channel_id).needs_attention
    assert receiver.requests == []


def test_the_connection_goes_to_the_checked_address_and_the_host_header_keeps_the_name(app, worker, make_webhook,
                                                                                       local_receiver):
    receiver = local_receiver(lambda path, headers: (200, {}, b"", 0))
    port = receiver.url.rsplit(":", 1)[1]
    make_webhook(f"http://localhost:{port}/hook?x=1")  # a name, resolved once, then connected by address
    with app.app_context():
        (delivery_id,) = dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample).delivery_ids
    worker()
    (path, headers), = receiver.requests
    assert path == "/hook?x=1" and headers["Host"] == f"localhost:{port}"
    with app.app_context():
        assert db.session.get(Delivery, delivery_id).status == DeliveryStatus.DELIVERED


def test_a_receiver_that_drips_its_answer_is_cut_off_at_the_total_timeout(app, local_receiver):
    """connect + read timeout bounds the whole exchange, not each read."""
    import socket
    import threading
    import time

    from notify import http

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def drip():
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):  # a byte every 0.2 s: each read is quick, the whole is 20 s
            try:
                conn.sendall(b"x")
            except OSError:
                return
            time.sleep(0.2)

    threading.Thread(target=drip, daemon=True).start()
    with app.test_request_context():
        result = http.post(f"http://127.0.0.1:{server.getsockname()[1]}/", {}, b"{}", connect_timeout=0.5,
                           read_timeout=1.0, max_bytes=1000, allow_private=True)
    assert result.status is None and "did not finish answering within 1.5 s" in result.error
    server.close()
