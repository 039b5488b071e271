from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, ForeignKey, Index, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from models.base import utcnow


class OrderStatus:
    CREATED = "created"
    PAID = "paid"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    OUT_OF_STOCK = "out_of_stock"
    COMPLETED = "completed"
    ALL = (CREATED, PAID, CANCELLED, REFUNDED, OUT_OF_STOCK, COMPLETED)
    # Orders whose money the shop keeps: what the daily report counts.
    KEPT = (PAID, OUT_OF_STOCK, COMPLETED)


class Product(db.Model):
    """A product of the merchant's shop: its inventory (unlimited, or a quantity with a low-stock
    alert) and its optional license-key warehouse (a count of keys, with a low-key alert).

    `stock_alarm_armed` / `key_alarm_armed` make each alarm fire once per crossing: a sale that
    takes the level to or below the threshold disarms it (and fires); a level above it re-arms it.
    """

    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3))
    # None: unlimited inventory.
    inventory: Mapped[int | None]
    low_stock_threshold: Mapped[int] = mapped_column(default=0)
    stock_alert: Mapped[bool] = mapped_column(default=True)
    stock_alarm_armed: Mapped[bool] = mapped_column(default=True)
    has_keys: Mapped[bool] = mapped_column(default=False)
    keys_available: Mapped[int] = mapped_column(default=0)
    low_key_threshold: Mapped[int] = mapped_column(default=0)
    key_alarm_armed: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def brief(self) -> dict:
        """How events name the product."""
        return {"path": self.path, "name": self.name}


class Order(db.Model):
    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_status_created", "status", "created_at"),
                      Index("ix_orders_paid_at", "paid_at"),
                      Index("ix_orders_product_status", "product_id", "status", "paid_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    order_no: Mapped[str] = mapped_column(String(64), unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int]
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3))
    buyer_email: Mapped[str] = mapped_column(String(254), default="")
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.CREATED)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    paid_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    refunded_at: Mapped[datetime | None]
    out_of_stock_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]

    product: Mapped[Product] = relationship()


class IdempotencyKey(db.Model):
    """The first answer to a call made with an `Idempotency-Key`, replayed to its retries."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("token_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[int]
    key: Mapped[str] = mapped_column(String(255))
    # Method, path and a hash of the body: the same key with another request is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    body: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ReportRun(db.Model):
    """One row per daily report sent: the unique date is what makes it exactly once."""

    __tablename__ = "report_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    report_date: Mapped[str] = mapped_column(String(10), unique=True)  # YYYY-MM-DD, merchant's time zone
    event_id: Mapped[str] = mapped_column(String(40))
    late: Mapped[bool] = mapped_column(default=False)
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)


class Setting(db.Model):
    """Settings the merchant changes in the admin (the daily report's time), one row each."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
