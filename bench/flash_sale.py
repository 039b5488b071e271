"""A flash sale: 1,000 orders in 60 s through the ledger API, to a WebHook, a DingTalk robot, a
WeCom robot and an Email channel, and how long each order takes to become visible to the merchant.

    .venv/bin/python -m bench.flash_sale [--quick] [--orders N] [--seconds S] [--grace G]

Each order is two calls of the ledger API, as a shop makes them: `POST /orders` (order_create_hook)
and `POST /orders/<no>/pay` (order_pay_hook), evenly spread over the run. The four channels are
subscribed to every order hook. An order is *visible* on a channel when that channel has received
a message carrying its order number after its payment was sent: the receiver got a delivery of one
of its events; the DingTalk or WeCom fake accepted a message whose text holds the number; the SMTP
server accepted a mail whose text holds it. Every received message is searched for every order
number, so a digest carrying many orders makes all of them visible. Times run from the pay call's
answer (0 when a message was already there by then). The run stops waiting `grace` seconds after
the last order, and counts the orders not visible by then (their time is infinite in the
percentiles, so they cannot flatter them).

The robots are the fakes of tests/fakes.py, which enforce the services' 20 messages a minute with
the real error codes (DingTalk 130101, WeCom 45009); the mail server is aiosmtpd, as in the tests.
They run in threads of this process; the product (gunicorn API, one `flask worker`, `flask
scheduler`), Redis and the receiver run as processes.
"""
from __future__ import annotations

import argparse
import email
import json
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email import policy
from pathlib import Path

import requests

from bench.common import Receiver, RedisServer, format_table, free_port
from bench.product import PROJECT_DIR, Product

sys.path.insert(0, str(PROJECT_DIR))

ORDER_HOOKS = ["order_create_hook", "order_pay_hook", "order_cancel_hook", "order_refund_hook",
               "order_out_of_stock_hook", "order_finish_hook"]
# Order numbers of this run: FS, the run's tag, a serial. Searched for in every message's text.
ORDER_NO = re.compile(r"FS[0-9a-f]{4}-\d{5}")
DINGTALK_RATE_LIMITED, WECOM_RATE_LIMITED = 130101, 45009


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class _Arrivals:
    """(time, text) of every message a fake accepted, recorded as it is accepted."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items: list[tuple[float, str]] = []

    def add(self, body) -> None:
        with self.lock:
            self.items.append((time.time(), json.dumps(body, ensure_ascii=False)))


def _robot_fakes():
    """FakeDingTalk and FakeWeCom that also note when each accepted message arrived."""
    from tests.fakes import FakeDingTalk, FakeWeCom

    class TimedDingTalk(FakeDingTalk):
        def __init__(self):
            super().__init__()
            self.arrivals = _Arrivals()

        def _check(self, query, body, raw):
            super()._check(query, body, raw)  # raises Reject when refused
            self.arrivals.add(body)

    class TimedWeCom(FakeWeCom):
        def __init__(self):
            super().__init__()
            self.arrivals = _Arrivals()

        def _check(self, query, body, raw):
            super()._check(query, body, raw)
            self.arrivals.add(body)

    return TimedDingTalk(), TimedWeCom()


class _MailServer:
    """aiosmtpd on loopback, keeping (arrival time, text of every part) of each accepted mail."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.arrivals = _Arrivals()
        arrivals = self.arrivals

        class Handler:
            async def handle_DATA(self, _server, _session, envelope):
                message = email.message_from_bytes(envelope.original_content, policy=policy.default)
                parts = [str(message["Subject"] or "")]
                for part in message.walk():
                    if part.get_content_maintype() == "text":
                        parts.append(part.get_content())
                with arrivals.lock:
                    arrivals.items.append((time.time(), "\n".join(parts)))
                return "250 Message accepted for delivery"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


def _first_seen(items: list[tuple[float, str]], paid_sent: dict[str, float]) -> dict[str, float]:
    """order number → when a message carrying it first arrived after its payment was sent."""
    seen: dict[str, float] = {}
    for stamp, text in sorted(items):
        for number in set(ORDER_NO.findall(text)):
            if number in paid_sent and stamp >= paid_sent[number] and number not in seen:
                seen[number] = stamp
    return seen


def _webhook_seen(product: Product, record_dir: Path, paid_sent: dict[str, float]) -> tuple[dict[str, float], int]:
    """The same for the receiver, from its arrival log and the deliveries' order numbers."""
    from extensions import db
    from models import Delivery, Event

    with product.app.app_context():
        order_of = dict(db.session.execute(
            db.select(Delivery.id, Event.order_no).join(Event, Delivery.event_id == Event.id)
            .where(Delivery.channel_kind == "webhook")).all())
    items, received = [], 0
    for path in Path(record_dir).glob("arrivals-*.log"):
        for line in path.read_text().splitlines():
            stamp, _, delivery = line.partition(" ")
            received += 1
            if order_of.get(delivery):
                items.append((float(stamp), order_of[delivery]))
    return _first_seen(items, paid_sent), received


def run(orders: int = 1000, seconds: float = 60.0, grace: float = 180.0, database_url: str | None = None,
        clients: int = 4) -> list[dict]:
    """Run the sale; one row for the API's latency, one per channel."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the fakes' access log, a line a request
    tag = f"{int(time.time()) & 0xFFFF:04x}"
    numbers = [f"FS{tag}-{i:05d}" for i in range(orders)]
    dingtalk, wecom = _robot_fakes()
    with RedisServer() as redis, tempfile.TemporaryDirectory() as tmp, dingtalk, wecom, _MailServer() as mail:
        record_dir = Path(tmp) / "arrivals"
        with Receiver(workers=2, threads=8, record_dir=record_dir) as receiver, \
                Product(redis.url, database_url or f"sqlite:///{tmp}/bench.db", Path(tmp),
                        MAIL_SERVER="127.0.0.1", MAIL_PORT=str(mail.port),
                        MAIL_DEFAULT_SENDER="shop@example.com") as product:
            product.add_webhook(receiver.url + "/hook", ORDER_HOOKS)
            product.add_channel("dingtalk", {"url": dingtalk.add_robot("flashsaledingtalk01", secret="SECflashsale0123")},
                                ORDER_HOOKS, secret="SECflashsale0123")
            product.add_channel("wecom", {"url": wecom.add_robot("flashsale-wecom-0001")}, ORDER_HOOKS)
            product.add_channel("email", {"recipients": ["owner@example.com"]}, ORDER_HOOKS)
            product.start_workers(1)
            product.start_scheduler()
            api = product.start_api(workers=2)
            token = product.api_token()
            headers = {"Authorization": f"Bearer {token}"}
            created = requests.post(api + "/api/v1/products", headers=headers, timeout=10, json={
                "path": "flashsale", "name": "Flash sale: VPN yearly plan / VPN 年度套餐", "price": "99.00",
                "currency": "CNY", "inventory": None})
            created.raise_for_status()

            local = threading.local()
            latencies = {"create": [], "pay": []}
            failures: list[str] = []
            paid_sent: dict[str, float] = {}
            paid_done: dict[str, float] = {}

            def call(kind: str, url: str, body: dict | None = None) -> None:
                session = getattr(local, "session", None) or requests.Session()
                local.session = session
                started = time.perf_counter()
                response = session.post(url, headers=headers, json=body, timeout=30)
                latencies[kind].append((time.perf_counter() - started) * 1000)
                if response.status_code not in (200, 201):
                    failures.append(f"{kind} {response.status_code} {response.text[:200]}")

            def order(i: int, at: float) -> None:
                time.sleep(max(0.0, at - time.perf_counter()))
                number = numbers[i]
                call("create", api + "/api/v1/orders", {"order_no": number, "product": "flashsale",
                                                        "buyer_email": f"buyer{i}@example.com"})
                paid_sent[number] = time.time()
                call("pay", f"{api}/api/v1/orders/{number}/pay")
                paid_done[number] = time.time()

            interval, start = seconds / orders, time.perf_counter() + 0.5
            with ThreadPoolExecutor(clients) as pool:  # a few clients, so a slow answer does not delay the next order
                for future in [pool.submit(order, i, start + i * interval) for i in range(orders)]:
                    future.result()
            last_order = time.time()
            print(f"  {orders} orders sent in {time.perf_counter() - start:.1f} s ({len(failures)} failed calls)",
                  flush=True)

            def visible():
                seen = {"WebHook": _webhook_seen(product, record_dir, paid_sent)[0],
                        "DingTalk robot": _first_seen(dingtalk.arrivals.items, paid_sent),
                        "WeCom robot": _first_seen(wecom.arrivals.items, paid_sent),
                        "Email": _first_seen(mail.arrivals.items, paid_sent)}
                return seen

            while True:
                seen = visible()
                if all(len(s) >= orders for s in seen.values()) or time.time() > last_order + grace:
                    break
                time.sleep(1.0)
            waited = time.time() - last_order
            webhook_received = _webhook_seen(product, record_dir, paid_sent)[1]

    def row(channel: str, found: dict[str, float], received: int, rejected: int | str) -> dict:
        times = [max(0.0, found[n] - paid_done[n]) if n in found else float("inf") for n in paid_done]
        return {"what": channel, "messages received": received, "orders visible": f"{len(found)} / {orders}",
                "p50 s": percentile(times, 50), "p99 s": percentile(times, 99), "max s": max(times),
                "rate-limit errors (130101 / 45009)": rejected}

    calls = latencies["create"] + latencies["pay"]
    rows = [{"what": f"ledger API: {orders} orders (create + pay) in {seconds:g} s, gunicorn ×2",
             "messages received": f"{len(calls)} calls, {len(failures)} failed",
             "orders visible": "", "p50 s": percentile(calls, 50) / 1000, "p99 s": percentile(calls, 99) / 1000,
             "max s": max(calls) / 1000, "rate-limit errors (130101 / 45009)": ""},
            row("WebHook", seen["WebHook"], webhook_received, "—"),
            row("DingTalk robot", seen["DingTalk robot"], len(dingtalk.arrivals.items),
                sum(r.errcode == DINGTALK_RATE_LIMITED for r in dingtalk.requests)),
            row("WeCom robot", seen["WeCom robot"], len(wecom.arrivals.items),
                sum(r.errcode == WECOM_RATE_LIMITED for r in wecom.requests)),
            row("Email", seen["Email"], len(mail.arrivals.items), "—")]
    rows[0]["note"] = (f"API p50 {percentile(calls, 50):.1f} ms, p99 {percentile(calls, 99):.1f} ms; "
                       f"stopped waiting {waited:.0f} s after the last order")
    if failures:
        rows[0]["note"] += f"; first failure: {failures[0]}"
    for r in rows:
        print(f"  {r}", flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 orders in 10 s, 30 s of grace")
    parser.add_argument("--orders", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--grace", type=float)
    args = parser.parse_args(argv)
    orders, seconds, grace = (100, 10.0, 30.0) if args.quick else (1000, 60.0, 180.0)
    rows = run(args.orders or orders, args.seconds or seconds, args.grace if args.grace is not None else grace)
    print("\n" + format_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
