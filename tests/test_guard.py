"""The outbound guard: deliveries go to public addresses only (unless ALLOW_PRIVATE_TARGETS), to the
address that was checked, never to link-local ones such as the cloud metadata service. Which is
which comes from the guard's own table, written from the IANA special-purpose registries."""
import ipaddress
import random
import re
import socket
import threading

import pytest

from extensions import db
from models import Channel, Delivery, DeliveryStatus
from notify import dispatch, guard, hooks
from notify.guard import NEVER, PRIVATE, PUBLIC

ALL_HOOKS = list(hooks.HOOK_NAMES)

# Teredo: 2001:0:<server IPv4>:<flags>:<port ^ 0xffff>:<client IPv4 ^ 0xffffffff> (RFC 4380).
def teredo(server: str, client: str) -> str:
    s, c = int(ipaddress.IPv4Address(server)), int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF
    return str(ipaddress.IPv6Address((0x20010000 << 96) | (s << 64) | (0x8000 << 48) | (0x63BF << 32) | c))


# (spelling, what the guard must answer). At least one spelling for every entry of the table
# (test_every_entry_has_a_spelling checks), with the public neighbours just outside the ranges.
SPELLINGS = [
    # IPv4
    ("0.1.2.3", NEVER), ("0.255.255.255", NEVER), ("0.0.0.0", NEVER),
    ("10.0.0.0", PRIVATE), ("10.255.255.255", PRIVATE), ("9.255.255.255", PUBLIC), ("11.0.0.0", PUBLIC),
    ("100.64.0.1", PRIVATE), ("100.127.255.254", PRIVATE), ("100.63.255.255", PUBLIC), ("100.128.0.0", PUBLIC),
    ("127.0.0.1", PRIVATE), ("127.255.255.254", PRIVATE),
    ("169.254.169.254", NEVER), ("169.254.0.1", NEVER), ("169.253.255.255", PUBLIC),
    ("172.16.0.5", PRIVATE), ("172.31.255.255", PRIVATE), ("172.15.255.255", PUBLIC), ("172.32.0.0", PUBLIC),
    ("192.0.0.100", NEVER), ("192.0.0.255", NEVER),
    ("192.0.0.1", NEVER), ("192.0.0.7", NEVER), ("192.0.0.8", NEVER),
    ("192.0.0.9", PUBLIC), ("192.0.0.10", PUBLIC), ("192.0.0.11", NEVER),
    ("192.0.0.170", NEVER), ("192.0.0.171", NEVER),
    ("192.0.2.1", NEVER), ("192.0.3.0", PUBLIC),
    ("192.31.196.1", PUBLIC), ("192.52.193.1", PUBLIC), ("192.175.48.1", PUBLIC),
    ("192.88.99.1", NEVER), ("192.88.99.255", NEVER), ("192.88.99.2", PUBLIC),
    ("192.168.1.10", PRIVATE), ("192.169.0.0", PUBLIC),
    ("198.18.0.1", NEVER), ("198.19.255.255", NEVER), ("198.17.255.255", PUBLIC), ("198.20.0.0", PUBLIC),
    ("198.51.100.7", NEVER), ("203.0.113.9", NEVER),
    ("224.0.0.1", NEVER), ("239.255.255.255", NEVER),
    ("240.0.0.1", NEVER), ("255.255.255.254", NEVER), ("255.255.255.255", NEVER),
    ("8.8.8.8", PUBLIC), ("1.1.1.1", PUBLIC), ("223.255.255.255", PUBLIC),
    # IPv6: outside 2000::/3 and not named: reserved
    ("4000::1", NEVER), ("1::", NEVER), ("fe00::1", NEVER), ("::ffff:0:7f00:1", NEVER),
    ("2606:4700::1111", PUBLIC), ("2001:4860:4860::8888", PUBLIC), ("2a00:1450:4001::200e", PUBLIC),
    ("::127.0.0.1", NEVER), ("::8.8.8.8", NEVER), ("::2", NEVER),  # IPv4-compatible
    ("::", NEVER), ("0:0:0:0:0:0:0:0", NEVER),
    ("::1", PRIVATE), ("0:0:0:0:0:0:0:1", PRIVATE),
    # IPv4-mapped: exactly its IPv4 address
    ("::ffff:127.0.0.1", PRIVATE), ("::FFFF:7F00:1", PRIVATE), ("::ffff:10.0.0.1", PRIVATE),
    ("::ffff:169.254.169.254", NEVER), ("0:0:0:0:0:ffff:c000:0201", NEVER), ("::ffff:0.0.0.0", NEVER),
    ("::ffff:8.8.8.8", PUBLIC), ("::ffff:192.0.0.9", PUBLIC),
    # NAT64, well-known prefix: public IPv4 only
    ("64:ff9b::8.8.8.8", PUBLIC), ("64:ff9b::127.0.0.1", NEVER), ("64:ff9b::10.0.0.1", NEVER),
    ("64:ff9b::a9fe:a9fe", NEVER),
    # NAT64, local use: the operator's translator
    ("64:ff9b:1::8.8.8.8", PRIVATE), ("64:ff9b:1::10.1.2.3", PRIVATE), ("64:ff9b:1::169.254.169.254", NEVER),
    ("100::1", NEVER), ("100:0:0:1::1", NEVER),
    ("2001:100::1", NEVER), ("2001:1ff:ffff::1", NEVER), ("2001:200::1", PUBLIC),
    # Teredo: the server and the (inverted) client must both be public
    (teredo("65.54.227.120", "8.8.4.4"), PUBLIC), ("2001:0:4136:e378:8000:63bf:3fff:fdd2", NEVER),
    (teredo("65.54.227.120", "127.0.0.1"), NEVER), (teredo("65.54.227.120", "10.0.0.1"), NEVER),
    (teredo("10.0.0.1", "8.8.4.4"), NEVER), (teredo("169.254.169.254", "8.8.4.4"), NEVER), ("2001::", NEVER),
    ("2001:1::1", PUBLIC), ("2001:1::2", PUBLIC), ("2001:1::3", PUBLIC), ("2001:1::4", NEVER),
    ("2001:2::1", NEVER), ("2001:3::1", PUBLIC), ("2001:4:112::1", PUBLIC), ("2001:4:113::1", NEVER),
    ("2001:10::1", NEVER), ("2001:20::1", PUBLIC), ("2001:30::1", PUBLIC),
    ("2001:db8::1", NEVER), ("2001:DB8:0:0:0:0:0:1", NEVER),
    # 6to4: public IPv4 only
    ("2002:808:808::1", PUBLIC), ("2002:7f00:1::", NEVER), ("2002:0a00:0001::1", NEVER),
    ("2002:c0a8:0101::", NEVER), ("2002:a9fe:a9fe::", NEVER), ("2002::", NEVER),
    ("2620:4f:8000::1", PUBLIC),
    ("3fff::1", NEVER), ("3fff:fff::1", NEVER), ("3fff:1000::1", PUBLIC),
    ("5f00::1", NEVER),
    ("fc00::1", PRIVATE), ("fd12:3456:789a::1", PRIVATE),
    ("fe80::1", NEVER), ("febf::1", NEVER), ("fe80::1%eth0", NEVER),
    ("fec0::1", NEVER), ("feff::1", NEVER),
    ("ff02::1", NEVER), ("ff0e::1", NEVER),
]


@pytest.mark.parametrize("host, expected", SPELLINGS)
@pytest.mark.parametrize("allow_private", [False, True])
def test_which_addresses_are_refused(app, host, expected, allow_private):
    refused = expected == NEVER or (expected == PRIVATE and not allow_private)
    with app.test_request_context():
        result = guard.resolve(host, 443, allow_private)
    assert result.refused is refused and (result.address is None) is refused, result.problem
    if refused:
        kind = "never go there" if expected == NEVER else "Set ALLOW_PRIVATE_TARGETS=1"
        assert kind in str(result.problem)


def test_every_entry_has_a_spelling():
    covered = {guard.entry_for(ipaddress.ip_address(host)) for host, _ in SPELLINGS}
    missing = [entry.network for entry in guard.IPV4 + guard.IPV6 if entry not in covered]
    assert missing == []


def test_the_table_agrees_with_the_registries_column():
    """An entry the registry marks globally reachable is public; one it marks not reachable is
    never public unless the guard judges it by the IPv4 address it carries."""
    for entry in guard.IPV4 + guard.IPV6:
        if entry.reachable is True:
            assert entry.access == PUBLIC, entry
        elif entry.reachable is False and entry.carries is None:
            assert entry.access in (PRIVATE, NEVER), entry
        assert entry.rfc.startswith("RFC "), entry


def test_the_ipv4_inside_6to4_and_teredo_is_read_as_the_standard_library_reads_it():
    rng = random.Random(12)
    for _ in range(500):
        six = ipaddress.IPv6Address((0x2002 << 112) | rng.getrandbits(112))
        assert guard._carried(six, guard.SIX_TO_FOUR) == (six.sixtofour,)
        ted = ipaddress.IPv6Address((0x20010000 << 96) | rng.getrandbits(96))
        assert guard._carried(ted, guard.TEREDO) == ted.teredo


def test_the_refusal_names_the_range_and_what_it_carries(app):
    with app.test_request_context():
        problem = str(guard.resolve("2002:7f00:1::", 443, allow_private=True).problem)
        assert "6to4 (RFC 3056) carrying 127.0.0.1: loopback (RFC 1122)" in problem
        problem = str(guard.resolve("[fec0::1]", 443, allow_private=True).problem)
        assert problem.startswith("[fec0::1], deprecated site-local (RFC 3879): deliveries never go there")
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        problem = str(guard.resolve("169.254.169.254", 80, allow_private=True).problem)
        assert "链路本地" in problem and "RFC 3927" in problem


def test_a_name_is_checked_by_what_it_resolves_to(app):
    with app.test_request_context():
        result = guard.resolve("localhost", 80, allow_private=False)
    problem = str(result.problem)
    assert result.refused and "loopback or private" in problem and problem.startswith("localhost is ")


@pytest.mark.parametrize("url, allowed_with_private", [
    ("http://[::1]:8080/hook", True), ("http://[0:0:0:0:0:0:0:1]/", True), ("http://[::ffff:127.0.0.1]/", True),
    ("http://[::FFFF:7F00:1]:5001/x?y=1", True), ("http://[fd00::1]/", True),
    # Numeric spellings that are not literals for ipaddress: the resolver reads them as the
    # connection would, and the guard checks what it read.
    ("http://2130706433/", True), ("http://0x7f000001/", True), ("http://127.1/", True),
    ("http://0177.0.0.1/", True), ("http://0x7f.1:8080/", True),
    ("http://0/", False), ("http://[::]/", False), ("https://[2002:7f00:1::]/", False),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", False), ("http://[fe80::1%25eth0]:8080/", False),
    ("http://[fec0::1]:443/x", False), ("http://[::127.0.0.1]/", False), ("http://[64:ff9b::7f00:1]/", False),
    ("http://[::ffff:a9fe:a9fe]/latest/meta-data", False), ("http://[ff02::1]/", False),
])
def test_urls_with_address_literals_are_checked_at_save(app, url, allowed_with_private):
    from notify.channels.webhook.transport import url_problem

    with app.test_request_context():
        app.config["ALLOW_PRIVATE_TARGETS"] = False
        assert url_problem(url), url
        app.config["ALLOW_PRIVATE_TARGETS"] = True
        assert (url_problem(url) is None) is allowed_with_private, url_problem(url)


@pytest.mark.parametrize("url", ["http://[2606:4700::1111]/hook", "https://[2002:808:808::1]:8443/",
                                 "http://192.0.0.9/", "http://[::ffff:8.8.8.8]/"])
def test_public_literals_pass_without_the_setting(app, url):
    from notify.channels.webhook.transport import url_problem

    app.config["ALLOW_PRIVATE_TARGETS"] = False
    with app.test_request_context():
        assert url_problem(url) is None


def test_save_refuses_private_targets_with_a_clear_message(login, app):
    app.config["ALLOW_PRIVATE_TARGETS"] = False
    for url in ("http://127.0.0.1:5001/webhook", "http://169.254.169.254/latest/meta-data", "http://localhost/x"):
        response = login.post("/settings/notifications/webhooks/new", data={
            "url": url, "auth_mode": "signature", "secret": "whsec_typed_secret_1234", "hooks": ALL_HOOKS})
        errors = re.findall(r'<p class="error" id="url-error">([^<]*)</p>', response.text)
        assert response.status_code == 200 and errors and ("private ones" in errors[0] or "link-local" in errors[0])
    app.config["ALLOW_PRIVATE_TARGETS"] = True
    assert login.post("/settings/notifications/webhooks/new", data={
        "url": "http://127.0.0.1:5001/webhook", "auth_mode": "signature", "secret": "whsec_typed_secret_1234",
        "hooks": ALL_HOOKS}).status_code == 302
    for url in ("http://169.254.169.254/", "http://[2002:7f00:1::]/hook", "http://192.0.0.1/"):
        response = login.post("/settings/notifications/webhooks/new", data={
            "url": url, "auth_mode": "signature", "secret": "whsec_typed_secret_1234", "hooks": ALL_HOOKS})
        assert "never go there" in response.text  # never, even with the setting
    with app.app_context():
        assert [c.config["url"] for c in db.session.scalars(db.select(Channel))] == ["http://127.0.0.1:5001/webhook"]


class CountingReceiver:
    """A loopback HTTP server that counts the TCP connections it accepts (not only requests), so a
    test can tell "refused before connecting" from "connected, then failed"."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self):
        self.server.close()


def test_a_delivery_to_a_never_address_is_refused_without_a_connection(app, worker):
    """0.0.0.0 and ::ffff:0.0.0.0 reach a loopback listener on Linux (the kernel connects them to
    the local host), so if the guard let them through, the receiver would count a connection.
    Loopback itself is allowed here: only the never-rule can stop these deliveries."""
    receiver = CountingReceiver()
    try:
        with socket.create_connection(("0.0.0.0", receiver.port), timeout=2):
            pass  # the route exists: a connection to 0.0.0.0 does arrive
        wait = 0
        while receiver.connections < 1 and wait < 50:
            threading.Event().wait(0.05)
            wait += 1
        assert receiver.connections == 1
        receiver.connections = 0
        app.config["ALLOW_PRIVATE_TARGETS"] = True
        targets = [f"http://0.0.0.0:{receiver.port}/hook", f"http://[::ffff:0.0.0.0]:{receiver.port}/hook",
                   f"http://[2002:7f00:1::]:{receiver.port}/hook", f"http://127.0.0.1:{receiver.port}/hook"]
        with app.app_context():
            # Stored directly: the admin would refuse to save the first three.
            for url in targets:
                db.session.add(Channel(kind="webhook", config={"url": url, "auth_mode": "signature"},
                                       secret="whsec_test_secret_0123456789", hooks=ALL_HOOKS, enabled=True))
            db.session.commit()
            event = dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample)
            delivery_ids = event.delivery_ids
        worker()
        with app.app_context():
            by_url = {}
            for delivery_id in delivery_ids:
                delivery = db.session.get(Delivery, delivery_id)
                by_url[db.session.get(Channel, delivery.channel_id).config["url"]] = delivery
            for url in targets[:3]:
                delivery = by_url[url]
                assert delivery.status == DeliveryStatus.FAILED and delivery.attempt_count == 1, url  # not retried
                assert "never go there" in delivery.last_error, delivery.last_error
                assert db.session.get(Channel, delivery.channel_id).needs_attention
            assert by_url[targets[3]].status == DeliveryStatus.DELIVERED  # the worker does connect when allowed
        assert receiver.connections == 1  # the loopback delivery alone
    finally:
        receiver.close()


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
        assert "not to loopback or private ones" in delivery.last_error
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
    assert result.status is None and "did not finish answering within 1.5 s" in str(result.error)
    server.close()
