"""The merchant's ledger: products, their inventory and license keys, and orders moving through
their lifecycle. Every state change emits its hook through `notify.dispatch.record_event`, in the
same transaction: the caller commits both or neither.

The order lifecycle (docs/api.md):

    created → paid → completed          created → cancelled
    paid → refunded                     paid → out_of_stock → completed (keys added) | refunded

Concurrency: every change is a conditional UPDATE (`… WHERE status = 'created'`, `… WHERE
inventory >= 2`, `… WHERE stock_alarm_armed`), so two requests racing for the same order, the
last item or the same alarm cannot both win, on PostgreSQL (row locks, re-checked conditions) as
on SQLite (one writer at a time). Nothing reads a value and writes it back.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from babel.numbers import list_currencies
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update

from extensions import db
from models import Order, OrderStatus, Product
from models.base import utcnow
from notify import dispatch, schemas

# The same bounds as the hooks' schemas (notify.schemas), so whatever the ledger accepts its events carry.
MAX_AMOUNT = schemas.MAX_AMOUNT  # the NUMERIC(12, 2) of amounts and prices
MAX_QUANTITY = schemas.MAX_QUANTITY
MAX_LEVEL = schemas.MAX_LEVEL  # inventory, keys, thresholds
CURRENCIES = frozenset(list_currencies())
PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


class LedgerError(Exception):
    """A refused request: `status` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, code: str, message: str, field: str | None = None, **extra):
        super().__init__(message)
        self.code, self.message, self.field, self.extra = code, message, field, extra


class Invalid(LedgerError):
    status = 400


class NotFound(LedgerError):
    status = 404


class Conflict(LedgerError):
    status = 409


# -- input ------------------------------------------------------------------------------------
def money(value, field: str) -> Decimal:
    """A non-negative amount with at most two decimals, from a JSON string or number."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Invalid("invalid_field", f"{field} must be an amount such as \"128.00\"", field)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise Invalid("invalid_field", f"{field} must be an amount such as \"128.00\", not {value!r}", field) from None
    if not amount.is_finite() or amount < 0:
        raise Invalid("invalid_field", f"{field} must be zero or more", field)
    if amount.as_tuple().exponent < -2:
        raise Invalid("invalid_field", f"{field} has more than two decimals: {value}", field)
    if amount > MAX_AMOUNT:
        raise Invalid("invalid_field", f"{field} is larger than {MAX_AMOUNT}", field)
    return amount.quantize(Decimal("0.01"))


def count(value, field: str, minimum: int = 0, maximum: int = MAX_LEVEL) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("invalid_field", f"{field} must be a whole number", field)
    if not minimum <= value <= maximum:
        raise Invalid("invalid_field", f"{field} must be between {minimum} and {maximum}", field)
    return value


def currency(value, field: str = "currency") -> str:
    if not isinstance(value, str) or value.upper() not in CURRENCIES:
        raise Invalid("invalid_field", f"{field} must be an ISO 4217 currency code such as CNY or USD, not {value!r}",
                      field)
    return value.upper()


def text(value, field: str, max_length: int, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise Invalid("invalid_field" if value is not None else "missing_field", f"{field} is required: a text",
                      field)
    value = " ".join(value.split())
    if len(value) > max_length:
        raise Invalid("invalid_field", f"{field} is longer than {max_length} characters", field)
    return value


def _bool(value, field: str) -> bool:
    if not isinstance(value, bool):
        raise Invalid("invalid_field", f"{field} must be true or false", field)
    return value


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# -- products ---------------------------------------------------------------------------------
def product_dict(product: Product) -> dict:
    return {
        "path": product.path, "name": product.name, "price": f"{product.price:.2f}", "currency": product.currency,
        "inventory": product.inventory, "low_stock_threshold": product.low_stock_threshold,
        "stock_alert": product.stock_alert,
        "keys": {"enabled": product.has_keys, "available": product.keys_available,
                 "low_key_threshold": product.low_key_threshold} if product.has_keys else {"enabled": False},
        "created_at": _iso(product.created_at),
    }


def _storable(value) -> bool:
    """Whether a path or order number could be stored at all: a text of at most 64 characters
    without NUL (which PostgreSQL refuses in any query). Others are not looked up: no such row."""
    return isinstance(value, str) and len(value) <= 64 and "\x00" not in value


def _find(column, value):
    """The row whose `column` is `value`, freshly read (not a stale copy from the session), or None."""
    if not _storable(value):
        return None
    return db.session.scalar(select(column.class_).where(column == value).execution_options(populate_existing=True))


def get_product(path) -> Product:
    product = _find(Product.path, path)
    if product is None:
        raise NotFound("unknown_product", f"no product with path {path!r}", "product")
    return product


def _apply_product_fields(product: Product, body: dict) -> None:
    """The settable fields of a product, from a create or update body."""
    if "name" in body:
        product.name = text(body["name"], "name", 200)
    if "price" in body:
        product.price = money(body["price"], "price")
    if "currency" in body:
        product.currency = currency(body["currency"])
    if "inventory" in body:
        product.inventory = None if body["inventory"] is None else count(body["inventory"], "inventory")
    if "low_stock_threshold" in body:
        product.low_stock_threshold = count(body["low_stock_threshold"], "low_stock_threshold")
    if "stock_alert" in body:
        product.stock_alert = _bool(body["stock_alert"], "stock_alert")
    keys = body.get("keys")
    if keys is not None:
        if not isinstance(keys, dict):
            raise Invalid("invalid_field", "keys must be an object: {\"enabled\": true, \"available\": 10, "
                                           "\"low_key_threshold\": 5}", "keys")
        if "enabled" in keys:
            product.has_keys = _bool(keys["enabled"], "keys.enabled")
        if "available" in keys:
            product.keys_available = count(keys["available"], "keys.available")
        if "low_key_threshold" in keys:
            product.low_key_threshold = count(keys["low_key_threshold"], "keys.low_key_threshold")


def create_product(body: dict) -> Product:
    path = body.get("path")
    if not isinstance(path, str) or not path or len(path) > 64 or not set(path) <= PATH_CHARS:
        raise Invalid("invalid_field", "path is required: 1 to 64 letters and digits, fixed once saved", "path")
    for field in ("name", "price", "currency"):
        if field not in body:
            raise Invalid("missing_field", f"{field} is required", field)
    if db.session.scalar(select(Product.id).where(Product.path == path)) is not None:
        raise Conflict("product_exists", f"a product with path {path!r} exists already", "path")
    product = Product(path=path, inventory=None, low_stock_threshold=0, stock_alert=True, has_keys=False,
                      keys_available=0, low_key_threshold=0, stock_alarm_armed=True, key_alarm_armed=True)
    _apply_product_fields(product, body)
    # A new product starts with its alarms armed only above the thresholds: creating a product
    # with little stock is not a fall in stock.
    product.stock_alarm_armed = product.inventory is None or product.inventory > product.low_stock_threshold
    product.key_alarm_armed = product.keys_available > product.low_key_threshold
    db.session.add(product)
    db.session.flush()
    return product


def update_product(path: str, body: dict) -> Product:
    """Change a product's settings (not its path); levels set here re-arm or fire the alarms."""
    if "path" in body and body["path"] != path:
        raise Invalid("invalid_field", "a product's path cannot change", "path")
    product = get_product(path)
    _apply_product_fields(product, body)
    db.session.flush()
    _check_alarms(product.id)
    return _reload(product)


def add_keys(path: str, n) -> Product:
    """Add `n` license keys; out-of-stock orders of the product are completed with them, oldest first."""
    n = count(n, "count", 1, 10**6)
    product = get_product(path)
    if not product.has_keys:
        raise Conflict("no_key_warehouse", f"product {path!r} has no license-key warehouse; enable keys first",
                       "count")
    added = db.session.execute(update(Product).where(Product.id == product.id,
                                                     Product.keys_available <= MAX_LEVEL - n)
                               .values(keys_available=Product.keys_available + n, updated_at=utcnow())
                               .returning(Product.id).execution_options(synchronize_session=False)).first()
    if added is None:
        raise Invalid("invalid_field", f"a product holds at most {MAX_LEVEL} keys", "count")
    _check_alarms(product.id)  # above the threshold again: re-armed
    waiting = db.session.scalars(select(Order).where(Order.product_id == product.id,
                                                     Order.status == OrderStatus.OUT_OF_STOCK)
                                 .order_by(Order.out_of_stock_at, Order.id)).all()
    for order in waiting:
        if not _take_keys(product.id, order.quantity):
            break
        if _move(order.order_no, (OrderStatus.OUT_OF_STOCK,), OrderStatus.COMPLETED, "completed_at") is not None:
            _emit_order("order_finish_hook", order.order_no)
    _check_alarms(product.id)
    return _reload(product)


def _take_keys(product_id: int, n: int) -> bool:
    taken = db.session.execute(update(Product).where(Product.id == product_id, Product.keys_available >= n)
                               .values(keys_available=Product.keys_available - n, updated_at=utcnow())
                               .returning(Product.id).execution_options(synchronize_session=False)).first()
    return taken is not None


@dataclass(frozen=True)
class _Alarm:
    hook: str
    level: object  # the column watched
    threshold: object
    armed: object
    enabled: object  # the condition under which the alarm exists at all
    data_key: str  # the level's name in the event


_ALARMS = (
    _Alarm("stock_alarm_hook", Product.inventory, Product.low_stock_threshold, Product.stock_alarm_armed,
           Product.stock_alert.is_(True) & Product.inventory.is_not(None), "inventory"),
    _Alarm("key_stock_alarm_hook", Product.keys_available, Product.low_key_threshold, Product.key_alarm_armed,
           Product.has_keys.is_(True), "available_keys"),
)


def _check_alarms(product_id: int) -> None:
    """Fire each alarm whose level is at or below its threshold and that is armed (disarming it,
    atomically: one crossing, one alarm); re-arm each alarm whose level is above its threshold."""
    for alarm in _ALARMS:
        fired = db.session.execute(
            update(Product).where(Product.id == product_id, alarm.enabled, alarm.armed.is_(True),
                                  alarm.level <= alarm.threshold)
            .values({alarm.armed: False})
            .returning(Product.path, Product.name, alarm.level, alarm.threshold)
            .execution_options(synchronize_session=False)).first()
        if fired:
            path, name, level, threshold = fired
            dispatch.record_event(alarm.hook, {"product": {"path": path, "name": name}, alarm.data_key: level,
                                               "threshold": threshold}, source="ledger")
        db.session.execute(update(Product).where(Product.id == product_id, alarm.armed.is_(False),
                                                 alarm.level.is_(None) | (alarm.level > alarm.threshold))
                           .values({alarm.armed: True}).execution_options(synchronize_session=False))


def _reload(instance):
    db.session.refresh(instance)
    return instance


# -- orders -----------------------------------------------------------------------------------
def order_dict(order: Order) -> dict:
    """An order as the API returns it and as its events carry it."""
    data = {
        "order_no": order.order_no, "status": order.status, "product": order.product.brief(),
        "quantity": order.quantity, "amount": f"{order.amount:.2f}", "currency": order.currency,
        "buyer_email": order.buyer_email, "created_at": _iso(order.created_at),
    }
    for field in ("paid_at", "cancelled_at", "refunded_at", "out_of_stock_at", "completed_at"):
        if getattr(order, field) is not None:
            data[field] = _iso(getattr(order, field))
    return data


def get_order(order_no) -> Order:
    order = _find(Order.order_no, order_no)
    if order is None:
        raise NotFound("unknown_order", f"no order {order_no!r}", "order_no")
    return order


def new_order_no() -> str:
    return "MN" + utcnow().strftime("%Y%m%d%H%M%S") + f"{secrets.randbelow(10**6):06d}"


def create_order(body: dict) -> Order:
    if "product" not in body:
        raise Invalid("missing_field", "product is required: the product's path", "product")
    product = get_product(body["product"])
    quantity = count(body.get("quantity", 1), "quantity", 1, MAX_QUANTITY)
    order_no = body.get("order_no")
    if order_no is None:
        order_no = new_order_no()
    elif (not isinstance(order_no, str) or not order_no.strip() or len(order_no) > 64 or "/" in order_no
          or not order_no.isprintable()):
        # Printable and without "/": the order number is part of its URLs (`/orders/<order_no>/pay`).
        raise Invalid("invalid_field", "order_no must be a text of 1 to 64 printable characters, without \"/\"",
                      "order_no")
    if db.session.scalar(select(Order.id).where(Order.order_no == order_no)) is not None:
        raise Conflict("order_exists", f"order {order_no!r} exists already", "order_no")
    if "amount" in body:
        amount = money(body["amount"], "amount")
    else:
        amount = (product.price * quantity).quantize(Decimal("0.01"))
        if amount > MAX_AMOUNT:
            raise Invalid("invalid_field", f"quantity × price is more than {MAX_AMOUNT}; send the amount", "quantity")
    buyer = body.get("buyer_email")
    if buyer is not None and not isinstance(buyer, str):
        raise Invalid("invalid_field", "buyer_email must be a text: an email address, or empty", "buyer_email")
    buyer = buyer or ""
    if buyer:
        try:
            buyer = validate_email(buyer, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise Invalid("invalid_field", f"buyer_email is not a valid address: {exc}", "buyer_email") from None
    order = Order(order_no=order_no, product_id=product.id, quantity=quantity, amount=amount,
                  currency=currency(body.get("currency", product.currency)), buyer_email=buyer,
                  status=OrderStatus.CREATED, created_at=utcnow())
    db.session.add(order)
    db.session.flush()
    _emit_order("order_create_hook", order_no)
    return order


def _move(order_no: str, from_: tuple[str, ...], to: str, time_field: str) -> int | None:
    """Move the order to `to` if it is in one of `from_`; the order's id, or None when it was not."""
    now = utcnow()
    moved = db.session.execute(update(Order).where(Order.order_no == order_no, Order.status.in_(from_))
                               .values(status=to, **{time_field: now}).returning(Order.id)
                               .execution_options(synchronize_session=False)).first()
    return None if moved is None else moved.id


def _transition(order_no, from_: tuple[str, ...], to: str, time_field: str) -> Order:
    if not _storable(order_no) or _move(order_no, from_, to, time_field) is None:
        current = get_order(order_no)  # 404 when there is no such order
        raise Conflict("invalid_transition", f"order {order_no} is {current.status}: it cannot become {to} "
                                             f"(only from {' or '.join(from_)})", "status", current_status=current.status)
    return get_order(order_no)


def _emit_order(hook: str, order_no: str) -> None:
    dispatch.record_event(hook, {"order": order_dict(_find(Order.order_no, order_no))}, source="ledger")


def pay(order_no) -> Order:
    """created → paid. A fixed inventory gives up the quantity (refused when short: nothing
    changes); a key warehouse gives keys and completes the order, or leaves it out of stock."""
    order = _transition(order_no, (OrderStatus.CREATED,), OrderStatus.PAID, "paid_at")
    product_id, quantity = order.product_id, order.quantity
    if order.product.inventory is not None:
        taken = db.session.execute(update(Product).where(Product.id == product_id, Product.inventory >= quantity)
                                   .values(inventory=Product.inventory - quantity, updated_at=utcnow())
                                   .returning(Product.inventory).execution_options(synchronize_session=False)).first()
        if taken is None:
            left = db.session.scalar(select(Product.inventory).where(Product.id == product_id)
                                     .execution_options(populate_existing=True))
            raise Conflict("insufficient_inventory", f"only {left} left of {order.product.path}; "
                                                     f"the order wants {quantity}", "quantity", inventory=left)
    _emit_order("order_pay_hook", order.order_no)
    if order.product.has_keys:
        if _take_keys(product_id, quantity):
            _move(order.order_no, (OrderStatus.PAID,), OrderStatus.COMPLETED, "completed_at")
            _emit_order("order_finish_hook", order.order_no)
        else:
            _move(order.order_no, (OrderStatus.PAID,), OrderStatus.OUT_OF_STOCK, "out_of_stock_at")
            _emit_order("order_out_of_stock_hook", order.order_no)
    _check_alarms(product_id)
    return _reload(order)


def cancel(order_no) -> Order:
    order = _transition(order_no, (OrderStatus.CREATED,), OrderStatus.CANCELLED, "cancelled_at")
    _emit_order("order_cancel_hook", order.order_no)
    return order


def refund(order_no) -> Order:
    """paid or out of stock → refunded. Inventory and keys are not given back (docs/api.md)."""
    order = _transition(order_no, (OrderStatus.PAID, OrderStatus.OUT_OF_STOCK), OrderStatus.REFUNDED, "refunded_at")
    _emit_order("order_refund_hook", order.order_no)
    return order


def complete(order_no) -> Order:
    """paid → completed (delivered by the merchant), or out of stock → completed (delivered by
    other means; takes no key)."""
    order = _transition(order_no, (OrderStatus.PAID, OrderStatus.OUT_OF_STOCK), OrderStatus.COMPLETED,
                        "completed_at")
    _emit_order("order_finish_hook", order.order_no)
    return order


TRANSITIONS = {"pay": pay, "cancel": cancel, "refund": refund, "complete": complete}
