"""The JSON API for the merchant's shop: `POST /api/v1/events`, the events with their deliveries
(`GET /api/v1/events`), `POST /api/v1/deliveries/<id>/redeliver`, and the OpenAPI document
(`GET /api/v1/openapi.json`). Documented in docs/api.md."""
from __future__ import annotations

from functools import wraps

from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from extensions import csrf, db
from models import ApiToken, Delivery
from notify import dispatch, openapi, reconciliation, schemas

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)


def error(status: int, code: str, message: str, field: str | None = None, **extra):
    """A JSON error: a machine-readable code, a sentence, the field at fault, and any `extra` facts
    (e.g. an order's current status)."""
    body = {"error": {"code": code, "message": message}}
    if field:
        body["error"]["field"] = field
    body["error"].update(extra)
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="merchant-notify"'
    return response


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    """The JSON error for any HTTP error under /api/ (app.error_page sends unknown API paths and
    methods here too, and the shop API's errors)."""
    if isinstance(exc, RequestEntityTooLarge):
        limit = current_app.config["API_MAX_BODY_BYTES"]
        return error(413, "body_too_large", f"the request body is larger than {limit} bytes")
    return error(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description or exc.name)


def token_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        scheme, _, plain = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not plain.strip():
            return error(401, "unauthorized", "send 'Authorization: Bearer <token>'; create a token under "
                                              "Settings › API tokens or with 'flask --app app tokens create NAME'")
        token_id = ApiToken.authenticate(plain.strip())
        if token_id is None:
            return error(401, "unauthorized", "the token is unknown or revoked")
        g.api_token_id = token_id
        return view(*args, **kwargs)
    return wrapper


def json_body(check: bool = True) -> object:
    """The parsed body, whatever the Content-Type says; `schemas.Invalid` (a `ValueError`) when it
    is not JSON, nests too deep or, with `check`, holds a value that is not I-JSON (NaN, NUL, a
    lone surrogate, a number out of range: `notify.schemas.parse_body`)."""
    request.max_content_length = current_app.config["API_MAX_BODY_BYTES"]
    return schemas.parse_body(request.get_data(cache=False), check=check)


def json_object(check: bool = True) -> dict:
    """The body as a JSON object; `schemas.Invalid` saying what is wrong otherwise."""
    body = json_body(check)
    if not isinstance(body, dict):
        raise schemas.Invalid(None, "the body must be a JSON object", "invalid_json")
    return body


def invalid(exc: schemas.Invalid):
    """The 400 answer for refused input."""
    return error(400, exc.code, exc.message, exc.field)


@bp.route("/events", methods=["POST"])
@token_required
def create_event():
    try:
        # The values of `data` are checked by record_event, with its schema; the rest of the body
        # is not kept.
        body = json_object(check=False)
    except schemas.Invalid as exc:
        return invalid(exc)
    if "event" not in body:
        return error(400, "missing_field", "event is required: the hook name, e.g. order_pay_hook", "event")
    if "data" not in body:
        return error(400, "missing_field", "data is required: a JSON object", "data")
    # A test order from the shop ("test": true) travels as `"test": true` in the envelope; a
    # channel may leave such events out (notify.rules).
    is_test = body.get("test", False)
    if not isinstance(is_test, bool):
        return error(400, "invalid_field", "test must be true or false", "test")
    try:
        event = dispatch.record_event(body["event"], body["data"], source="api", is_test=is_test)
    except dispatch.InvalidEvent as exc:
        return error(400, "invalid_field", exc.message, exc.field)
    db.session.commit()
    return jsonify({"id": event.id, "event": event.hook, "deliveries": len(event.delivery_ids)}), 202


@bp.route("/events", methods=["GET"])
@token_required
def list_events():
    """Reconciliation: events with the state of each delivery (notify.reconciliation)."""
    try:
        query = reconciliation.parse_query(request.args)
    except schemas.Invalid as exc:
        return invalid(exc)
    return jsonify(reconciliation.list_events(query))


@bp.route("/deliveries/<delivery_id>/redeliver", methods=["POST"])
@token_required
def redeliver(delivery_id: str):
    """One more attempt of a finished delivery, with its id kept: the admin's Send again."""
    # An id longer than the column, or with a NUL (which PostgreSQL refuses in any query), is no row.
    delivery = db.session.get(Delivery, delivery_id) if len(delivery_id) <= 40 and "\x00" not in delivery_id else None
    if delivery is None:
        return error(404, "unknown_delivery", f"no delivery {schemas.printable(delivery_id)!r}", "delivery_id")
    if not delivery.is_final:
        return error(409, "not_final", f"the delivery is {delivery.status}: only a delivered, failed, dead or "
                                       f"cancelled one can be sent again", "delivery_id", current_status=delivery.status)
    try:
        dispatch.redeliver(delivery_id)
    except dispatch.CannotRedeliver as exc:
        return error(409, "cannot_redeliver", f"the delivery cannot be sent again: {exc}", "delivery_id")
    db.session.expire_all()
    return jsonify(reconciliation.delivery_dict(db.session.get(Delivery, delivery_id))), 202


@bp.route("/openapi.json", methods=["GET"])
def openapi_document():
    """The OpenAPI 3.1 document of the events and ledger APIs (notify.openapi); no token needed."""
    return jsonify(openapi.document())
