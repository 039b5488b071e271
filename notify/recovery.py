"""Sending deliveries again, after a preview of what would be sent.

Recover a channel's failures since a moment: send again every delivery to it that failed, died
or was cancelled, and deliver the events it missed while it was disabled (events of hooks it
subscribes to that have no delivery to it, and that its filters do not leave out).

Redeliver what a filter of the deliveries page shows: each of its final deliveries to a channel
that still takes deliveries gets one more attempt, as the Redeliver button of one delivery gives,
up to `REDELIVER_CAP` at a time, oldest first.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, case, exists, func, literal, select, update

from extensions import db
from models import Channel, Delivery, DeliveryStatus, Event
from models.base import utcnow
from notify import dispatch, rules, shop_settings
from notify.filters import DeliveryFilter, unindexed

# One press sends at most this many: enough for a day's outage of a busy shop, few enough that the
# preview, the UPDATE and the workers' backlog stay a matter of seconds. The rest wait for the next.
REDELIVER_CAP = 10_000


@dataclass
class Summary:
    """What a set of deliveries would send: how many, by hook and by channel id, over which time."""
    total: int
    by_hook: Counter
    by_channel: Counter
    oldest: datetime | None
    newest: datetime | None


def summarize(candidates: Select) -> Summary:
    """The summary of `candidates`, a SELECT of `Delivery.hook, Delivery.channel_id,
    Delivery.created_at` with any WHERE and LIMIT: one grouped query (a few rows: hooks × channels)."""
    rows = candidates.subquery()
    grouped = db.session.execute(
        select(rows.c.hook, rows.c.channel_id, func.count(), func.min(rows.c.created_at), func.max(rows.c.created_at))
        .group_by(rows.c.hook, rows.c.channel_id)).all()
    by_hook, by_channel = Counter(), Counter()
    for hook, channel_id, n, _, _ in grouped:
        by_hook[hook] += n
        by_channel[channel_id] += n
    return Summary(total=sum(by_hook.values()), by_hook=by_hook, by_channel=by_channel,
                   oldest=min((row[3] for row in grouped), default=None),
                   newest=max((row[4] for row in grouped), default=None))

RECOVERABLE = (DeliveryStatus.FAILED, DeliveryStatus.DEAD, DeliveryStatus.CANCELLED)


def _failed(channel: Channel, since: datetime):
    return (Delivery.channel_id == channel.id, Delivery.status.in_(RECOVERABLE), Delivery.created_at >= since)


def _missed(channel: Channel, since: datetime):
    has_delivery = exists().where(Delivery.event_id == Event.id, Delivery.channel_id == channel.id)
    return (Event.created_at >= since, Event.hook.in_(channel.hooks or []), Event.is_test.is_(False), ~has_delivery)


def _missed_events(channel: Channel, since: datetime) -> list[tuple[str, str]]:
    """`[(event id, hook)]` the channel missed. Those its filters leave out (notify.rules, as they
    are now: also events that came while it was disabled) were not missed: they are not sent."""
    channel_rules = rules.parse(channel.rules)
    if channel_rules is None:
        return [tuple(row) for row in db.session.execute(select(Event.id, Event.hook).where(*_missed(channel, since)))]
    currency = shop_settings.effective().currency
    rows = db.session.execute(select(Event.id, Event.hook, Event.data).where(*_missed(channel, since))).all()
    return [(event_id, hook) for event_id, hook, data in rows
            if rules.left_out(channel_rules, hook, data, is_test=False, currency=currency) is None]


def preview(channel: Channel, since: datetime) -> dict[str, Counter]:
    """`{"resend": Counter(hook → n), "missed": Counter(hook → n)}`."""
    resend = summarize(select(Delivery.hook, Delivery.channel_id, Delivery.created_at)
                       .where(*_failed(channel, since))).by_hook
    if rules.parse(channel.rules) is not None:
        return {"resend": resend, "missed": Counter(hook for _, hook in _missed_events(channel, since))}
    missed = db.session.execute(select(Event.hook, func.count()).where(*_missed(channel, since))
                                .group_by(Event.hook)).all()
    return {"resend": resend, "missed": Counter(dict(missed))}


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
    missed = _missed_events(channel, since)
    added = dispatch.add_deliveries([dict(event_id=event_id, hook=hook, channel=channel) for event_id, hook in missed],
                                    attempts)
    db.session.commit()
    return len(resent) + len(added)


def _resendable(selected: DeliveryFilter, *columns, as_of: datetime | None = None) -> Select:
    """The filter's final deliveries to channels that are there and enabled (a disabled channel's
    worker would only cancel them again), oldest first; with `as_of`, only those created by then.

    These two conditions are kept away from the indexes: the filter's own (or, with none, the time
    index, in order) finds the oldest ones after at most `cap` rows, where an index on the status
    would make SQLite sort every final delivery first."""
    enabled = select(Channel.id).where(Channel.enabled.is_(True)).scalar_subquery()
    query = (selected.select(*columns)
             .where(unindexed(Delivery.status).in_(DeliveryStatus.FINAL), unindexed(Delivery.channel_id).in_(enabled))
             .order_by(Delivery.created_at, Delivery.id))
    return query.where(unindexed(Delivery.created_at) <= as_of) if as_of is not None else query


def redelivery_preview(selected: DeliveryFilter, cap: int | None = None) -> tuple[Summary, bool]:
    """`(summary, more)`: what `redeliver_filtered` would send now (at most `cap`, by default
    `REDELIVER_CAP`, the oldest), and whether the filter holds more than that. Two queries, each
    reading at most `cap` + 1 rows."""
    cap = REDELIVER_CAP if cap is None else cap
    more = db.session.scalar(select(func.count()).select_from(
        _resendable(selected, literal(1)).limit(cap + 1).subquery())) > cap
    summary = summarize(_resendable(selected, Delivery.hook, Delivery.channel_id, Delivery.created_at).limit(cap))
    return summary, more


def redeliver_filtered(selected: DeliveryFilter, as_of: datetime, cap: int | None = None) -> list[str]:
    """Send again the filter's final deliveries created by `as_of` (the moment of the preview the
    merchant agreed to: deliveries made since then were not in it), at most `cap` (by default
    `REDELIVER_CAP`), the oldest first, each with one more attempt (`dispatch.redeliver_all`).
    Commits; returns their ids."""
    cap = REDELIVER_CAP if cap is None else cap
    return dispatch.redeliver_all(_resendable(selected, Delivery.id, as_of=as_of).limit(cap))
