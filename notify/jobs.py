"""RQ jobs. Each takes ids, reloads from the database, and is safe to run twice.

`deliver` claims the delivery with a conditional UPDATE before sending, so a stale or duplicated
job (the sweeper re-enqueued it, Redis replayed it) finds nothing to do instead of sending again.
"""
from __future__ import annotations

import logging
import random
from datetime import timedelta
from functools import wraps

import redis
from flask import current_app
from sqlalchemy import and_, or_, update

from extensions import db
from models import Attempt, Channel, Delivery, DeliveryStatus, Event
from models.base import utcnow
from notify import signing
from notify.queue import JOB_TIMEOUT, enqueue_deliveries, jobs_missing
from notify.transports import PERMANENT, SUCCESS, DeliverySettings, transport_for

log = logging.getLogger(__name__)

# A job may start a little before next_attempt_at when machines' clocks differ.
CLOCK_SKEW = timedelta(seconds=5)
# How long past its due time a delivery may wait for its job before the sweeper looks for it.
SWEEP_GRACE = timedelta(seconds=30)
SWEEP_BATCH = 1000
MAX_RETRY_AFTER = 24 * 3600.0


def in_app_context(func):
    """Run the job in its own app context, so each job gets a fresh database session that is
    removed when it ends, even in a long-lived non-forking worker."""
    @wraps(func)
    def wrapper(*args, **kwargs):
        with current_app.app_context():
            return func(*args, **kwargs)
    return wrapper


def retry_delay(attempt_number: int, schedule: list[float], retry_after: float | None = None) -> float:
    """Seconds to wait after failed attempt `attempt_number` (1-based): the schedule's step with
    ±20 % jitter, so a burst of failures does not come back as a burst; never less than the
    receiver's Retry-After."""
    base = schedule[min(attempt_number, len(schedule)) - 1] if schedule else 0.0
    delay = base * random.uniform(0.8, 1.2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def _lease(config) -> timedelta:
    """How long a claim holds. Longer than the job timeout, after which RQ has stopped the job: a
    lease that runs out means the worker that held it is gone."""
    return timedelta(seconds=max(JOB_TIMEOUT, config["DELIVERY_CONNECT_TIMEOUT"] + config["DELIVERY_READ_TIMEOUT"])
                     + 30)


def claim(delivery_id: str) -> bool:
    """Take the delivery for one attempt if it is due and nobody holds it. Commits."""
    now = utcnow()
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id)
        .where(or_(
            and_(Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.RETRYING]),
                 or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now + CLOCK_SKEW)),
            # A worker died while sending: its lease ran out, so the attempt is made again.
            and_(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until < now),
        ))
        .values(status=DeliveryStatus.SENDING, lease_until=now + _lease(current_app.config), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


@in_app_context
def deliver(delivery_id: str) -> str:
    """Make the next attempt of one delivery and record it. Returns what happened, for the job log."""
    if not claim(delivery_id):
        return "skipped: not due or already handled"
    delivery = db.session.get(Delivery, delivery_id)
    channel = db.session.get(Channel, delivery.channel_id) if delivery.channel_id else None
    if channel is None or (not channel.enabled and not delivery.event.is_test):
        delivery.status = DeliveryStatus.CANCELLED
        delivery.last_error = "channel deleted" if channel is None else "channel disabled"
        delivery.lease_until = None
        db.session.commit()
        return delivery.status

    event: Event = delivery.event
    config = current_app.config
    transport = transport_for(channel.kind)(channel, DeliverySettings.from_config(config))
    number = delivery.attempt_count + 1
    started = utcnow()
    request = transport.prepare(event, delivery, signing.now_ms())
    outcome = transport.send(request)

    db.session.add(Attempt(
        delivery_id=delivery.id, channel_id=channel.id, number=number, started_at=started,
        duration_ms=outcome.duration_ms, request_method=request.method, request_url=request.url,
        request_headers=request.masked_headers, request_body=request.body_text(),
        response_status=outcome.status, response_headers=outcome.response_headers,
        response_body=outcome.response_body, outcome=outcome.kind, error=outcome.error,
    ))
    delivery.attempt_count = number
    delivery.last_status_code = outcome.status
    delivery.last_error = outcome.error
    delivery.lease_until = None
    retry_at = None
    if outcome.kind == SUCCESS:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = utcnow()
        delivery.next_attempt_at = None
        if channel.needs_attention:
            channel.needs_attention, channel.attention_reason = False, None
    elif outcome.kind == PERMANENT:
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
        channel.needs_attention, channel.attention_reason = True, outcome.error
    elif number >= delivery.max_attempts:
        delivery.status = DeliveryStatus.DEAD
        delivery.next_attempt_at = None
    else:
        delivery.status = DeliveryStatus.RETRYING
        delay = retry_delay(number, config["DELIVERY_RETRY_SCHEDULE"], outcome.retry_after)
        retry_at = utcnow() + timedelta(seconds=delay)
        delivery.next_attempt_at = retry_at
    job = (delivery.id, delivery.job_id)
    db.session.commit()

    if retry_at is not None:
        try:
            enqueue_deliveries([job], at=retry_at)
        except redis.RedisError as exc:
            log.warning("could not schedule retry of %s (%s); the sweeper will", delivery_id, exc)
    return f"{delivery.status}: attempt {number}"


@in_app_context
def sweep() -> int:
    """Re-enqueue active deliveries that are overdue and have no job (Redis was flushed or
    restarted without its data, a worker was killed mid-delivery, an enqueue failed). Returns
    how many were enqueued. Running it twice at once is harmless: `deliver` claims before sending."""
    now = utcnow()
    rows = db.session.execute(
        db.select(Delivery.id, Delivery.attempt_count, Delivery.status)
        .where(or_(
            and_(Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.RETRYING]),
                 Delivery.next_attempt_at <= now - SWEEP_GRACE),
            and_(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until < now),
        ))
        .order_by(Delivery.next_attempt_at)
        .limit(SWEEP_BATCH)
    ).all()
    db.session.rollback()
    # A delivery whose lease ran out still has its dead worker's job marked as started in RQ, so
    # its replacement gets an id of its own.
    items = [(delivery_id, Delivery.job_id_for(delivery_id, count) + ("-r" if status == DeliveryStatus.SENDING else ""))
             for delivery_id, count, status in rows]
    missing = jobs_missing([job_id for _, job_id in items])
    lost = [item for item in items if item[1] in missing]
    enqueue_deliveries(lost)
    if lost:
        log.info("sweeper re-enqueued %d deliveries", len(lost))
    return len(lost)
