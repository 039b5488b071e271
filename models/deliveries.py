"""Events, their deliveries (one per event and channel) and every attempt at a delivery."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from models.base import new_id, utcnow
from notify import reasons


class DeliveryStatus:
    PENDING = "pending"        # stored, its first attempt not yet made
    SENDING = "sending"        # a worker holds the lease and is sending it now
    RETRYING = "retrying"      # a transient failure; the next attempt is due at next_attempt_at
    DELIVERED = "delivered"    # the receiver accepted it
    FAILED = "failed"          # a permanent failure: retrying cannot help
    DEAD = "dead"              # every attempt of the retry schedule failed
    CANCELLED = "cancelled"    # its channel was deleted or disabled before it was sent

    ACTIVE = (PENDING, SENDING, RETRYING)
    FINAL = (DELIVERED, FAILED, DEAD, CANCELLED)
    ALL = ACTIVE + FINAL


ORDER_NO_LENGTH = 100  # longer order numbers are stored, and searched, by their first 100 characters


class Event(db.Model):
    __tablename__ = "events"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("evt"))
    hook: Mapped[str] = mapped_column(String(40), index=True)
    data: Mapped[dict] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(20), default="api")  # api, cli, test, ledger
    is_test: Mapped[bool] = mapped_column(default=False)
    # A Test sent with "Also @mention as configured": robots mention as for real events. Without
    # it a Test mentions nobody (notify.channels.robot).
    test_mentions: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # `data.order.order_no`, copied when the event is recorded so the deliveries page finds an
    # order's deliveries through an index rather than by reading every event's JSON.
    order_no: Mapped[str | None] = mapped_column(String(ORDER_NO_LENGTH), index=True)
    # Which channels' filters left this event out: [{"channel_id", "reason": {"code", "params"}}, …].
    filtered: Mapped[list | None] = mapped_column(JSON)

    deliveries: Mapped[list["Delivery"]] = relationship(back_populates="event")

    def envelope(self) -> dict:
        """The JSON body every WebHook receives for this event (documented in docs/webhooks.md)."""
        return {
            "id": self.id,
            "event": self.hook,
            "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.created_at.microsecond // 1000:03d}Z",
            "test": self.is_test,
            "data": self.data,
        }


class Delivery(db.Model):
    """One event on its way to one channel. Its id is the `X-Apsdai-Delivery` header, unchanged across retries."""

    __tablename__ = "deliveries"
    __table_args__ = (
        # The sweeper's question: which active deliveries are overdue?
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
        # The deliveries page: newest first, optionally by channel or by result.
        Index("ix_deliveries_channel_created", "channel_id", "created_at"),
        Index("ix_deliveries_status_created", "status", "created_at"),
        Index("ix_deliveries_hook_created", "hook", "created_at"),
        # Newest first, and the dashboard's counts per day and result: with the status in the index
        # those counts read the index alone, never the rows.
        Index("ix_deliveries_created_status", "created_at", "status"),
        # A digest's gather (notify.digests): a channel's parked deliveries that are due. Partial:
        # only the few rows parked for a digest are in it, not the history.
        Index("ix_deliveries_parked", "channel_id", "status", "fold", "next_attempt_at",
              postgresql_where=text("fold IS NOT NULL"), sqlite_where=text("fold IS NOT NULL")),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("dlv"))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    # SET NULL: deleting a channel keeps its history; `channel_kind`/`target` say where it went.
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="SET NULL"))
    # The event's hook, copied so the deliveries page can filter by it through an index.
    hook: Mapped[str | None] = mapped_column(String(40))
    channel_kind: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(String(2048), default="")
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempt_count: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=1)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    # Set by each claim, cleared when its result is written: a result is written only by the
    # claim that still holds the delivery, so a worker that outlived its lease cannot overwrite a
    # newer attempt (notify.jobs).
    claim_token: Mapped[str | None] = mapped_column(String(32))
    last_status_code: Mapped[int | None]
    # Why the last attempt failed (or why it was not sent): `last_error_code` holds the reason as
    # {"code", "params"} (notify.reasons), put into words when shown; `last_error` an English copy
    # for logs and grep (and the only text of rows written before codes).
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_code: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    delivered_at: Mapped[datetime | None]
    # Why it waits to be folded into a digest: "rate" (its robot's limit is under pressure) or
    # "quiet" (the channel's quiet hours); None: it is sent on its own.
    fold: Mapped[str | None] = mapped_column(String(8))

    event: Mapped[Event] = relationship(back_populates="deliveries")
    channel = relationship("Channel")
    attempts: Mapped[list["Attempt"]] = relationship(back_populates="delivery", order_by="Attempt.number")

    @property
    def is_final(self) -> bool:
        return self.status in DeliveryStatus.FINAL

    @property
    def shown_error(self) -> str | None:
        """The last error in words, in the current language (a row without a code: as stored)."""
        return reasons.show(self.last_error_code, self.last_error)

    @property
    def waits_for_digest_at(self) -> datetime | None:
        """When the digest this active delivery waits for is due (notify.digests), else None. A
        folded one comes back by itself a backstop after the digest's slot; this is the slot."""
        if self.status not in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING) or self.next_attempt_at is None:
            return None
        if self.fold == "rate":
            from notify.ratelimit import BACKSTOP

            return self.next_attempt_at - timedelta(seconds=BACKSTOP)
        if self.fold in ("lead", "quiet"):
            return self.next_attempt_at
        return None

    @property
    def waits_for_rate_limit(self) -> bool:
        """Pending and due later: it is waiting for its slot in a robot's rate limit."""
        return (self.status == DeliveryStatus.PENDING and self.next_attempt_at is not None
                and self.next_attempt_at > utcnow())


class Attempt(db.Model):
    """One HTTP request (or SMTP session, or robot call) for a delivery: what was sent and what came back.

    Secrets are masked in `request_headers` before the row is written.
    """

    __tablename__ = "attempts"
    __table_args__ = (
        Index("ix_attempts_channel_id", "channel_id", "id"),
        # One row per attempt number: a late worker's result can never repeat a number.
        Index("uq_attempts_delivery_number", "delivery_id", "number", unique=True),
        Index("ix_attempts_digest_id", "digest_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="SET NULL"))
    number: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    duration_ms: Mapped[int] = mapped_column(default=0)
    request_method: Mapped[str] = mapped_column(String(10), default="POST")
    request_url: Mapped[str] = mapped_column(String(2048), default="")
    request_headers: Mapped[dict] = mapped_column(JSON, default=dict)
    request_body: Mapped[str] = mapped_column(Text, default="")
    response_status: Mapped[int | None]
    response_headers: Mapped[dict | None] = mapped_column(JSON)
    response_body: Mapped[str | None] = mapped_column(Text)
    # success, transient or permanent
    outcome: Mapped[str] = mapped_column(String(12))
    # As `Delivery.last_error` and `last_error_code`: an English copy, and the reason as a code.
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[dict | None] = mapped_column(JSON)
    # The digest message that carried this attempt, shared by every delivery folded into it.
    digest_id: Mapped[str | None] = mapped_column(String(40))

    delivery: Mapped[Delivery] = relationship(back_populates="attempts")

    @property
    def ok(self) -> bool:
        return self.outcome == "success"

    @property
    def shown_error(self) -> str | None:
        """The error in words, in the current language (a row without a code: as stored)."""
        return reasons.show(self.error_code, self.error)
