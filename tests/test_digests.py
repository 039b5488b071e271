"""Digests under rate pressure (notify.digests, notify.ratelimit): waiting order events folded into
one message per robot, every delivery recorded, alarms alone and first, against the fakes of
tests/fakes.py (which enforce 20 messages a minute and answer 130101 beyond) and a real SMTP server."""
from __future__ import annotations

import json
import re
import statistics
import time

import pytest
from sqlalchemy import update

from extensions import db
from models import Attempt, Delivery, DeliveryStatus
from models.base import utcnow
from notify import dispatch, hooks, messages, queue, ratelimit
from notify.ratelimit import Pacing
from notify.channels.dingtalk.transport import DingTalkTransport
from notify.channels.email.transport import EmailTransport
from notify.channels.wecom.transport import WeComTransport
from tests.fakes import FakeDingTalk, FakeWeCom
from tests.test_poison import store_event
from tests.test_processes import flask_process  # noqa: F401  (a fixture)

DING = "d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60"
WECOM_KEY = "wecomdigestkey0000001"


def order(no: str, amount: str = "9.90", currency: str = "CNY", name: str = "Sale Pass") -> dict:
    return {"order": {"order_no": no, "product": {"path": "sale", "name": name}, "quantity": 1, "amount": amount,
                      "currency": currency, "paid_at": "2026-12-01T12:00:00Z"}}


def emit_orders(app, numbers, hook="order_pay_hook", **kwargs) -> list[str]:
    with app.app_context():
        return [dispatch.emit(hook, order(no, **kwargs)).delivery_ids[0] for no in numbers]


def final(app, ids):
    def check():
        with app.app_context():
            rows = db.session.scalars(db.select(Delivery.status).where(Delivery.id.in_(ids))).all()
            return len(rows) == len(ids) and all(s in DeliveryStatus.FINAL for s in rows)
    return check


def deliveries(app, ids) -> dict[str, Delivery]:
    with app.app_context():
        found = db.session.scalars(db.select(Delivery).where(Delivery.id.in_(ids))).all()
        for d in found:
            d.attempts  # noqa: B018  (loaded before the session ends)
        db.session.expunge_all()
        return {d.id: d for d in found}


@pytest.fixture
def fast_robots(monkeypatch):
    """Pressure in a few seconds: a window of 3 s (5 s with the limiter's margin), one single
    message before digests, digests 0.2 s apart. The fakes' own limit (20 a minute) still holds."""
    for kind in (DingTalkTransport, WeComTransport):
        monkeypatch.setattr(kind, "rate_limits", ((20, 3.0),))
        monkeypatch.setattr(kind, "fold_budget", (1, 3.0))
        monkeypatch.setattr(kind, "digest_spacing", 0.2)


# -- the limiter ----------------------------------------------------------------------------------
def test_limiter_folds_past_the_single_budget_and_lets_an_alarm_go_first(app):
    pacing = Pacing.of(DingTalkTransport)
    assert pacing == Pacing(((20, 60.0),), 10, 60.0, 3.0)
    with app.app_context():
        key = ratelimit.robot_key("limiter-test")
        verdicts = [ratelimit.reserve(key, f"o{n}:1", pacing, ratelimit.FOLDABLE) for n in range(14)]
        alarm = ratelimit.reserve(key, "alarm:1", pacing, ratelimit.FIXED)
    kinds = [v.kind for v in verdicts]
    assert kinds == [ratelimit.SEND] * 10 + [ratelimit.LEADER] + [ratelimit.FOLD] * 3
    assert all(v.wait == 0 for v in verdicts[:10])
    # The digest waits at least the spacing (3 s), its free slots spread over the minute (8 left).
    assert 7.0 < verdicts[10].wait < 8.5 and all(abs(v.wait - verdicts[10].wait) < 0.5 for v in verdicts[11:])
    assert alarm.kind == ratelimit.SEND and alarm.wait == 0  # before the pending digest


def test_limiter_keeps_every_window_of_a_kind(app):
    """Feishu's two windows (100 a minute, 5 a second): the sixth message waits for the short one."""
    pacing = Pacing(((100, 60.0), (5, 1.0)))
    with app.app_context():
        key = ratelimit.robot_key("two-windows")
        waits = [ratelimit.reserve(key, f"m{n}:1", pacing).wait for n in range(11)]
    assert waits[:5] == [0] * 5
    assert all(2.9 < w < 3.1 for w in waits[5:10]) and 5.9 < waits[10] < 6.1  # 1 s + the 2 s margin


# -- the message ----------------------------------------------------------------------------------
def test_a_digest_in_chinese_sums_per_currency(app):
    from datetime import datetime

    app.config.update(MERCHANT_LANGUAGE="zh_CN", MERCHANT_TIMEZONE="Asia/Shanghai", MERCHANT_NAME="小店")
    with app.test_request_context():
        with messages.merchant_locale():
            events = [("order_pay_hook", order("A1", "10.00"), datetime(2026, 12, 1, 12, 0, 3)),
                      ("order_pay_hook", order("A2", "20.50"), datetime(2026, 12, 1, 12, 0, 1)),
                      ("order_pay_hook", order("A3", "5.00", "USD"), datetime(2026, 12, 1, 12, 0, 2)),
                      ("order_refund_hook", order("R1", "[x](http://evil)"), datetime(2026, 12, 1, 12, 0, 4))]
            digest = messages.digest("dig_0000000000001", events, "http://admin.example/deliveries/?digest=dig_1")
            text = messages.render_digest("channels/robot_digest.md", digest, 3)
            # The refund waited past the lag bound: carried unlisted, behind the link.
            overdue = messages.digest("dig_0000000000001", events, "http://admin.example/deliveries/?digest=dig_1",
                                      overdue={3})
            counted = messages.render_digest("channels/robot_digest.md", overdue, 3)
    assert digest.groups[0].headline == "3 笔订单已付款 — ¥30.50 + US$5.00"
    assert digest.groups[1].headline == "1 笔订单已退款"  # its amount cannot be read: no sum
    assert [line.number for line in digest.groups[0].lines] == ["A2", "A3", "A1"]  # oldest first
    assert digest.count == 4 and digest.following == 0 and digest.carried == (0, 1, 2, 3)
    # Three lines fit: the message carries those three, and says the fourth follows.
    assert "**Sale Pass**\n\n- A2 · ¥20.50\n- A3 · US$5.00\n- A1 · ¥10.00" in text
    assert "### 3 笔订单已付款 — ¥30.50 + US$5.00" in text and "退款" not in text and "R1" not in text
    assert "另有 1 条随下一条消息发送" in text and "还有" not in text
    assert "[在投递记录页面查看这些订单](http://admin.example/deliveries/?digest=dig_1)" in text
    assert "2026-12-01 20:00:01" in text and "2026-12-01 20:00:03" in text and "小店" in text
    assert digest.take(3).carried == (0, 1, 2) and digest.take(3).following == 1
    # Past the bound, it is carried and counted though not listed.
    assert overdue.take(3).carried == (0, 1, 2, 3) and overdue.take(3).more == 1
    assert "[还有 1 条](http://admin.example/deliveries/?digest=dig_1)" in counted and "R1" not in counted
    assert "1 笔订单已退款" in counted and "下一条消息" not in counted and "2026-12-01 20:00:04" in counted


def test_the_leader_is_listed_first_whatever_its_age(app):
    from datetime import datetime

    with app.test_request_context():
        with messages.merchant_locale():
            events = [("order_pay_hook", order(f"L{n}"), datetime(2026, 12, 1, 12, 0, n)) for n in range(5)]
            digest = messages.digest("dig_0000000000001", events, "http://admin.example/", lead=4)
            two = digest.take(2)
    assert two.carried == (0, 4) and [line.number for line in two.groups[0].lines] == ["L0", "L4"]
    assert two.groups[0].headline == "2 orders paid — CN¥19.80" and two.following == 3


# -- through the workers ----------------------------------------------------------------------------
def test_no_folding_without_pressure(app, worker, dingtalk, make_channel):
    """Two orders a minute are two messages, each its own."""
    make_channel("dingtalk", {"url": dingtalk.add_robot(DING)}, hooks_=["order_pay_hook"])
    ids = emit_orders(app, ["N1", "N2"])
    worker(until=final(app, ids))
    texts = sorted(m["markdown"]["text"] for m in dingtalk.robots[DING].messages)
    assert len(texts) == 2 and "Order N1 paid" in texts[0] and "Order N2 paid" in texts[1]
    assert all(a.digest_id is None for d in deliveries(app, ids).values() for a in d.attempts)


def digest_ids(content: str) -> list[str]:
    return re.findall(r"/deliveries/\?digest=(dig_[0-9a-f]+)", content)


def test_a_digest_carries_what_it_lists_and_the_rest_follows_in_the_next(app, worker, wecom, make_channel,
                                                                          fast_robots, login):
    """More than 4,096 bytes of lines: the first digest lists what fits and leaves the rest parked;
    the next digests list them, promptly though nothing new arrives. Each order is listed once,
    each delivery has one attempt, and each digest's page shows its own deliveries."""
    make_channel("wecom", {"url": wecom.add_robot(WECOM_KEY)}, hooks_=["order_pay_hook"])
    numbers = [f"WC2026120100{n:04d}" for n in range(400)]
    ids = emit_orders(app, numbers, name="Annual VPN plan — premium")
    started = time.time()
    worker(until=final(app, ids), timeout=60)
    elapsed = time.time() - started
    found = deliveries(app, ids)
    assert {d.status for d in found.values()} == {DeliveryStatus.DELIVERED}
    assert all(len(d.attempts) == 1 for d in found.values())  # one delivery per event, one attempt each
    robot = wecom.robots[WECOM_KEY]
    assert robot.limited_count == 0
    contents = [m["markdown"]["content"] for m in robot.messages]
    assert all(len(c.encode("utf-8")) <= 4096 for c in contents)
    # Every order listed, once (a single message names its order twice: title and facts).
    listed = [no for c in contents for no in set(re.findall(r"WC2026120100\d{4}", c))]
    assert sorted(listed) == sorted(numbers)
    digests_ = [c for c in contents if "orders paid" in c]
    assert len(digests_) >= 3 and len(robot.messages) < 12, [len(c) for c in contents]
    assert "and " not in "".join(re.findall(r"\[[^\]]*\]", "".join(digests_)))  # no "and N more": all listed
    by_digest = {}
    for d in found.values():
        by_digest.setdefault(d.attempts[0].digest_id, []).append(d)
    for n, content in enumerate(digests_):
        (digest_id,) = digest_ids(content)
        carried = by_digest[digest_id]
        shown = re.findall(r"WC2026120100\d{4}", content)
        assert len(shown) == len(carried)
        assert re.search(rf'<font color="info">{len(carried)} orders paid — CN¥[\d,.]+</font>', content)
        follows = re.search(r"(\d+) more follows? in the next message", content)
        if n < len(digests_) - 1:
            later = sum(len(re.findall(r"WC2026120100\d{4}", c)) for c in digests_[n + 1:])
            # Those it gathered and gave back; the next ones may carry more that were not parked yet.
            assert follows and 0 < int(follows.group(1)) <= later, content[-300:]
        else:
            assert not follows
        page = login.get(f"/deliveries/?digest={digest_id}").text
        assert f"{len(carried)} deliveries" in page and "The deliveries one digest message carried" in page
        # Every attempt of the digest has its outcome; the first one keeps the message as sent.
        attempts = sorted((d.attempts[0] for d in carried), key=lambda a: a.id)
        assert {a.outcome for a in attempts} == {"success"}
        assert json.loads(attempts[0].request_body)["markdown"]["content"] == content
        assert all(a.request_body == "" and a.request_url == attempts[0].request_url for a in attempts[1:])
        detail = login.get(f"/deliveries/{attempts[-1].delivery_id}").text
        assert f"Sent in a digest of {len(carried)} deliveries" in detail
    # The leftovers did not wait for their backstop (30 s): the next digest led at once.
    assert elapsed < 20, elapsed


def test_past_the_lag_bound_a_digest_carries_what_it_cannot_list(app, worker, wecom, make_channel, fast_robots,
                                                                  login):
    """Overload: the orders that waited longer than DIGEST_LAG_BOUND go with the next digest,
    listed when they fit (oldest first), else counted in "and N more" behind its link; the newer
    ones follow in the next message."""
    from datetime import timedelta

    app.config["DIGEST_LAG_BOUND"] = 60.0
    make_channel("wecom", {"url": wecom.add_robot(WECOM_KEY)}, hooks_=["order_pay_hook"])
    old = emit_orders(app, [f"OLD20261201{n:04d}" for n in range(400)])
    new = emit_orders(app, [f"NEW20261201{n:04d}" for n in range(30)])
    with app.app_context():
        # Parked as the limiter parks folded deliveries (due for the next digest); the old ones have
        # waited two minutes (a backlog the robot could not keep up with). The first leads the
        # digest now (as at the end of quiet hours), which gathers them all.
        db.session.execute(update(Delivery).where(Delivery.id.in_(old[1:] + new))
                           .values(fold="rate", next_attempt_at=utcnow() + timedelta(seconds=20)))
        db.session.execute(update(Delivery).where(Delivery.id.in_(old[1:]))
                           .values(created_at=utcnow() - timedelta(seconds=120)))
        db.session.execute(update(Delivery).where(Delivery.id == old[0]).values(fold="quiet", next_attempt_at=utcnow()))
        db.session.commit()
    worker(until=final(app, old + new), timeout=60)
    found = deliveries(app, old + new)
    assert {d.status for d in found.values()} == {DeliveryStatus.DELIVERED}
    assert all(len(d.attempts) == 1 for d in found.values())
    contents = [m["markdown"]["content"] for m in wecom.robots[WECOM_KEY].messages]
    first = next(c for c in contents if "OLD20261201" in c and "orders paid" in c)
    (digest_id,) = digest_ids(first)
    more = re.search(r"\[and (\d+) more\]\(http://[^)]+/deliveries/\?digest=" + digest_id + r"\)", first)
    listed = re.findall(r"OLD20261201\d{4}", first)
    carried = [d for d in found.values() if d.attempts[0].digest_id == digest_id]
    # Every old one is in it (listed or counted), oldest first; no new one.
    assert more and len(listed) + int(more.group(1)) == len(carried) == 400, first[-300:]
    assert listed == sorted(listed) and "NEW20261201" not in first
    assert re.search(r"30 more follow in the next message", first)
    assert f"{len(carried)} orders paid" in first
    assert f"{len(carried)} deliveries" in login.get(f"/deliveries/?digest={digest_id}").text
    # The new ones went in the next message, listed.
    later = "".join(contents[contents.index(first) + 1:])
    assert sorted(re.findall(r"NEW20261201\d{4}", later)) == [f"NEW20261201{n:04d}" for n in range(30)]


def test_a_stock_alarm_during_a_digest_goes_alone_and_first(app, worker, dingtalk, make_channel, fast_robots,
                                                           monkeypatch):
    monkeypatch.setattr(DingTalkTransport, "digest_spacing", 3.0)  # the digest waits: the worker returns
    make_channel("dingtalk", {"url": dingtalk.add_robot(DING)})
    emit_orders(app, ["S0"])  # the single budget (1)
    worker()
    ids = emit_orders(app, [f"S{n}" for n in range(1, 6)])
    worker()  # they fold: one leads the digest, due in a moment
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Delivery)
                                 .where(Delivery.fold.in_(["rate", "lead"]))) == 5
        (alarm,) = dispatch.emit("stock_alarm_hook", hooks.get("stock_alarm_hook").sample).delivery_ids
    worker(until=final(app, ids + [alarm]), timeout=20)
    texts = [m["markdown"]["text"] for m in dingtalk.robots[DING].messages]
    assert len(texts) == 3
    assert "Order S0 paid" in texts[0]
    assert "Low stock: VPN Monthly Plan has 3 left" in texts[1] and "orders paid" not in texts[1]
    assert "5 orders paid" in texts[2] and all(f"S{n} ·" in texts[2] for n in range(1, 6))
    assert deliveries(app, [alarm])[alarm].attempts[0].digest_id is None


def test_redelivering_a_folded_delivery_sends_that_one_event(app, worker, dingtalk, make_channel, fast_robots, login):
    make_channel("dingtalk", {"url": dingtalk.add_robot(DING)}, hooks_=["order_pay_hook"])
    first = emit_orders(app, [f"R{n}" for n in range(4)])
    worker(until=final(app, first), timeout=20)
    digest_id = deliveries(app, first)[first[-1]].attempts[0].digest_id
    assert digest_id
    before = len(dingtalk.robots[DING].messages)
    login.post(f"/deliveries/{first[-1]}/redeliver")
    ids = emit_orders(app, [f"R{n}" for n in range(4, 8)])  # pressure again meanwhile
    worker(until=final(app, first + ids), timeout=20)
    alone = [m["markdown"]["text"] for m in dingtalk.robots[DING].messages[before:] if "Order R3 paid" in m["markdown"]["text"]]
    assert len(alone) == 1 and "orders paid" not in alone[0]
    again = deliveries(app, [first[-1]])[first[-1]]
    assert [a.digest_id for a in again.attempts] == [digest_id, None] and again.fold is None


def test_a_poison_event_among_folded_ones_costs_only_itself(app, worker, dingtalk, make_channel, fast_robots,
                                                            monkeypatch):
    from datetime import timedelta

    from tests.test_poison import add_deliveries, deep_json

    monkeypatch.setattr(DingTalkTransport, "digest_spacing", 2.0)  # the first to fold leads, the others join

    make_channel("dingtalk", {"url": dingtalk.add_robot(DING)}, hooks_=["order_pay_hook"])
    emit_orders(app, ["P0"])
    worker()
    healthy = emit_orders(app, ["P1", "P2"])
    poison = add_deliveries(app, store_event(app, "order_pay_hook", '{"order": ' + deep_json(970) + "}"),
                            "order_pay_hook")
    healthy += emit_orders(app, ["P3"])
    with app.app_context():
        # Parked as the limiter parks folded deliveries (its backstop ahead), so that the digest
        # gathers it: its event cannot be loaded there.
        db.session.execute(update(Delivery).where(Delivery.id.in_(poison))
                           .values(fold="rate", next_attempt_at=utcnow() + timedelta(seconds=20)))
        db.session.commit()
    worker(until=final(app, healthy + poison), timeout=20)
    found = deliveries(app, healthy + poison)
    assert all(found[d].status == DeliveryStatus.DELIVERED for d in healthy)
    (bad,) = poison
    assert found[bad].status == DeliveryStatus.FAILED and len(found[bad].attempts) == 1
    assert found[bad].attempts[0].digest_id is None
    digest = [m["markdown"]["text"] for m in dingtalk.robots[DING].messages if "orders paid" in m["markdown"]["text"]]
    assert len(digest) == 1 and all(f"{n} ·" in digest[0] for n in ("P1", "P2", "P3"))


def test_a_transient_failure_of_a_digest_retries_every_delivery_it_carried(app, worker, dingtalk, make_channel,
                                                                           fast_robots, monkeypatch):
    monkeypatch.setattr(DingTalkTransport, "digest_spacing", 2.0)  # the first to fold leads, the others join
    app.config["DELIVERY_RETRY_SCHEDULE"] = [0.5]
    make_channel("dingtalk", {"url": dingtalk.add_robot(DING)}, hooks_=["order_pay_hook"])
    emit_orders(app, ["T0"])
    worker()
    ids = emit_orders(app, [f"T{n}" for n in range(1, 5)])
    dingtalk.system_busy = 1  # the digest's request gets -1 "system busy"
    worker(until=final(app, ids), timeout=20)
    found = deliveries(app, ids)
    for d in found.values():
        assert d.status == DeliveryStatus.DELIVERED
        assert [a.outcome for a in d.attempts] == ["transient", "success"]
        assert "system busy" in d.attempts[0].error
    assert len({d.attempts[0].digest_id for d in found.values()}) == 1  # the same failed digest
    assert [r.errcode for r in dingtalk.requests].count(-1) == 1


def test_email_digests_at_most_one_a_minute(app, worker, smtp_server, make_channel, login):
    channel = make_channel("email", {"recipients": ["merchant@example.com"]}, hooks_=["order_pay_hook"])
    ids = emit_orders(app, [f"E{n}" for n in range(8)])
    worker()
    assert len(smtp_server.messages) == 5  # singles while fewer than 5 went in the last minute
    found = deliveries(app, ids)
    parked = [d for d in found.values() if d.status == DeliveryStatus.PENDING]
    assert len(parked) == 3 and {d.fold for d in parked} == {"rate", "lead"}
    # The digest is due a minute after the last single (sent a moment ago).
    assert all(50 <= (d.waits_for_digest_at - utcnow()).total_seconds() <= 61 for d in parked), [(d.fold, d.next_attempt_at, d.waits_for_digest_at, utcnow()) for d in parked]
    assert "Waiting to be sent in a digest at" in login.get(f"/deliveries/{parked[0].id}").text
    # Skip the minute: as when quiet hours end, a parked delivery due now leads the digest.
    with app.app_context():
        queue.get_redis().delete(*[ratelimit.robot_key(f"email-channel:{channel}") + s for s in ("", ":digest")])
        db.session.execute(update(Delivery).where(Delivery.id.in_([d.id for d in parked]))
                           .values(fold="quiet", next_attempt_at=utcnow()))
        db.session.commit()
        queue.schedule([(channel, d.id, time.time()) for d in parked])
    worker(until=final(app, ids))
    assert len(smtp_server.messages) == 6
    message, _ = smtp_server.parsed()[-1]
    assert message["Subject"] == "[Shop] 3 orders paid — CN¥29.70" and message["X-Apsdai-Digest"].startswith("dig_")
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "Sale Pass\n- E5 · CN¥9.90\n- E6 · CN¥9.90\n- E7 · CN¥9.90" in text
    html = message.get_body(("html",)).get_content()
    assert "/deliveries/?digest=dig_" in html


# -- the flash sale ---------------------------------------------------------------------------------
class Timed:
    """A robot fake noting when it accepted each message (its own clock: real time)."""

    def __init__(self):
        super().__init__()
        self.accepted_at: list[float] = []
        self.seen_at: list[float] = []

    def _check(self, query, body, raw):
        self.seen_at.append(self.clock())
        super()._check(query, body, raw)
        self.accepted_at.append(self.clock())


class TimedDingTalk(Timed, FakeDingTalk):
    pass


class TimedWeCom(Timed, FakeWeCom):
    pass


def flash_sale(app, make_channel, flask_process, fake, kind: str, url: str, text) -> None:  # noqa: F811
    """1,000 `order_pay_hook` events spread over 60 s to one robot, through a real `flask worker`:
    every order number is in the group within 90 s of its event (p99), never more than 20
    messages in any 60 s, nothing refused, and every delivery delivered with its one attempt."""
    make_channel(kind, {"url": url}, hooks_=["order_pay_hook"])
    flask_process("worker")
    numbers = [f"FS{n:05d}" for n in range(1000)]
    emitted: dict[str, float] = {}
    start = time.time()
    with app.app_context():
        for n, no in enumerate(numbers):
            time.sleep(max(0.0, start + n * 0.06 - time.time()))
            dispatch.emit("order_pay_hook", order(no))
            emitted[no] = time.time()
    (robot,) = fake.robots.values()
    seen: dict[str, float] = {}
    deadline = time.time() + 100
    while time.time() < deadline and len(seen) < len(numbers):
        time.sleep(0.5)
        with fake._lock:
            accepted = list(zip(fake.accepted_at, robot.messages))
        for at, message in accepted:
            for no in re.findall(r"FS\d{5}", text(message)):
                seen.setdefault(no, at)
    latencies = sorted(seen[no] - emitted[no] for no in seen)
    p50, p99 = statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]
    busiest = max(sum(1 for t in fake.seen_at if s <= t < s + 60) for s in fake.seen_at)
    print(f"flash sale ({kind}): {len(robot.messages)} messages, busiest 60 s {busiest}, "
          f"{len(seen)} of 1,000 visible, latency p50 {p50:.1f} s p99 {p99:.1f} s max {latencies[-1]:.1f} s")
    assert len(seen) == len(numbers)
    assert p99 <= 90
    assert all(r.errcode == 0 for r in fake.requests)  # no 130101, no 45009
    assert busiest <= 20
    with app.app_context():
        def counts():
            return dict(db.session.execute(db.select(Delivery.status, db.func.count()).group_by(Delivery.status)).all())
        wait = time.time() + 20
        while counts() != {DeliveryStatus.DELIVERED: 1000} and time.time() < wait:
            time.sleep(0.5)
            db.session.rollback()
        assert counts() == {DeliveryStatus.DELIVERED: 1000}
        assert db.session.scalar(db.select(db.func.count()).select_from(Attempt)) == 1000  # one attempt each
        assert db.session.scalar(db.select(db.func.count()).select_from(Attempt)
                                 .where(Attempt.outcome != "success")) == 0


def test_flash_sale_1000_orders_in_a_minute_to_one_robot(app, make_channel, flask_process):  # noqa: F811
    fake = TimedDingTalk().start()
    try:
        flash_sale(app, make_channel, flask_process, fake, "dingtalk", fake.add_robot(DING),
                   lambda message: message["markdown"]["text"])
        assert fake.robots[DING].throttled_count == 0
    finally:
        fake.stop()


def test_flash_sale_1000_orders_in_a_minute_to_a_wecom_robot(app, make_channel, flask_process):  # noqa: F811
    """The same to WeCom, whose markdown holds 4,096 bytes: about 130 lines a message."""
    fake = TimedWeCom().start()
    try:
        flash_sale(app, make_channel, flask_process, fake, "wecom", fake.add_robot(WECOM_KEY),
                   lambda message: message["markdown"]["content"])
        assert fake.robots[WECOM_KEY].limited_count == 0
    finally:
        fake.stop()


def test_a_wecom_digest_that_mentions_everyone_is_text_within_2048_bytes(app, worker, wecom, make_channel,
                                                                         fast_robots, monkeypatch, login):
    monkeypatch.setattr(WeComTransport, "digest_spacing", 2.0)  # the first to fold leads, the others join
    make_channel("wecom", {"url": wecom.add_robot(WECOM_KEY), "mentions": {"order": {"all": True}}},
                 hooks_=["order_pay_hook"])
    emit_orders(app, ["M0"])
    worker()
    ids = emit_orders(app, [f"M2026120100{n:04d}" for n in range(1, 80)])
    worker(until=final(app, ids), timeout=20)
    digests_ = [m for m in wecom.robots[WECOM_KEY].messages if "orders paid" in m.get("text", {}).get("content", "")]
    assert digests_
    for n, digest in enumerate(digests_):
        content = digest["text"]["content"]
        assert len(content.encode("utf-8")) <= 2048 and digest["text"]["mentioned_list"] == ["@all"]
        assert re.search(r"These orders on the deliveries page: http://\S+/deliveries/\?digest=dig_[0-9a-f]+", content)
        assert ("more follow" in content) == (n < len(digests_) - 1)
        assert "<font" not in content
    listed = [no for m in digests_ for no in re.findall(r"M2026120100\d{4}", m["text"]["content"])]
    assert sorted(listed) == [f"M2026120100{n:04d}" for n in range(1, 80)]
    # A filter value that is not a digest id is no filter.
    assert "The deliveries one digest message carried" not in login.get("/deliveries/?digest=dig_%3Cx%3E").text
