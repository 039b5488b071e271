"""The daily report: its numbers in the merchant's time zone, exactly once, late when missed."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from extensions import db
from models import Event, Order, Product, ReportRun, User
from shop import report


@pytest.fixture
def shop(app):
    """A merchant in Shanghai whose admin account exists since November 1st."""
    app.config.update(MERCHANT_TIMEZONE="Asia/Shanghai", MERCHANT_CURRENCY="CNY")
    with app.app_context():
        user = User(username="merchant", created_at=datetime(2026, 11, 1))
        user.set_password("correct horse")
        db.session.add(user)
        db.session.add(Product(path="vpn", name="VPN", price=Decimal("128.00"), currency="CNY"))
        db.session.commit()
    return app


def order(app, no: str, paid_at: datetime | None, status: str = "paid", amount="128.00", currency="CNY"):
    with app.app_context():
        product_id = db.session.scalar(db.select(Product.id))
        db.session.add(Order(order_no=no, product_id=product_id, quantity=1, amount=Decimal(amount), currency=currency,
                             status=status, created_at=paid_at or datetime(2026, 11, 26), paid_at=paid_at))
        db.session.commit()


def reports(app) -> list[dict]:
    with app.app_context():
        return [e.data for e in db.session.scalars(db.select(Event).where(Event.hook == "order_count_amount_hook"))]


def test_days_follow_the_merchant_time_zone_and_refunds_drop_out(shop):
    # 2026-11-26 15:59 UTC is 23:59 on the 26th in Shanghai; 16:01 UTC is 00:01 on the 27th.
    order(shop, "late-26", datetime(2026, 11, 26, 15, 59))
    order(shop, "early-27", datetime(2026, 11, 26, 16, 1), status="completed", amount="100.50")
    order(shop, "oos-27", datetime(2026, 11, 27, 1, 0), status="out_of_stock")
    order(shop, "refunded-27", datetime(2026, 11, 27, 2, 0), status="refunded")
    order(shop, "cancelled", None, status="cancelled")
    order(shop, "usd-27", datetime(2026, 11, 27, 3, 0), amount="12.50", currency="USD")
    order(shop, "day-25", datetime(2026, 11, 25, 15, 0))  # the 25th in Shanghai: in neither day
    with shop.app_context():
        run = report.run_due(now=datetime(2026, 11, 27, 1, 0, 30))  # 09:00:30 in Shanghai
        assert run.report_date == "2026-11-27" and not run.late
    (data,) = reports(shop)
    assert data == {"timezone": "Asia/Shanghai", "currency": "CNY", "days": [
        {"date": "2026-11-27", "order_count": 3, "amount": "228.50", "amounts": {"CNY": "228.50", "USD": "12.50"}},
        {"date": "2026-11-26", "order_count": 1, "amount": "128.00"},
    ]}


def test_not_before_its_time_then_exactly_once(shop):
    with shop.app_context():
        report.set_report_time("20:30")
        db.session.commit()
        # 20:29 in Shanghai on the 27th: the latest moment is the 26th's 20:30, after the install,
        # and nothing was sent for it: it goes now, late. The 27th's is not due yet.
        assert report.run_due(now=datetime(2026, 11, 27, 12, 29)).report_date == "2026-11-26"
        assert report.run_due(now=datetime(2026, 11, 27, 12, 29, 30)) is None
        assert report.run_due(now=datetime(2026, 11, 27, 12, 30, 5)).report_date == "2026-11-27"
        assert report.run_due(now=datetime(2026, 11, 27, 13, 0)) is None
        assert [r.late for r in db.session.scalars(db.select(ReportRun).order_by(ReportRun.report_date))] == [True, False]
    assert [d.get("late", False) for d in reports(shop)] == [True, False]


def test_a_missed_report_is_sent_once_when_the_system_is_back_marked_late(shop):
    with shop.app_context():
        run = report.run_due(now=datetime(2026, 11, 27, 5, 0))  # 13:00: four hours late
        assert run.report_date == "2026-11-27" and run.late
        assert report.run_due(now=datetime(2026, 11, 27, 5, 1)) is None
    (data,) = reports(shop)
    assert data["late"] is True


def test_no_report_for_days_before_the_install(app):
    with app.app_context():
        db.session.add(User(username="new", password_hash="x", created_at=datetime(2026, 11, 27, 3, 0)))
        db.session.commit()
        app.config["MERCHANT_TIMEZONE"] = "Asia/Shanghai"
        assert report.run_due(now=datetime(2026, 11, 27, 4, 0)) is None  # the 09:00 before the install
        assert report.run_due(now=datetime(2026, 11, 28, 1, 0)).report_date == "2026-11-28"


def test_two_schedulers_at_the_same_moment_send_one_report(shop):
    barrier = threading.Barrier(4)
    results = []

    def run():
        with shop.app_context():
            barrier.wait()
            results.append(report.run_due(now=datetime(2026, 11, 27, 1, 0, 10)))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r is not None for r in results) == 1
    assert len(reports(shop)) == 1
    with shop.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(ReportRun)) == 1


def test_the_scheduler_task_runs_the_report_through_a_worker(shop, worker, make_webhook, receiver_demo):
    from notify import periodic

    demo = receiver_demo()
    make_webhook(demo.url, secret=demo.secret, hooks_=["order_count_amount_hook"])
    with shop.app_context():
        enqueued = periodic.run_due(shop.config)
        assert any(job.startswith("periodic-daily_report-") for job in enqueued)
        assert periodic.run_due(shop.config) == []  # a second scheduler in the same minute enqueues nothing
    worker(until=lambda: len(demo.events()) == 1)
    (entry,) = demo.events()
    assert entry["event"] == "order_count_amount_hook" and len(entry["body"]["data"]["days"]) == 2


def test_report_time_is_checked(app):
    with app.app_context():
        for bad in ("9:00", "24:00", "09:60", "nine"):
            with pytest.raises(ValueError):
                report.set_report_time(bad)
        assert report.report_time() == "09:00"
