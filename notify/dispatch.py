"""The one path from an event to its deliveries.

`record_event` adds the event and one delivery per subscribed, enabled channel to the current
database transaction; whoever owns the transaction commits it (the events API, the CLI, the
ledger with its own state change). Only after that commit are the delivery jobs enqueued, so a
job never runs for a row that was rolled back, and a delivery committed while Redis is down is
picked up by the sweeper instead of being lost.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

import redis
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from extensions import db
from models import Channel, Delivery, DeliveryStatus, Event
from models.base import new_id, utcnow
from notify import hooks
import time

from notify import queue

log = logging.getLogger(__name__)

_PENDING_KEY = "merchant_notify.pending_jobs"


class InvalidEvent(ValueError):
    """The event cannot be accepted; `field` names the offending part of the request."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def validate(hook_name: str, data: object) -> None:
    """Raise `InvalidEvent` unless `hook_name` is a known hook and `data` has the shape it needs."""
    if not isinstance(hook_name, str) or hook_name not in hooks.HOOKS_BY_NAME:
        raise InvalidEvent("event", f"unknown hook {hook_name!r}; expected one of: {', '.join(hooks.HOOK_NAMES)}")
    if not isinstance(data, dict):
        raise InvalidEvent("data", "data must be a JSON object")
    key = hooks.get(hook_name).required_key
    if key not in data:
        raise InvalidEvent(f"data.{key}", f"{hook_name} needs data.{key}")
    if key == "days":
        if not isinstance(data[key], list):
            raise InvalidEvent(f"data.{key}", f"data.{key} must be a list")
    elif not isinstance(data[key], dict):
        raise InvalidEvent(f"data.{key}", f"data.{key} must be a JSON object")


def subscribed_channels(hook_name: str) -> list[Channel]:
    """Enabled channels subscribed to `hook_name`. A merchant has a handful of channels, so the
    subscription test runs in Python over one small query instead of a JSON query per database."""
    channels = db.session.scalars(db.select(Channel).filter_by(enabled=True).order_by(Channel.id))
    return [c for c in channels if c.subscribes(hook_name)]


def record_event(hook_name: str, data: dict, *, source: str = "api", channels: Iterable[Channel] | None = None,
                 is_test: bool = False, max_attempts: int | None = None) -> Event:
    """Add the event and its deliveries to the session; their jobs are enqueued when it commits.

    `channels` overrides the subscribers (the Test button targets one channel). `max_attempts`
    defaults to one attempt plus one per step of the retry schedule.
    """
    from flask import current_app

    validate(hook_name, data)
    if max_attempts is None:
        max_attempts = 1 + len(current_app.config["DELIVERY_RETRY_SCHEDULE"])
    # Subscribers first: querying after adding the event would flush it in a round trip of its own.
    targets = list(channels) if channels is not None else subscribed_channels(hook_name)
    event = Event(id=new_id("evt"), hook=hook_name, data=data, source=source, is_test=is_test, created_at=utcnow())
    db.session.add(event)
    pending = db.session.info.setdefault(_PENDING_KEY, [])
    for channel in targets:
        # Ids are set here, not by column defaults at flush time: the commit hook needs them.
        delivery = Delivery(id=new_id("dlv"), event=event, channel=channel, channel_kind=channel.kind,
                            target=channel.target, max_attempts=max_attempts, attempt_count=0,
                            status=DeliveryStatus.PENDING, created_at=event.created_at,
                            next_attempt_at=event.created_at)
        db.session.add(delivery)
        pending.append((channel.id, delivery.id))
    return event


def emit(hook_name: str, data: dict, **kwargs) -> Event:
    """Record the event and commit at once: for callers with no state change of their own."""
    event = record_event(hook_name, data, **kwargs)
    db.session.commit()
    return event


@sa_event.listens_for(Session, "after_commit")
def _enqueue_committed(session: Session) -> None:
    items = session.info.pop(_PENDING_KEY, None)
    if not items:
        return
    now = time.time()
    try:
        queue.schedule([(channel_id, delivery_id, now) for channel_id, delivery_id in items])
    except redis.RedisError as exc:
        # The deliveries are committed: the sweeper hands them to the workers once Redis is back.
        log.warning("could not enqueue %d deliveries (%s); the sweeper will retry", len(items), exc)


@sa_event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)
