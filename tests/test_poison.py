"""A poison cannot spread: an event whose message cannot be built, a rate limiter that fails, a
response the database would refuse, costs its own delivery one recorded attempt, never the batch;
the pages show any stored event. And the races: a result is written only under the claim that
holds it, redeliver is a conditional update, a drain fits in RQ's job timeout, and one exchange
never outlives connect + read timeout.

Hostile events are stored directly in the database, as older versions could have accepted them.
Another part of the product is being hardened so that most such data renders: every test here
holds either way (the poison delivered, or final with a reason; never stuck, never spreading)."""
from __future__ import annotations

import json
import socket
import threading
import time
from datetime import datetime

import pytest
import redis
from sqlalchemy import text, update

from extensions import db
from models import Attempt, Channel, Delivery, DeliveryStatus, Event
from models.base import new_id, utcnow
from notify import dispatch, hooks, http, jobs
from notify.channels import SUCCESS, OutgoingRequest, Outcome

DEPTH = 970


def deep_json(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


# name → (hook, the stored JSON text of `data`, the event's created_at or None for now)
POISONS = {
    "product is a string": ("order_pay_hook", '{"order": {"product": "abc", "order_no": "P1"}}', None),
    "order is a list": ("order_pay_hook", '{"order": [1, 2]}', None),
    "data is null": ("order_pay_hook", "null", None),
    "data is a string": ("stock_alarm_hook", '"stock"', None),
    "lone surrogate": ("order_pay_hook", '{"order": {"order_no": "\\ud800", "product": {"name": "x\\udfff"}}}', None),
    "nested 970 deep": ("order_pay_hook", '{"order": ' + deep_json(DEPTH) + "}", None),
    "year 1": ("order_pay_hook", '{"order": {"order_no": "Y1", "paid_at": "0001-01-01T00:00:00Z"}}', None),
    "year 9999": ("order_pay_hook", '{"order": {"order_no": "Y9", "paid_at": "9999-12-31T23:59:59Z"}}', None),
    "created in year 9999": ("order_pay_hook", '{"order": {"order_no": "C9"}}', datetime(9999, 12, 31, 23, 59)),
    "created in year 1": ("order_pay_hook", '{"order": {"order_no": "C1"}}', datetime(1, 1, 1, 0, 0)),
    "huge numbers": ("order_pay_hook", '{"order": {"amount": 1' + "0" * 400 + ', "quantity": 1e400}}', None),
    "a number too long to decode": ("order_pay_hook", '{"order": {"amount": ' + "9" * 5000 + "}}", None),
    "NaN": ("order_pay_hook", '{"order": {"amount": NaN, "quantity": Infinity}}', None),
    "an unknown hook": ("order_teleported_hook", '{"order": {}}', None),
    "report days not a list": ("order_count_amount_hook", '{"days": {"a": 1}, "currency": 5}', None),
}


def store_event(app, hook: str, data_json: str, created_at: datetime | None = None) -> str:
    """An event row written with raw SQL, bypassing the API and the JSON serializer."""
    event_id = new_id("evt")
    with app.app_context():
        db.session.execute(text("INSERT INTO events (id, hook, data, source, is_test, created_at) "
                                "VALUES (:id, :hook, :data, 'api', :test, :at)"),
                           dict(id=event_id, hook=hook, data=data_json, test=False, at=created_at or utcnow()))
        db.session.commit()
    return event_id


def add_deliveries(app, event_id: str, hook: str) -> list[str]:
    """One delivery per enabled channel for the stored event, through the one path (`dispatch`)."""
    with app.app_context():
        targets = dispatch.subscribed_channels(hook) if hook in hooks.HOOKS_BY_NAME else [
            dispatch.Target(c.id, c.kind, c.target) for c in db.session.scalars(db.select(Channel))]
        ids = dispatch.add_deliveries([dict(event_id=event_id, hook=hook, channel=t) for t in targets],
                                      dispatch.full_schedule())
        db.session.commit()
    return list(ids)


def rows(app, ids):
    with app.app_context():
        return {d.id: (d.status, d.last_error, [(a.number, a.outcome, a.error) for a in d.attempts])
                for d in db.session.scalars(db.select(Delivery).where(Delivery.id.in_(ids)))}


@pytest.fixture
def four_channels(app, make_channel, make_webhook, local_receiver, dingtalk, wecom, smtp_server):
    """A WebHook (a receiver that counts each X-Apsdai-Delivery), DingTalk, WeCom and Email, all
    subscribed to every hook; MERCHANT_TIMEZONE east of UTC, so that year 1 and 9999 overflow."""
    seen: list[str] = []
    receiver = local_receiver(lambda path, headers: (seen.append(headers["X-Apsdai-Delivery"]) or 200, {}, b"ok", 0))
    make_webhook(receiver.url + "/hook")
    make_channel("dingtalk", {"url": dingtalk.add_robot("dingtokenpoison01")})
    make_channel("wecom", {"url": wecom.add_robot("wecomkeypoison001")})
    make_channel("email", {"recipients": ["merchant@example.com"]})
    app.config["MERCHANT_TIMEZONE"] = "Asia/Shanghai"
    return dict(seen=seen, dingtalk=dingtalk, wecom=wecom, smtp=smtp_server)


def supported(app, name: str) -> None:
    """PostgreSQL's json type refuses NaN and Infinity: such an event cannot be stored there."""
    if name == "NaN" and app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("PostgreSQL cannot hold NaN in a json column")


@pytest.mark.parametrize("name", list(POISONS))
def test_a_poison_event_costs_its_own_deliveries_and_no_other(app, login, worker, four_channels, name):
    supported(app, name)
    hook, data_json, created_at = POISONS[name]
    # Healthy events on either side of the poison, so that they share its batch.
    healthy = []
    with app.app_context():
        for n in range(3):
            healthy += dispatch.emit("order_pay_hook", {"order": {"order_no": f"H{n}", "amount": "1.00"}}).delivery_ids
    poison = add_deliveries(app, store_event(app, hook, data_json, created_at), hook)
    with app.app_context():
        healthy += dispatch.emit("order_pay_hook", {"order": {"order_no": "H9", "amount": "1.00"}}).delivery_ids
    assert len(poison) == 4 and len(healthy) == 16
    worker()

    found = rows(app, healthy + poison)
    for delivery_id in healthy:
        status, error, attempts = found[delivery_id]
        assert status == DeliveryStatus.DELIVERED and attempts == [(1, "success", None)], (delivery_id, found[delivery_id])
    # Each healthy delivery reached its receiver once: the WebHook's by id, the others by count.
    webhook_healthy = [d for d in healthy if d in four_channels["seen"]]
    assert len(webhook_healthy) == 4 and all(four_channels["seen"].count(d) == 1 for d in webhook_healthy)
    assert all(four_channels["seen"].count(d) <= 1 for d in poison)
    for delivery_id in poison:
        status, error, attempts = found[delivery_id]
        assert status in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED), (name, found[delivery_id])
        assert len(attempts) == 1
        if status == DeliveryStatus.FAILED:
            assert error and attempts[0][1] == "permanent" and attempts[0][2] == error
            assert "Nothing was sent" in error, error
    with app.app_context():
        # Not the channels' fault: none is marked as needing attention, none is failing.
        assert not any(c.needs_attention or c.failing_since for c in db.session.scalars(db.select(Channel)))
        channel_id = db.session.scalar(db.select(Channel.id).where(Channel.kind == "webhook"))

    # Every page renders, and shows the stored event as well as it can.
    for url in ["/deliveries/", "/dashboard", f"/settings/notifications/channels/{channel_id}/recover?since=2000-01-01T00:00",
                *[f"/deliveries/{d}" for d in poison], *[f"/deliveries/{d}/result" for d in poison]]:
        response = login.get(url)
        assert response.status_code == 200, url
        response.data.decode("utf-8")  # valid UTF-8 whatever the data held


def test_the_payload_shows_characters_and_survives_what_cannot_be_laid_out(app, login, make_webhook):
    make_webhook("https://erp.example.com/hook")
    cases = {
        "chinese": ('{"order": {"product": {"name": "\\u7eff\\u8336"}}}', "绿茶", None),
        "surrogate": ('{"order": {"order_no": "A\\ud800B"}}', "A\\ud800B", None),
        "deep": ('{"order": ' + deep_json(DEPTH) + "}", "1" + "}" * DEPTH, "shown as stored"),
        "too long": ('{"order": {"amount": ' + "9" * 5000 + "}}", "9" * 5000, "shown as stored"),
    }
    for name, (data_json, shown, problem) in cases.items():
        (delivery_id,) = add_deliveries(app, store_event(app, "order_pay_hook", data_json), "order_pay_hook")
        page = login.get(f"/deliveries/{delivery_id}").data.decode("utf-8")
        assert shown in page, name
        assert (problem in page) if problem else ("shown as stored" not in page), name
    assert "\\u7eff" not in login.get("/deliveries/").data.decode()


def test_a_transport_whose_prepare_raises_fails_that_delivery_alone(app, monkeypatch, worker, make_webhook,
                                                                    local_receiver):
    from notify.channels.webhook.transport import WebhookTransport

    seen = []
    receiver = local_receiver(lambda path, headers: (seen.append(headers["X-Apsdai-Delivery"]) or 200, {}, b"", 0))
    make_webhook(receiver.url + "/hook")
    with app.app_context():
        ids = [dispatch.emit("order_pay_hook", {"order": {"order_no": f"N{n}"}}).delivery_ids[0] for n in range(10)]
    poison = ids[4]
    prepare = WebhookTransport.prepare

    def broken(self, event, delivery, timestamp_ms):
        if delivery.id == poison:
            raise KeyError("the template needs a field this event lacks")
        return prepare(self, event, delivery, timestamp_ms)

    monkeypatch.setattr(WebhookTransport, "prepare", broken)
    worker()
    found = rows(app, ids)
    status, error, attempts = found.pop(poison)
    assert status == DeliveryStatus.FAILED and "could not be built" in error and "KeyError" in error
    assert attempts == [(1, "permanent", error)]
    assert all(v[0] == DeliveryStatus.DELIVERED and len(v[2]) == 1 for v in found.values())
    assert sorted(seen) == sorted(found)


def test_a_redis_error_in_the_rate_limiter_costs_one_transient_attempt(app, monkeypatch, worker, make_channel,
                                                                       dingtalk):
    from notify import ratelimit

    make_channel("dingtalk", {"url": dingtalk.add_robot("dingtokenratelimit")})
    with app.app_context():
        ids = [dispatch.emit("order_pay_hook", {"order": {"order_no": f"R{n}"}}).delivery_ids[0] for n in range(4)]
    reserve = ratelimit.reserve

    def failing(key, reservation, *args):
        if reservation.startswith(ids[1]) and reservation.endswith(":1"):
            raise redis.ConnectionError("Connection reset by peer")
        return reserve(key, reservation, *args)

    monkeypatch.setattr(ratelimit, "reserve", failing)
    app.config["DELIVERY_RETRY_SCHEDULE"] = [0.2]
    worker(until=lambda: all(v[0] == DeliveryStatus.DELIVERED for v in rows(app, ids).values()))
    found = rows(app, ids)
    status, _, attempts = found.pop(ids[1])
    assert [a[:2] for a in attempts] == [(1, "transient"), (2, "success")]
    assert "rate limit could not be checked" in attempts[0][2] and "Connection reset" in attempts[0][2]
    assert all(len(v[2]) == 1 for v in found.values())
    assert len(dingtalk.requests) == 4  # the failed reservation sent nothing


def raw_receiver(answer: bytes):
    """A TCP server on loopback that reads a request and writes `answer` as it is, bytes the
    http.server module would not write (NUL, invalid UTF-8, in headers and body)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int([line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")][0])
                while len(body) < length:
                    body += conn.recv(65536)
                conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return server, f"http://127.0.0.1:{server.getsockname()[1]}"


def test_a_receiver_answering_nul_bytes_and_invalid_utf8_is_recorded(app, login, worker, make_webhook):
    """On PostgreSQL, a NUL in a text column fails the whole statement: the batch would never be
    recorded, and every delivery in it sent again at each lease's end."""
    body = b"ok\x00\xff\xfe\x00done"
    answer = (b"HTTP/1.1 200 OK\r\nX-Nul: a\x00b\r\nX-Latin: \xff\xfe\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    server, url = raw_receiver(answer)
    try:
        make_webhook(url + "/hook")
        with app.app_context():
            ids = [dispatch.emit("order_pay_hook", {"order": {"order_no": f"Z{n}"}}).delivery_ids[0] for n in range(5)]
        worker()
    finally:
        server.close()
    with app.app_context():
        attempts = db.session.scalars(db.select(Attempt).where(Attempt.delivery_id.in_(ids))).all()
        assert len(attempts) == 5 and all(a.response_status == 200 for a in attempts)
        assert all("\x00" not in a.response_body and a.response_body.startswith("ok") for a in attempts)
        assert all("\x00" not in json.dumps(a.response_headers, ensure_ascii=False) for a in attempts)
    assert set(v[0] for v in rows(app, ids).values()) == {DeliveryStatus.DELIVERED}
    assert login.get(f"/deliveries/{ids[0]}").status_code == 200


def test_a_batch_the_database_refuses_is_recorded_one_by_one(app, monkeypatch, worker, make_webhook, local_receiver):
    """The batch write fails (as for a value the database refuses); each result is then written
    alone, and the one whose details are refused is written without them."""
    seen = []
    receiver = local_receiver(lambda path, headers: (seen.append(headers["X-Apsdai-Delivery"]) or 200, {}, b"ok", 0))
    make_webhook(receiver.url + "/hook")
    with app.app_context():
        ids = [dispatch.emit("order_pay_hook", {"order": {"order_no": f"B{n}"}}).delivery_ids[0] for n in range(6)]
    refused = ids[2]
    write = jobs.Drain._write

    def refusing(self, results, now):
        detailed = [r for r in results if r.attempt and r.attempt["response_body"]]
        if len(results) > 1 or any(r.delivery_id == refused for r in detailed):
            raise db.session.get_bind().dialect.dbapi.DataError("refused")
        return write(self, results, now)

    monkeypatch.setattr(jobs.Drain, "_write", refusing)
    monkeypatch.setattr(jobs, "FLUSH_SECONDS", 10.0)  # so that the results come as one batch
    worker()
    found = rows(app, ids)
    assert all(v[0] == DeliveryStatus.DELIVERED and len(v[2]) == 1 for v in found.values()), found
    assert found[refused][2][0][2] == "The details of this attempt could not be stored."
    assert all(found[d][2][0][2] is None for d in ids if d != refused)
    assert sorted(seen) == sorted(ids)


# -- races ----------------------------------------------------------------------------------------

def test_a_stale_workers_result_is_dropped(app, make_webhook, local_receiver):
    """Worker A's request outlives its lease; the delivery is claimed and delivered by B meanwhile.
    A's late answer (a 500) must not overwrite B's success, nor repeat attempt number 1."""
    answers = iter([(500, 1.5), (200, 0)])

    def answer(path, headers):
        status, delay = next(answers)
        return status, {}, b"", delay

    receiver = local_receiver(answer)
    channel_id = make_webhook(receiver.url + "/hook")
    app.config["DELIVERY_LEASE_SECONDS"] = 0.5
    with app.app_context():
        (delivery_id,) = dispatch.emit("order_pay_hook", {"order": {"order_no": "S1"}}).delivery_ids
    def worker_a():  # takes it from Redis and sends it
        with app.app_context():
            jobs.drain()

    a = threading.Thread(target=worker_a)
    with app.app_context():
        a.start()
        deadline = time.monotonic() + 5
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert receiver.requests
        time.sleep(0.6)  # A's lease has run out while its request is at the receiver
        b = jobs.Drain(app.config)  # worker B claims it (as after the sweeper) and delivers it
        b.held[channel_id].append(delivery_id)
        b.start_sends()
        assert b.in_flight
        while b.in_flight:
            b.collect(0.1)
        b.flush(force=True)
    a.join(10)
    assert len(receiver.requests) == 2
    status, error, attempts = rows(app, [delivery_id])[delivery_id]
    assert status == DeliveryStatus.DELIVERED and error is None
    assert attempts == [(1, "success", None)]
    with app.app_context():
        assert db.session.get(Delivery, delivery_id).claim_token is None


def test_attempt_numbers_cannot_repeat(app, make_webhook):
    make_webhook("https://erp.example.com/hook")
    with app.app_context():
        (delivery_id,) = dispatch.emit("order_pay_hook", {"order": {}}).delivery_ids
        row = dict(delivery_id=delivery_id, number=1, outcome="transient", request_headers={})
        db.session.execute(db.insert(Attempt), [row])
        db.session.commit()
        with pytest.raises(Exception) as raised:
            db.session.execute(db.insert(Attempt), [row])
            db.session.commit()
        db.session.rollback()
        assert "unique" in str(raised.value).lower()


def test_a_flush_with_a_lost_claim_writes_nothing_for_it(app, make_webhook):
    """The flush itself, for two results: one whose claim is held, one whose claim was taken over."""
    channel_id = make_webhook("https://erp.example.com/hook")
    with app.app_context():
        first, second = (dispatch.emit("order_pay_hook", {"order": {}}).delivery_ids[0] for _ in range(2))
        token, claimed = jobs.claim([first, second])
        assert claimed == {first, second}
        db.session.execute(update(Delivery).where(Delivery.id == second).values(claim_token="someone-else"))
        db.session.commit()
        work = jobs.Drain(app.config)
        for delivery_id in (first, second):
            request = OutgoingRequest("POST", "https://erp.example.com/hook", {}, b"{}")
            item = jobs.InFlight(delivery_id, channel_id, "webhook", 1, 4, utcnow(), request, token)
            work.done.append((item, Outcome(kind=SUCCESS, status=200)))
        work.flush(force=True)
        assert db.session.get(Delivery, first).status == DeliveryStatus.DELIVERED
        stale = db.session.get(Delivery, second)
        assert stale.status == DeliveryStatus.SENDING and stale.claim_token == "someone-else"
        assert [a.delivery_id for a in db.session.scalars(db.select(Attempt))] == [first]


def test_redeliver_is_a_conditional_update(app, login, make_webhook, local_receiver, worker):
    """The page read the delivery as dead; a worker claimed it meanwhile (a recovery, say). Redeliver
    must not write over the worker's claim."""
    receiver = local_receiver(lambda path, headers: (500, {}, b"", 0))
    make_webhook(receiver.url + "/hook")
    app.config["DELIVERY_RETRY_SCHEDULE"] = []
    with app.app_context():
        (delivery_id,) = dispatch.emit("order_pay_hook", {"order": {}}).delivery_ids
    worker()
    with app.app_context():
        assert db.session.get(Delivery, delivery_id).status == DeliveryStatus.DEAD  # read, as the page does
        with db.engine.begin() as other:  # another process claims it now
            other.execute(update(Delivery).where(Delivery.id == delivery_id)
                          .values(status=DeliveryStatus.SENDING, claim_token="worker-b", lease_until=utcnow()))
        with pytest.raises(dispatch.CannotRedeliver):
            dispatch.redeliver(delivery_id)
        db.session.expire_all()
        held = db.session.get(Delivery, delivery_id)
        assert held.status == DeliveryStatus.SENDING and held.claim_token == "worker-b" and held.max_attempts == 1
        held.status = DeliveryStatus.DEAD
        db.session.commit()
    # Without a race, it goes through.
    response = login.post(f"/deliveries/{delivery_id}/redeliver")
    assert response.status_code == 302
    with app.app_context():
        again = db.session.get(Delivery, delivery_id)
        assert again.status == DeliveryStatus.RETRYING and again.max_attempts == 2


# -- start-up checks ----------------------------------------------------------------------------

def test_a_drain_budget_past_the_job_timeout_is_refused_at_start_up(tmp_path):
    from config import ConfigError, lease_warning, load_config
    from notify.queue import JOB_TIMEOUT

    base = {"SECRET_KEY": "x"}
    assert load_config(tmp_path, dict(base))["DRAIN_BUDGET"] == 10
    for env in ({"DRAIN_BUDGET": "120"}, {"DRAIN_BUDGET": "90"},
                {"DELIVERY_READ_TIMEOUT": "100", "DELIVERY_LEASE_SECONDS": "200"}, {"DRAIN_BUDGET": "0"}):
        with pytest.raises(ConfigError, match="DRAIN_BUDGET"):
            load_config(tmp_path, {**base, **env})
    assert load_config(tmp_path, {**base, "DRAIN_BUDGET": "85"})["DRAIN_BUDGET"] == 85  # 85 + 5 + 10 + 20 = 120
    assert lease_warning(load_config(tmp_path, dict(base))) is None
    warning = lease_warning(load_config(tmp_path, {**base, "DELIVERY_LEASE_SECONDS": "30"}))
    assert "DELIVERY_LEASE_SECONDS (30 s)" in warning and f"{JOB_TIMEOUT} s" in warning


def test_the_worker_refuses_to_start_with_a_drain_that_cannot_fit(app_env):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "worker", "--burst"], cwd=root,
                            env={**os.environ, **app_env, "DRAIN_BUDGET": "120"}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "DRAIN_BUDGET (120 s)" in result.stderr and "RQ gives a drain job" in result.stderr


# -- one exchange within its deadline -----------------------------------------------------------

def test_a_dns_lookup_that_hangs_is_abandoned_after_the_connect_timeout(app, monkeypatch):
    release = threading.Event()
    real = socket.getaddrinfo

    def hanging(host, *args, **kwargs):
        if host == "slow-dns.example.com":
            release.wait(10)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    try:
        with app.app_context():
            started = time.monotonic()
            result = http.post("http://slow-dns.example.com/hook", {}, b"{}", connect_timeout=0.5, read_timeout=5,
                               max_bytes=1024)
            took = time.monotonic() - started
    finally:
        release.set()
    assert took < 1.0 and result.status is None
    assert "DNS lookup of slow-dns.example.com did not finish within 0.5 s" in str(result.error)


def trickler(prefix: bytes, every: float, tls: bool = False):
    """A receiver that, after reading the request (or at once, for a TLS client), writes `prefix`
    and then one byte every `every` seconds, for ever."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    stop = threading.Event()

    def serve():
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            try:
                if not tls:
                    conn.recv(65536)
                conn.sendall(prefix)
                while not stop.wait(every):
                    conn.sendall(b"x")
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    return server, stop


@pytest.mark.parametrize("case", ["headers", "body", "tls handshake"])
def test_a_receiver_that_trickles_bytes_for_ever_is_cut_at_the_deadline(app, case):
    prefix = {"headers": b"HTTP/1.1 200 OK\r\nX-Slow: ",
              "body": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n",
              # A TLS record header announcing a long handshake message, then its bytes one by one.
              "tls handshake": b"\x16\x03\x03\x40\x00"}[case]
    server, stop = trickler(prefix, every=1.5, tls=case == "tls handshake")
    scheme = "https" if case == "tls handshake" else "http"
    try:
        with app.app_context():
            started = time.monotonic()
            result = http.post(f"{scheme}://127.0.0.1:{server.getsockname()[1]}/hook", {}, b"{}",
                               connect_timeout=0.5, read_timeout=2.0, max_bytes=1 << 20, allow_private=True)
            took = time.monotonic() - started
    finally:
        stop.set()
        server.close()
    # Each byte comes within the read timeout: only the deadline (connect + read = 2.5 s) ends it
    # (the TLS handshake's own bound, the connect timeout, comes first). Checking the deadline only
    # between reads would wait for the first byte after it, 3 s in; the headers would never end.
    assert took < 2.9, took
    assert result.status is None and result.error
    if case != "tls handshake":
        assert "did not finish answering within 2.5 s" in str(result.error), result.error



def test_an_outcome_that_cannot_become_a_row_keeps_its_verdict(app, monkeypatch, worker, make_webhook, local_receiver):
    """A transport's outcome with a value no row can hold (a bug): the verdict is written, the
    details are not, and the other deliveries of the batch are recorded in full."""
    from notify.channels.webhook.transport import WebhookTransport

    receiver = local_receiver(lambda path, headers: (200, {}, b"ok", 0))
    make_webhook(receiver.url + "/hook")
    with app.app_context():
        ids = [dispatch.emit("order_pay_hook", {"order": {"order_no": f"O{n}"}}).delivery_ids[0] for n in range(5)]
    send = WebhookTransport.send

    def odd(self, request):
        outcome = send(self, request)
        if request.headers["X-Apsdai-Delivery"] == ids[3]:
            outcome.response_headers = ["not", "a", "mapping"]
        return outcome

    monkeypatch.setattr(WebhookTransport, "send", odd)
    worker()
    found = rows(app, ids)
    assert found.pop(ids[3]) == (DeliveryStatus.DELIVERED, "The details of this attempt could not be stored.",
                                 [(1, "success", "The details of this attempt could not be stored.")])
    assert all(v == (DeliveryStatus.DELIVERED, None, [(1, "success", None)]) for v in found.values())
