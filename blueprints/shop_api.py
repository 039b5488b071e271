"""The ledger API for the merchant's shop: products, keys and orders under `/api/v1/`.
Documented in docs/api.md. The rules live in `shop.ledger`; this turns HTTP into calls and
`LedgerError`s into JSON errors, and makes creation and transition calls idempotent."""
from __future__ import annotations

import hashlib
from functools import wraps

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from werkzeug.exceptions import HTTPException

from blueprints.api import error, http_error, invalid, json_object, token_required
from extensions import csrf, db
from models import IdempotencyKey, Order, OrderStatus, Product
from notify import dispatch, schemas
from shop import ledger

bp = Blueprint("shop_api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)
bp.register_error_handler(HTTPException, http_error)

MAX_LIST = 200


def _error(exc: ledger.LedgerError):
    return error(exc.status, exc.code, exc.message, exc.field, **exc.extra)


def _body_or_empty() -> dict:
    """Transition calls need no body; when one is sent it must be a JSON object."""
    return json_object() if request.get_data(cache=True) else {}


def idempotent(view):
    """Run the call in one transaction with its `Idempotency-Key` (if any): a retry with the same
    key and the same request gets the first answer again (`Idempotent-Replayed: true`) and changes
    nothing; the same key with another request is refused. Only successful answers are kept, so a
    call that failed can be retried as it is. Without the header, the call is simply committed.

    Calls with the same key are run one after the other (`_hold_key`), so a retry sent while the
    first call is still running waits for its answer and replays it; one that waits longer than
    `KEY_WAIT_SECONDS` answers `409 in_progress`, which the client may retry as it is."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        # End the read that authenticated the token: on SQLite a write must not follow a read
        # in one transaction while another writer works (it would fail rather than wait).
        db.session.commit()
        request.max_content_length = current_app.config["API_MAX_BODY_BYTES"]
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (1 <= len(key) <= 255 and key.isprintable() and key.isascii()):
            return error(400, "invalid_header", "Idempotency-Key must be 1 to 255 printable ASCII characters",
                         "Idempotency-Key")
        fingerprint = hashlib.sha256(f"{request.method} {request.path}\n".encode() + request.get_data()).hexdigest()
        try:
            _hold_key(key)
            if key is not None:
                replay = _replay(key, fingerprint)
                if replay is not None:
                    db.session.rollback()
                    return replay
            body, status = view(*args, **kwargs)
        except schemas.Invalid as exc:
            db.session.rollback()
            return invalid(exc)
        except dispatch.InvalidEvent as exc:  # the ledger checks first; this is the schema's last word
            db.session.rollback()
            return error(400, "invalid_field", exc.message, exc.field)
        except ledger.LedgerError as exc:
            db.session.rollback()
            return _error(exc)
        except IntegrityError:
            db.session.rollback()  # a unique value (an order number, a product path) taken concurrently
            return error(409, "conflict", "a concurrent request changed the same thing; try again")
        except OperationalError:
            db.session.rollback()
            if key is not None:
                return _in_progress()
            raise  # not a wait we started: a real database error
        if key is not None:
            db.session.add(IdempotencyKey(token_id=g.api_token_id, key=key, fingerprint=fingerprint,
                                          status_code=status, body=body))
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            # The same key, committed by a concurrent call that `_hold_key` did not serialise (it
            # cannot happen with the locks below; kept so that it answers rather than fails).
            replay = _replay(key, fingerprint) if key is not None else None
            return replay or error(409, "conflict", "a concurrent request changed the same thing; try again")
        return jsonify(body), status
    return wrapper


KEY_WAIT_SECONDS = 10


def _hold_key(key: str | None) -> None:
    """Take, for the rest of the transaction, the lock that serialises calls with `key`.

    PostgreSQL: a transaction-level advisory lock on (token, key), waited for at most
    `KEY_WAIT_SECONDS` (then `OperationalError`). SQLite: the database's write lock, taken now
    rather than at the first write (SQLite has one writer at a time anyway, and its busy timeout
    bounds the wait); a call's reads then see every call committed before it, so a read followed
    by a write cannot fail under a concurrent writer, with or without a key."""
    connection = db.session.connection()
    if connection.dialect.name == "sqlite":
        connection.execute(_TAKE_WRITE_LOCK)
    elif key is not None and connection.dialect.name == "postgresql":
        digest = hashlib.sha256(f"{g.api_token_id}:{key}".encode()).digest()
        connection.execute(_SET_LOCK_TIMEOUT, {"timeout": f"{KEY_WAIT_SECONDS}s"})
        connection.execute(_ADVISORY_LOCK, {"lock": int.from_bytes(digest[:8], "big", signed=True)})


# A write that changes nothing: SQLite takes its write lock when a statement writes, not per row.
_TAKE_WRITE_LOCK = text("UPDATE idempotency_keys SET key = key WHERE 0 = 1")
_SET_LOCK_TIMEOUT = text("SELECT set_config('lock_timeout', :timeout, true)")
_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:lock)")


def _in_progress():
    response = error(409, "in_progress", "another request with this Idempotency-Key is still being processed; "
                                         "retry it as it is in a moment", "Idempotency-Key")
    response.headers["Retry-After"] = "1"
    return response


def _replay(key: str, fingerprint: str):
    stored = db.session.scalar(select(IdempotencyKey).where(IdempotencyKey.token_id == g.api_token_id,
                                                            IdempotencyKey.key == key))
    if stored is None:
        return None
    if stored.fingerprint != fingerprint:
        return error(422, "idempotency_key_reused", "this Idempotency-Key was used with a different request",
                     "Idempotency-Key")
    response = jsonify(stored.body)
    response.status_code = stored.status_code
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _read(view):
    """Reading calls: ledger errors as JSON, nothing to commit."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except ledger.LedgerError as exc:
            return _error(exc)
    return wrapper


# -- products ---------------------------------------------------------------------------------
@bp.route("/products", methods=["POST"])
@token_required
@idempotent
def create_product():
    return ledger.product_dict(ledger.create_product(json_object())), 201


@bp.route("/products", methods=["GET"])
@token_required
@_read
def list_products():
    _parameters()
    products = db.session.scalars(select(Product).order_by(Product.path).limit(1000)).all()
    return jsonify({"products": [ledger.product_dict(p) for p in products]})


@bp.route("/products/<path>", methods=["GET"])
@token_required
@_read
def get_product(path: str):
    return jsonify(ledger.product_dict(ledger.get_product(path)))


@bp.route("/products/<path>", methods=["PATCH"])
@token_required
@idempotent
def update_product(path: str):
    return ledger.product_dict(ledger.update_product(path, json_object())), 200


@bp.route("/products/<path>/inventory", methods=["PUT"])
@token_required
@idempotent
def set_inventory(path: str):
    body = json_object()
    if "inventory" not in body:
        raise ledger.Invalid("missing_field", "inventory is required: a whole number, or null for unlimited",
                             "inventory")
    return ledger.product_dict(ledger.update_product(path, {"inventory": body["inventory"]})), 200


@bp.route("/products/<path>/keys", methods=["POST"])
@token_required
@idempotent
def add_keys(path: str):
    body = json_object()
    if "count" not in body:
        raise ledger.Invalid("missing_field", "count is required: how many keys to add", "count")
    return ledger.product_dict(ledger.add_keys(path, body["count"])), 200


# -- orders -----------------------------------------------------------------------------------
@bp.route("/orders", methods=["POST"])
@token_required
@idempotent
def create_order():
    return ledger.order_dict(ledger.create_order(json_object())), 201


@bp.route("/orders/<order_no>", methods=["GET"])
@token_required
@_read
def get_order(order_no: str):
    return jsonify(ledger.order_dict(ledger.get_order(order_no)))


@bp.route("/orders/<order_no>/<action>", methods=["POST"])
@token_required
@idempotent
def transition(order_no: str, action: str):
    change = ledger.TRANSITIONS.get(action)
    if change is None:
        raise ledger.NotFound("unknown_action", f"no action {action!r}; use one of: {', '.join(ledger.TRANSITIONS)}")
    _body_or_empty()
    return ledger.order_dict(change(order_no)), 200


def _parameters(*known: str) -> dict[str, str]:
    """The query parameters of a list call, each checked for what every parameter must be (known,
    given once, a short text without NUL); a 400 naming the first that is not."""
    for name in request.args:
        if name not in known:
            raise ledger.Invalid("unknown_parameter", f"unknown parameter {schemas.printable(name)!r}; this call "
                                                      f"takes {', '.join(known) or 'none'}", schemas.printable(name))
        values = request.args.getlist(name)
        if len(values) > 1:
            raise ledger.Invalid("invalid_parameter", f"{name} is given {len(values)} times; give it once", name)
        if len(values[0]) > 64 or "\x00" in values[0]:
            raise ledger.Invalid("invalid_parameter", f"{name} must be a text of at most 64 characters", name)
    return request.args.to_dict()


def _when(args: dict, name: str):
    value = args.get(name)
    if not value:
        return None
    moment = schemas.parse_time(value)
    if moment is None:
        raise ledger.Invalid("invalid_parameter", f"{name} must be a date or time such as 2026-11-27 or "
                                                  f"2026-11-27T10:00:00Z, in the years {schemas.FIRST_YEAR} to "
                                                  f"{schemas.LAST_YEAR}", name)
    return moment


def _whole(args: dict, name: str, default: int | None, minimum: int, maximum: int) -> int | None:
    value = args.get(name)
    if not value:
        return default
    if not (value.isascii() and value.isdigit() and minimum <= int(value) <= maximum):
        raise ledger.Invalid("invalid_parameter", f"{name} must be a whole number from {minimum} to {maximum}", name)
    return int(value)


# `before` is an order's id: the database's 64-bit integer.
MAX_ID = 2**63 - 1


@bp.route("/orders", methods=["GET"])
@token_required
@_read
def list_orders():
    """Newest first, `limit` at a time (default 50, at most 200); `before` is the `next` cursor."""
    args = _parameters("status", "product", "since", "until", "limit", "before")
    query = select(Order).order_by(Order.id.desc())
    status = args.get("status")
    if status:
        if status not in OrderStatus.ALL:
            raise ledger.Invalid("invalid_parameter", f"status must be one of {', '.join(OrderStatus.ALL)}", "status")
        query = query.where(Order.status == status)
    if args.get("product"):
        query = query.where(Order.product_id == ledger.get_product(args["product"]).id)
    since, until = _when(args, "since"), _when(args, "until")
    if since:
        query = query.where(Order.created_at >= since)
    if until:
        query = query.where(Order.created_at < until)
    limit = _whole(args, "limit", 50, 1, MAX_LIST)
    before = _whole(args, "before", None, 1, MAX_ID)
    if before is not None:
        query = query.where(Order.id < before)
    orders = db.session.scalars(query.limit(limit + 1)).all()
    page = orders[:limit]
    return jsonify({"orders": [ledger.order_dict(o) for o in page],
                    "next": str(page[-1].id) if len(orders) > limit else None})
