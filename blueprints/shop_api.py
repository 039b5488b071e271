"""The ledger API for the merchant's shop: products, keys and orders under `/api/v1/`.
Documented in docs/api.md. The rules live in `shop.ledger`; this turns HTTP into calls and
`LedgerError`s into JSON errors, and makes creation and transition calls idempotent."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from functools import wraps

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from werkzeug.exceptions import HTTPException

from blueprints.api import error, http_error, json_object, token_required
from extensions import csrf, db
from models import IdempotencyKey, Order, OrderStatus, Product
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
    call that failed can be retried as it is. Without the header, the call is simply committed."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        # End the read that authenticated the token: on SQLite a write must not follow a read
        # in one transaction while another writer works (it would fail rather than wait).
        db.session.commit()
        request.max_content_length = current_app.config["API_MAX_BODY_BYTES"]
        key = request.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= 255:
            return error(400, "invalid_header", "Idempotency-Key must be 1 to 255 characters", "Idempotency-Key")
        fingerprint = hashlib.sha256(f"{request.method} {request.path}\n".encode() + request.get_data()).hexdigest()
        if key is not None:
            replay = _replay(key, fingerprint)
            if replay is not None:
                return replay
        try:
            body, status = view(*args, **kwargs)
        except ValueError as exc:
            db.session.rollback()
            return error(400, "invalid_json", str(exc))
        except ledger.LedgerError as exc:
            db.session.rollback()
            return _error(exc)
        if key is not None:
            db.session.add(IdempotencyKey(token_id=g.api_token_id, key=key, fingerprint=fingerprint,
                                          status_code=status, body=body))
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            # The same key, committed by a concurrent retry a moment ago; or a unique value (an
            # order number, a product path) taken by a concurrent call.
            replay = _replay(key, fingerprint) if key is not None else None
            return replay or error(409, "conflict", "a concurrent request changed the same thing; try again")
        return jsonify(body), status
    return wrapper


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
def list_products():
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


def _when(name: str):
    value = request.args.get(name)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ledger.Invalid("invalid_parameter", f"{name} must be a date or time such as 2026-11-27 or "
                                                  f"2026-11-27T10:00:00Z", name) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


@bp.route("/orders", methods=["GET"])
@token_required
@_read
def list_orders():
    """Newest first, `limit` at a time (default 50, at most 200); `before` is the `next` cursor."""
    query = select(Order).order_by(Order.id.desc())
    status = request.args.get("status")
    if status:
        if status not in OrderStatus.ALL:
            raise ledger.Invalid("invalid_parameter", f"status must be one of {', '.join(OrderStatus.ALL)}", "status")
        query = query.where(Order.status == status)
    if request.args.get("product"):
        query = query.where(Order.product_id == ledger.get_product(request.args["product"]).id)
    since, until = _when("since"), _when("until")
    if since:
        query = query.where(Order.created_at >= since)
    if until:
        query = query.where(Order.created_at < until)
    try:
        limit = int(request.args.get("limit", 50))
        before = int(request.args["before"]) if request.args.get("before") else None
    except ValueError:
        raise ledger.Invalid("invalid_parameter", "limit and before must be whole numbers", "limit") from None
    if not 1 <= limit <= MAX_LIST:
        raise ledger.Invalid("invalid_parameter", f"limit must be between 1 and {MAX_LIST}", "limit")
    if before is not None:
        query = query.where(Order.id < before)
    orders = db.session.scalars(query.limit(limit + 1)).all()
    page = orders[:limit]
    return jsonify({"orders": [ledger.order_dict(o) for o in page],
                    "next": str(page[-1].id) if len(orders) > limit else None})
