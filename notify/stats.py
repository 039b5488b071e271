"""Figures for the dashboard: deliveries per day by result, in the merchant's days."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import func, select

from extensions import db
from models import Channel, Delivery, DeliveryStatus
from models.base import local_to_utc, utc_to_local, utcnow
from notify import shop_settings

# How the dashboard groups the statuses.
GROUPS = {
    DeliveryStatus.DELIVERED: "delivered",
    DeliveryStatus.FAILED: "failed", DeliveryStatus.DEAD: "failed",
    DeliveryStatus.PENDING: "waiting", DeliveryStatus.SENDING: "waiting", DeliveryStatus.RETRYING: "waiting",
}


@dataclass
class Day:
    date: datetime
    delivered: int = 0
    failed: int = 0
    waiting: int = 0

    @property
    def total(self) -> int:
        return self.delivered + self.failed + self.waiting


def deliveries_per_day(days: int = 14) -> list[Day]:
    """The last `days` days, oldest first; one indexed count per day (cancelled ones are left out)."""
    tz = shop_settings.effective().timezone
    today = utc_to_local(utcnow(), tz).date()
    result = []
    for offset in range(days - 1, -1, -1):
        day = datetime.combine(today - timedelta(days=offset), time(0))
        start, end = local_to_utc(day, tz), local_to_utc(day + timedelta(days=1), tz)
        rows = db.session.execute(select(Delivery.status, func.count()).where(
            Delivery.created_at >= start, Delivery.created_at < end).group_by(Delivery.status)).all()
        figures = Day(day)
        for status, n in rows:
            group = GROUPS.get(status)
            if group:
                setattr(figures, group, getattr(figures, group) + n)
        result.append(figures)
    return result


def channels_needing_attention() -> list[Channel]:
    return list(db.session.scalars(select(Channel).where(Channel.needs_attention.is_(True)).order_by(Channel.id)))
