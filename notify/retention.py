"""Old history is pruned: events older than RETENTION_DAYS go, with their deliveries and attempts
(the foreign keys cascade), once none of their deliveries is still active. Idempotency keys are
kept a day, as long as a shop's retries of one call last. Runs hourly from the scheduler, in
batches, so a large backlog never holds a long transaction."""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, exists, select

from extensions import db
from models import Delivery, DeliveryStatus, Event, IdempotencyKey
from models.base import utcnow
from notify.jobs import in_app_context

BATCH = 500
IDEMPOTENCY_KEY_TTL = timedelta(days=1)


def prune(now=None) -> dict[str, int]:
    """Delete what is past retention; commits each batch. Returns how many rows of each kind went."""
    now = now or utcnow()
    cutoff = now - timedelta(days=current_app.config["RETENTION_DAYS"])
    events = 0
    while True:
        active = exists().where(Delivery.event_id == Event.id, Delivery.status.in_(DeliveryStatus.ACTIVE))
        ids = db.session.scalars(select(Event.id).where(Event.created_at < cutoff, ~active).limit(BATCH)).all()
        if not ids:
            break
        db.session.execute(delete(Event).where(Event.id.in_(ids)))
        db.session.commit()
        events += len(ids)
    keys = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - IDEMPOTENCY_KEY_TTL))
    db.session.commit()
    return {"events": events, "idempotency_keys": keys.rowcount}


@in_app_context
def prune_job() -> str:
    pruned = prune()
    return f"pruned {pruned['events']} events and {pruned['idempotency_keys']} idempotency keys"
