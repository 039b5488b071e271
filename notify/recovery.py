"""Recover a channel's failures since a moment: send again every delivery to it that failed, died
or was cancelled, and deliver the events it missed while it was disabled (events of hooks it
subscribes to that have no delivery to it). The merchant sees a preview, by hook, first."""
from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import case, exists, func, select, update

from extensions import db
from models import Channel, Delivery, DeliveryStatus, Event
from models.base import utcnow
from notify import dispatch

RECOVERABLE = (DeliveryStatus.FAILED, DeliveryStatus.DEAD, DeliveryStatus.CANCELLED)


def _failed(channel: Channel, since: datetime):
    return (Delivery.channel_id == channel.id, Delivery.status.in_(RECOVERABLE), Delivery.created_at >= since)


def _missed(channel: Channel, since: datetime):
    has_delivery = exists().where(Delivery.event_id == Event.id, Delivery.channel_id == channel.id)
    return (Event.created_at >= since, Event.hook.in_(channel.hooks or []), Event.is_test.is_(False), ~has_delivery)


def preview(channel: Channel, since: datetime) -> dict[str, Counter]:
    """`{"resend": Counter(hook → n), "missed": Counter(hook → n)}`."""
    resend = db.session.execute(select(Delivery.hook, func.count()).where(*_failed(channel, since))
                                .group_by(Delivery.hook)).all()
    missed = db.session.execute(select(Event.hook, func.count()).where(*_missed(channel, since))
                                .group_by(Event.hook)).all()
    return {"resend": Counter(dict(resend)), "missed": Counter(dict(missed))}


def recover(channel: Channel, since: datetime) -> int:
    """Queue them all with a fresh retry schedule, keeping each delivery's id (so receivers can
    recognise what they already have). Commits; returns how many deliveries were queued."""
    now = utcnow()
    attempts = dispatch.full_schedule()
    resent = db.session.execute(
        update(Delivery).where(*_failed(channel, since))
        .values(status=case((Delivery.attempt_count == 0, DeliveryStatus.PENDING), else_=DeliveryStatus.RETRYING),
                max_attempts=Delivery.attempt_count + attempts, next_attempt_at=now,
                last_error=None, last_error_code=None, updated_at=now)
        .returning(Delivery.id).execution_options(synchronize_session=False)).scalars().all()
    dispatch.hand_over([(channel.id, delivery_id) for delivery_id in resent])
    missed = db.session.execute(select(Event.id, Event.hook).where(*_missed(channel, since))).all()
    added = dispatch.add_deliveries([dict(event_id=event_id, hook=hook, channel=channel) for event_id, hook in missed],
                                    attempts)
    db.session.commit()
    return len(resent) + len(added)
