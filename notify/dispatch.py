"""The one path from an event to its deliveries.

`record_event` adds the event and one delivery per subscribed, enabled channel to the current
database transaction; whoever owns the transaction commits it (the events API, the CLI, the
ledger with its own state change). Only after that commit are the delivery jobs enqueued, so a
job never runs for a row that was rolled back, and a delivery committed while Redis is down is
picked up by the sweeper instead of being lost.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timezone

import redis
from flask_babel import gettext as _
from sqlalchemy import event as sa_event
from sqlalchemy import Select, case, insert, select, update
from sqlalchemy.orm import Session

from extensions import db
from models import Channel, Delivery, DeliveryStatus, Event
from models.deliveries import ORDER_NO_LENGTH
from models.base import new_id, utcnow
from notify import hooks, queue, rules, schemas, shop_settings
from notify.channels import transport_for

log = logging.getLogger(__name__)

_PENDING_KEY = "merchant_notify.pending_jobs"


class InvalidEvent(ValueError):
    """The event cannot be accepted; `field` names the offending part of the request."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def validate(hook_name: str, data: object) -> None:
    """Raise `InvalidEvent` unless `hook_name` is a known hook and `data` matches its schema
    (`notify.schemas`): every value I-JSON, and the fields the product reads of the right type,
    length and range, so that every channel kind can render the event. Runs for every event,
    whatever its source; about 0.1 ms for a typical one."""
    if not isinstance(hook_name, str) or hook_name not in hooks.HOOKS_BY_NAME:
        raise InvalidEvent("event", f"unknown hook {hook_name!r}; expected one of: {', '.join(hooks.HOOK_NAMES)}")
    try:
        schemas.check_values(data, "data")
        schemas.validate_data(hook_name, data)
    except schemas.Invalid as exc:
        raise InvalidEvent(exc.field or "data", exc.message) from None


@dataclass(frozen=True)
class Target:
    """What a delivery records of its channel, and the channel's filters and quiet hours."""
    id: int
    kind: str
    target: str
    rules: rules.Rules | None = None


# Built once: SQLAlchemy caches a statement's compiled form by a key it computes from the
# statement object, and a statement built per call pays for that key on every event.
_ENABLED_CHANNELS = (select(Channel.id, Channel.kind, Channel.config, Channel.hooks, Channel.rules)
                     .where(Channel.enabled.is_(True)).order_by(Channel.id))
_INSERT_EVENT = insert(Event.__table__)
_INSERT_DELIVERY = insert(Delivery.__table__)


def subscribed_channels(hook_name: str) -> list[Target]:
    """Enabled channels subscribed to `hook_name`. A merchant has a handful of channels, so the
    subscription test runs in Python over one small query instead of a JSON query per database;
    columns rather than ORM objects, because this runs for every event."""
    rows = db.session.connection().execute(_ENABLED_CHANNELS)
    return [Target(row.id, row.kind, transport_for(row.kind).describe(row.config or {}), rules.parse(row.rules))
            for row in rows if hook_name in (row.hooks or [])]


@dataclass(frozen=True)
class RecordedEvent:
    """What the caller learns about the event it recorded."""
    id: str
    hook: str
    delivery_ids: tuple[str, ...]


def order_number(data: dict) -> str | None:
    """The event's `data.order.order_no` as the deliveries page searches it (a string, or an
    integer as its digits; cut to the column's length), or None when the event has none."""
    order = data.get("order")
    if not isinstance(order, dict):
        return None
    number = order.get("order_no")
    if isinstance(number, bool) or not isinstance(number, (str, int)):
        return None
    number = str(number).strip()
    return number[:ORDER_NO_LENGTH] or None


def full_schedule() -> int:
    """Attempts a delivery gets: the first one plus one per step of DELIVERY_RETRY_SCHEDULE."""
    from flask import current_app

    return 1 + len(current_app.config["DELIVERY_RETRY_SCHEDULE"])


def record_event(hook_name: str, data: dict, *, source: str = "api",
                 channels: Iterable[Channel | Target] | None = None,
                 is_test: bool = False, max_attempts: int | None = None, test_mentions: bool = False) -> RecordedEvent:
    """Add the event and its deliveries to the current transaction; they are handed to the
    workers when it commits, and vanish with it if it rolls back.

    `channels` overrides the subscribers (the Test button targets one channel): those are never
    filtered nor held by quiet hours. The subscribers' rules (notify.rules) leave some out, which
    the event records in `filtered`, and park others until their quiet hours end (`fold='quiet'`).
    `max_attempts` defaults to one attempt plus one per step of the retry schedule.
    `test_mentions`: a Test whose robot messages @mention as configured (without it a Test
    mentions nobody).
    """
    validate(hook_name, data)
    if max_attempts is None:
        max_attempts = full_schedule()
    targets = list(channels) if channels is not None else subscribed_channels(hook_name)
    now = utcnow()
    event_id = new_id("evt")
    filtered, rows = [], []
    settings = None
    for channel in targets:
        channel_rules = getattr(channel, "rules", None) if channels is None else None
        if channel_rules is None:  # most channels: nothing to ask
            rows.append(dict(event_id=event_id, hook=hook_name, channel=channel))
            continue
        settings = settings or shop_settings.effective()
        why = rules.left_out(channel_rules, hook_name, data, is_test=is_test, currency=settings.currency)
        if why is not None:
            filtered.append({"channel_id": channel.id, "reason": why.to_json()})
            continue
        due = rules.quiet_until(channel_rules, hook_name, now, settings.timezone)
        rows.append(dict(event_id=event_id, hook=hook_name, channel=channel, due=due,
                         fold="quiet" if due is not None else None))
    # Core INSERTs on the session's connection, in its transaction: the ORM (its unit of work, or
    # even its bulk-insert path) would cost more than the rest of an events API call, and nobody
    # needs these rows as objects.
    row = dict(id=event_id, hook=hook_name, data=data, source=source, is_test=is_test, test_mentions=test_mentions,
               created_at=now, order_no=order_number(data))
    if filtered:  # else SQL NULL (a None here would be stored as JSON null)
        row["filtered"] = filtered
    db.session.connection().execute(_INSERT_EVENT, [row])
    return RecordedEvent(event_id, hook_name, add_deliveries(rows, max_attempts))


def add_deliveries(rows: list[dict], max_attempts: int) -> tuple[str, ...]:
    """Insert one pending delivery per `{"event_id", "hook", "channel"}` in the current transaction;
    they are handed to the workers when it commits. Returns their ids. A row may say when it is
    due (`due`, naive UTC; default now) and why it waits to be folded into a digest (`fold`)."""
    now = utcnow()
    values = [dict(id=new_id("dlv"), event_id=row["event_id"], hook=row["hook"], channel_id=row["channel"].id,
                   channel_kind=row["channel"].kind, target=row["channel"].target, max_attempts=max_attempts,
                   attempt_count=0, status=DeliveryStatus.PENDING, created_at=now, updated_at=now,
                   next_attempt_at=row.get("due") or now, fold=row.get("fold"))
              for row in rows]
    if values:
        db.session.connection().execute(_INSERT_DELIVERY, values)
    hand_over([(value["channel_id"], value["id"]) for value, row in zip(values, rows) if not row.get("due")])
    for value, row in zip(values, rows):
        if row.get("due"):
            hand_over([(value["channel_id"], value["id"])], due=_epoch(row["due"]))
    return tuple(value["id"] for value in values)


def _epoch(moment) -> float:
    """A naive UTC time as epoch seconds (the ready set's scores)."""
    return moment.replace(tzinfo=timezone.utc).timestamp()


def hand_over(items: list[tuple[int, str]], due: float | None = None) -> None:
    """Queue `(channel id, delivery id)` for the workers once the current transaction commits, due
    now or at `due` (epoch seconds: a delivery parked until its channel's quiet hours end)."""
    db.session.info.setdefault(_PENDING_KEY, []).extend((channel_id, delivery_id, due)
                                                       for channel_id, delivery_id in items)


def emit(hook_name: str, data: dict, **kwargs) -> RecordedEvent:
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
        # Due now and due later apart: `schedule` wakes a drain for the earliest of what it is given.
        queue.schedule([(channel_id, delivery_id, now) for channel_id, delivery_id, due in items if due is None])
        queue.schedule([(channel_id, delivery_id, due) for channel_id, delivery_id, due in items if due is not None])
    except redis.RedisError as exc:
        # The deliveries are committed: the sweeper hands them to the workers once Redis is back.
        log.warning("could not enqueue %d deliveries (%s); the sweeper will retry", len(items), exc)


@sa_event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


class CannotRedeliver(ValueError):
    """The reason, in words for the merchant."""


def redeliver(delivery_id: str) -> None:
    """One more attempt of a delivery, now, with the same `X-Apsdai-Delivery` (so a receiver that
    already has it can recognise it), on its own: never folded into a digest. A delivery waiting
    for a retry (or for a digest) is simply brought forward.
    Commits; raises `CannotRedeliver` when there is nothing to send it to or it is being sent.

    The change is one conditional UPDATE on the status and attempt count that were read: a worker
    that claimed the delivery meanwhile (or recorded an attempt) wins, and the merchant is told."""
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.channel_id is None:
        raise CannotRedeliver(_("its channel was deleted"))
    if delivery.status == DeliveryStatus.SENDING:
        raise CannotRedeliver(_("it is being sent right now"))
    now = utcnow()
    seen_status, seen_count, channel_id = delivery.status, delivery.attempt_count, delivery.channel_id
    # `fold="alone"`: the merchant asked for this one event, so it is sent on its own, never folded
    # into a digest (and no longer waits for one); the attempt clears it (notify.digests).
    values = dict(status=DeliveryStatus.RETRYING if seen_count else DeliveryStatus.PENDING, next_attempt_at=now,
                  updated_at=now, fold="alone")
    if seen_status in DeliveryStatus.FINAL:
        values["max_attempts"] = seen_count + 1
    changed = db.session.execute(
        update(Delivery).where(Delivery.id == delivery_id, Delivery.status == seen_status,
                               Delivery.attempt_count == seen_count)
        .values(**values).execution_options(synchronize_session=False)).rowcount
    if not changed:
        db.session.rollback()
        raise CannotRedeliver(_("a worker took it up meanwhile: look at its latest attempt"))
    hand_over([(channel_id, delivery_id)])
    db.session.commit()


def redeliver_all(selection: Select) -> list[str]:
    """`redeliver` for many: each final delivery that `selection` (a SELECT of delivery ids) picks
    gets one more attempt, now, with its id kept. Deliveries no longer final when the UPDATE reaches
    them (a worker or another redelivery got there first) are left alone. One statement however
    many; commits; returns the ids sent again."""
    now = utcnow()
    rows = db.session.execute(
        update(Delivery).where(Delivery.id.in_(selection.scalar_subquery()), Delivery.status.in_(DeliveryStatus.FINAL),
                               Delivery.channel_id.is_not(None))
        .values(status=case((Delivery.attempt_count == 0, DeliveryStatus.PENDING), else_=DeliveryStatus.RETRYING),
                max_attempts=Delivery.attempt_count + 1, next_attempt_at=now, updated_at=now)
        .returning(Delivery.id, Delivery.channel_id).execution_options(synchronize_session=False)).all()
    hand_over([(channel_id, delivery_id) for delivery_id, channel_id in rows])
    db.session.commit()
    return [delivery_id for delivery_id, _ in rows]
