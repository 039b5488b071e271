"""The daily report, `order_count_amount_hook`: the last two days' paid orders and their amount.

What it counts (docs/api.md): for each day in the merchant's time zone (Settings › General), the
orders *paid* that day that the shop still keeps when the report is made (paid, completed or out
of stock). An order refunded later drops out of the day it was paid; a cancelled order was never
paid. The amount is in the shop's currency (Settings › General); orders in other currencies are counted, and their
amounts listed per currency in `amounts`.

When it is sent: every day at the time the merchant set (default 09:00), by the scheduler's
`daily_report` task, which runs every minute. Exactly once per day however many schedulers and
workers run: the report's date is unique in `report_runs`, written in the same transaction as
the event. A report whose time passed while everything was down is sent once when the system is
back, marked `"late": true`.
"""
from __future__ import annotations

import logging
import re
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from extensions import db
from models import Order, OrderStatus, ReportRun, Setting, User
from models.base import utcnow
from notify import dispatch, shop_settings
from notify.jobs import in_app_context

log = logging.getLogger(__name__)

DEFAULT_TIME = "09:00"
# A report sent more than this after its time is marked late.
LATE_AFTER = timedelta(minutes=10)
TIME_FORMAT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def last_run() -> ReportRun | None:
    return db.session.scalar(select(ReportRun).order_by(ReportRun.report_date.desc()).limit(1))


def report_time() -> str:
    setting = db.session.get(Setting, "report_time")
    return setting.value if setting else DEFAULT_TIME


def set_report_time(value: str) -> None:
    """Set the time of day (HH:MM, merchant's time zone); not committed. `ValueError` if malformed."""
    if not isinstance(value, str) or not TIME_FORMAT.match(value.strip()):
        raise ValueError("the time must be HH:MM, from 00:00 to 23:59")
    setting = db.session.get(Setting, "report_time") or Setting(key="report_time")
    setting.value = value.strip()
    db.session.add(setting)


def _to_utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def latest_slot(now_utc: datetime, tz: ZoneInfo, at: str) -> tuple[date, datetime]:
    """The most recent scheduled moment at or before `now_utc`: (its local date, its UTC time)."""
    hour, minute = (int(part) for part in at.split(":"))
    local_now = now_utc.replace(tzinfo=timezone.utc).astimezone(tz)
    day = local_now.date()
    scheduled = datetime.combine(day, time(hour, minute), tz)
    if scheduled > local_now:
        day -= timedelta(days=1)
        scheduled = datetime.combine(day, time(hour, minute), tz)
    return day, _to_utc(scheduled)


def day_figures(day: date, tz: ZoneInfo, main_currency: str) -> dict:
    start = _to_utc(datetime.combine(day, time(0), tz))
    end = _to_utc(datetime.combine(day + timedelta(days=1), time(0), tz))
    rows = db.session.execute(
        select(Order.currency, func.count(Order.id), func.coalesce(func.sum(Order.amount), 0))
        .where(Order.paid_at >= start, Order.paid_at < end, Order.status.in_(OrderStatus.KEPT))
        .group_by(Order.currency)
    ).all()
    amounts = {currency: Decimal(total).quantize(Decimal("0.01")) for currency, _, total in rows}
    figures = {"date": day.isoformat(), "order_count": sum(n for _, n, _ in rows),
               "amount": f"{amounts.get(main_currency, Decimal('0.00')):.2f}"}
    if set(amounts) - {main_currency}:
        figures["amounts"] = {currency: f"{total:.2f}" for currency, total in sorted(amounts.items())}
    return figures


def build(report_date: date) -> dict:
    """The event data for the report of `report_date`: that day and the day before."""
    settings = shop_settings.effective()
    tz = ZoneInfo(settings.timezone)
    currency = settings.currency
    return {"timezone": settings.timezone, "currency": currency,
            "days": [day_figures(report_date, tz, currency),
                     day_figures(report_date - timedelta(days=1), tz, currency)]}


def run_due(now: datetime | None = None) -> ReportRun | None:
    """Send the report of the latest scheduled moment unless it was sent; commits. Returns the
    run it recorded, or None (not due, already sent, or sent by another scheduler just now).

    Moments before the admin account existed are skipped: a fresh install does not start with a
    late report about days it never saw."""
    now = now or utcnow()
    tz = ZoneInfo(shop_settings.effective().timezone)
    report_date, scheduled = latest_slot(now, tz, report_time())
    installed = db.session.scalar(select(func.min(User.created_at)))
    if installed is None or scheduled < installed:
        db.session.rollback()
        return None
    if db.session.scalar(select(ReportRun.id).where(ReportRun.report_date == report_date.isoformat())):
        db.session.rollback()
        return None
    late = now - scheduled > LATE_AFTER
    data = build(report_date)
    if late:
        data["late"] = True
    event = dispatch.record_event("order_count_amount_hook", data, source="report")
    run = ReportRun(report_date=report_date.isoformat(), event_id=event.id, late=late, sent_at=now)
    db.session.add(run)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # another scheduler's job sent it a moment ago; its event stands alone
        return None
    except OperationalError as exc:
        # SQLite refuses a write after a read when another writer committed in between.
        db.session.rollback()
        log.warning("daily report not sent (%s); the next minute's run tries again", exc.orig)
        return None
    return run


@in_app_context
def daily_report_job() -> str:
    run = run_due()
    return f"sent the report of {run.report_date}{' (late)' if run.late else ''}" if run else "nothing due"
