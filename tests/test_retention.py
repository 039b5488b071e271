"""Pruning: old history goes, with its deliveries and attempts; active work and recent history stay."""
from datetime import timedelta

from extensions import db
from models import Attempt, Delivery, DeliveryStatus, Event, IdempotencyKey
from models.base import utcnow
from notify import dispatch, retention


def test_prune_deletes_old_finished_history_and_keeps_the_rest(app, worker, make_webhook, receiver_demo):
    demo = receiver_demo()
    make_webhook(demo.url, secret=demo.secret)
    with app.app_context():
        old_done = dispatch.emit("order_pay_hook", {"order": {"order_no": "OLD"}})
        recent = dispatch.emit("order_pay_hook", {"order": {"order_no": "NEW"}})
    worker()
    with app.app_context():
        old_pending = dispatch.emit("order_pay_hook", {"order": {"order_no": "STUCK"}})
        long_ago = utcnow() - timedelta(days=31)
        for event_id in (old_done.id, old_pending.id):
            db.session.get(Event, event_id).created_at = long_ago
        db.session.add(IdempotencyKey(token_id=1, key="k", fingerprint="f", status_code=201, body={},
                                      created_at=utcnow() - timedelta(days=2)))
        db.session.commit()
        assert db.session.scalar(db.select(db.func.count()).select_from(Attempt)) == 2
        assert retention.prune() == {"events": 1, "idempotency_keys": 1}
        assert {e.id for e in db.session.scalars(db.select(Event))} == {recent.id, old_pending.id}
        assert db.session.scalar(db.select(db.func.count()).select_from(Attempt)) == 1  # cascaded
        assert db.session.get(Delivery, old_done.delivery_ids[0]) is None
        assert db.session.get(Delivery, old_pending.delivery_ids[0]).status == DeliveryStatus.PENDING
