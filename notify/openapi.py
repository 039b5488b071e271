"""The OpenAPI 3.1 document of the API: the events API (blueprints/api.py) and the ledger API
(blueprints/shop_api.py), served at `GET /api/v1/openapi.json`.

Built from the same data the API validates with: each hook's `data` schema is `notify.schemas`'
own (OpenAPI 3.1 schemas are JSON Schema 2020-12, so they are embedded as they are), and each
WebHook request is described under `webhooks` with its envelope (`schemas.envelope_schema`) and
example (`schemas.example`). tests/test_openapi.py checks the document against the OpenAPI
specification and runs schemathesis against a live server: every answer must be one declared here.
"""
from __future__ import annotations

import copy
from functools import lru_cache

from models import DeliveryStatus, OrderStatus
from notify import channels, hooks, schemas
from notify.reconciliation import DEFAULT_LIMIT, MAX_LIMIT

MAX_LIST = 200  # the ledger's `limit` (blueprints/shop_api.py)
MAX_ID = 2**63 - 1


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    answer = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


_ERRORS = {
    400: "refused input: the body is not a JSON object, nests too deep, holds a value that is not I-JSON, or a "
         "field or parameter is missing or malformed (`field` names it)",
    401: "no token, or an unknown or revoked one",
    404: "no such thing (`code` says what)",
    409: "the current state refuses the call; nothing changed",
    413: "the body is larger than API_MAX_BODY_BYTES",
    422: "this Idempotency-Key was used with a different request",
}


def _errors(*codes: int) -> dict:
    answers = {}
    for code in codes:
        headers = None
        if code == 401:
            headers = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer realm"}}
        elif code == 409:
            headers = {"Retry-After": {"schema": {"type": "string"},
                                       "description": "with code in_progress: seconds to wait before retrying"}}
        answers[str(code)] = _json(_ref("Error"), _ERRORS[code], headers)
    return answers


_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "retries with the same key and request get the first answer again (Idempotent-Replayed: true)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7E]+$"},
}
_REPLAYED = {"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]},
                                     "description": "present when this is the stored answer of an earlier call"}}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


_PRODUCT_PATH = _path("path", {"type": "string", "pattern": "^[A-Za-z0-9]{1,64}$"}, "the product's path")
_ORDER_NO = _path("order_no", {"type": "string", "pattern": "^[^/]{1,64}$"}, "the order number")
_MONEY = {"type": ["string", "number"], "description": "a decimal such as \"128.00\", at most two decimals"}
_ANY_TIME = {"type": "string", "maxLength": 64, "description": "a date (2026-11-27) or an ISO 8601 time; UTC when no "
                                                               "offset is given; years 1970 to 2099"}


def _components() -> dict:
    order = copy.deepcopy(schemas.SCHEMAS["order_pay_hook"]["properties"]["order"])
    order["required"] = ["order_no", "status", "product", "quantity", "amount", "currency", "created_at"]
    product_in = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "1 to 64 letters and digits, fixed once saved"},
            "name": {"type": "string"}, "price": _MONEY, "currency": {"type": "string"},
            "inventory": {"type": ["integer", "null"], "description": "null: unlimited"},
            "low_stock_threshold": {"type": "integer"}, "stock_alert": {"type": "boolean"},
            "keys": {"type": "object", "properties": {"enabled": {"type": "boolean"}, "available": {"type": "integer"},
                                                      "low_key_threshold": {"type": "integer"}}},
        },
    }
    delivery = {
        "type": "object",
        "required": ["id", "event_id", "hook", "channel_kind", "target", "status", "attempts", "max_attempts",
                     "last_status_code", "updated_at"],
        "properties": {
            "id": {"type": "string", "description": "the X-Apsdai-Delivery header, the same on every attempt"},
            "event_id": {"type": "string"}, "hook": {"type": ["string", "null"]},
            "channel_kind": {"type": "string", "enum": list(channels.KINDS)},
            "target": {"type": "string", "description": "where it goes, secrets masked"},
            "status": {"type": "string", "enum": list(DeliveryStatus.ALL)},
            "attempts": {"type": "integer", "minimum": 0}, "max_attempts": {"type": "integer"},
            "last_status_code": {"type": ["integer", "null"]},
            "updated_at": {"type": "string"},
        },
    }
    listed_event = {
        "type": "object",
        "required": ["id", "event", "created_at", "test", "data", "source", "deliveries"],
        "properties": {
            "id": {"type": "string"}, "event": {"type": "string", "enum": list(hooks.HOOK_NAMES)},
            "created_at": {"type": "string"}, "test": {"type": "boolean"}, "data": {"type": "object"},
            "source": {"type": "string"}, "deliveries": {"type": "array", "items": _ref("DeliveryState")},
            "filtered": {"type": "array", "description": "the channels whose filters left the event out (no "
                                                        "delivery to them), and why", "items": {
                "type": "object", "required": ["channel_id", "reason", "message"],
                "properties": {"channel_id": {"type": ["integer", "null"]},
                               "reason": {"type": "object", "description": "a code and its parameters"},
                               "message": {"type": "string", "description": "the reason in English"}}}},
        },
    }
    found = {
        "Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "description": "more facts may follow the three named here (an order's current_status, …)",
                "properties": {"code": {"type": "string", "description": "machine-readable"},
                               "message": {"type": "string", "description": "a sentence for people"},
                               "field": {"type": "string", "description": "the part of the request at fault"}}}},
        },
        "EventIn": {
            "type": "object", "required": ["event", "data"],
            "properties": {"event": {"type": "string", "enum": list(hooks.HOOK_NAMES)},
                           "data": {"type": "object", "description": "matches the hook's schema "
                                                                     "(components.schemas.<hook>.data)"},
                           "test": {"type": "boolean", "default": False,
                                    "description": "a test event (a test order of the shop): sent with "
                                                   "\"test\": true, and left out by channels that leave "
                                                   "test events out"}},
        },
        "EventAccepted": {
            "type": "object", "required": ["id", "event", "deliveries"],
            "properties": {"id": {"type": "string"}, "event": {"type": "string"},
                           "deliveries": {"type": "integer", "minimum": 0}},
        },
        "EventPage": {
            "type": "object", "required": ["events", "next_cursor"],
            "properties": {"events": {"type": "array", "items": _ref("ListedEvent")},
                           "next_cursor": {"type": ["string", "null"],
                                           "description": "pass as cursor for the next page; null on the last"}},
        },
        "ListedEvent": listed_event,
        "DeliveryState": delivery,
        "ProductIn": product_in,
        "Product": {
            "type": "object", "required": ["path", "name", "price", "currency", "inventory", "keys", "created_at"],
            "properties": {**product_in["properties"], "price": {"type": "string"}, "created_at": {"type": "string"}},
        },
        "ProductList": {"type": "object", "required": ["products"],
                        "properties": {"products": {"type": "array", "items": _ref("Product")}}},
        "OrderIn": {
            "type": "object", "required": ["product"],
            "properties": {"product": {"type": "string", "description": "the product's path"},
                           "order_no": {"type": "string"}, "quantity": {"type": "integer"}, "amount": _MONEY,
                           "currency": {"type": "string"}, "buyer_email": {"type": "string"}},
        },
        "Order": order,
        "OrderList": {"type": "object", "required": ["orders", "next"],
                      "properties": {"orders": {"type": "array", "items": _ref("Order")},
                                     "next": {"type": ["string", "null"], "description": "pass as before"}}},
    }
    for hook in hooks.HOOKS:
        found[f"{hook.name}.data"] = schemas.for_hook(hook.name)
        found[f"{hook.name}.envelope"] = schemas.envelope_schema(hook.name, data_ref=_ref(f"{hook.name}.data"))
    return found


def _body(schema_name: str, required: bool = True) -> dict:
    return {"required": required, "content": {"application/json": {"schema": _ref(schema_name)}}}


def _secured(operation: dict) -> dict:
    operation["security"] = [{"bearer": []}]
    return operation


def _paths() -> dict:
    write_errors = _errors(400, 401, 404, 409, 413, 422)
    return {
        "/api/v1/openapi.json": {"get": {
            "operationId": "openapi", "summary": "this document", "security": [],
            "responses": {"200": {"description": "the OpenAPI document",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/api/v1/events": {
            "post": _secured({
                "operationId": "createEvent", "summary": "emit an event: one delivery per subscribed, enabled channel",
                "requestBody": _body("EventIn"),
                "responses": {"202": _json(_ref("EventAccepted"), "stored and queued"), **_errors(400, 401, 413)}}),
            "get": _secured({
                "operationId": "listEvents", "summary": "events oldest first, with the state of each delivery",
                "parameters": [
                    _query("since", _ANY_TIME, "events created at or after this moment"),
                    _query("hook", {"type": "string", "enum": list(hooks.HOOK_NAMES)}, "events of this hook"),
                    _query("status", {"type": "string", "enum": list(DeliveryStatus.ALL)},
                           "events having a delivery in this status"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                           "events per page"),
                    _query("cursor", {"type": "string", "maxLength": 200}, "the next_cursor of the previous page"),
                ],
                "responses": {"200": _json(_ref("EventPage"), "a page of events"), **_errors(400, 401)}}),
        },
        "/api/v1/deliveries/{delivery_id}/redeliver": {"post": _secured({
            "operationId": "redeliver", "summary": "send a finished delivery again, with its id kept",
            "parameters": [_path("delivery_id", {"type": "string"}, "the delivery's id (X-Apsdai-Delivery)")],
            "responses": {"202": _json(_ref("DeliveryState"), "queued: its state now"), **_errors(401, 404, 409)}})},
        "/api/v1/products": {
            "post": _secured({
                "operationId": "createProduct", "parameters": [_IDEMPOTENCY_KEY], "requestBody": _body("ProductIn"),
                "responses": {"201": _json(_ref("Product"), "created", _REPLAYED), **write_errors}}),
            "get": _secured({
                "operationId": "listProducts", "summary": "every product (takes no parameters)",
                "responses": {"200": _json(_ref("ProductList"), "the products"), **_errors(400, 401)}}),
        },
        "/api/v1/products/{path}": {
            "get": _secured({
                "operationId": "getProduct", "parameters": [_PRODUCT_PATH],
                "responses": {"200": _json(_ref("Product"), "the product"), **_errors(401, 404)}}),
            "patch": _secured({
                "operationId": "updateProduct", "parameters": [_PRODUCT_PATH, _IDEMPOTENCY_KEY],
                "requestBody": _body("ProductIn"),
                "responses": {"200": _json(_ref("Product"), "changed", _REPLAYED), **write_errors}}),
        },
        "/api/v1/products/{path}/inventory": {"put": _secured({
            "operationId": "setInventory", "parameters": [_PRODUCT_PATH, _IDEMPOTENCY_KEY],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["inventory"],
                "properties": {"inventory": {"type": ["integer", "null"], "description": "null: unlimited"}}}}}},
            "responses": {"200": _json(_ref("Product"), "changed", _REPLAYED), **write_errors}})},
        "/api/v1/products/{path}/keys": {"post": _secured({
            "operationId": "addKeys", "parameters": [_PRODUCT_PATH, _IDEMPOTENCY_KEY],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}}}}},
            "responses": {"200": _json(_ref("Product"), "keys added", _REPLAYED), **write_errors}})},
        "/api/v1/orders": {
            "post": _secured({
                "operationId": "createOrder", "parameters": [_IDEMPOTENCY_KEY], "requestBody": _body("OrderIn"),
                "responses": {"201": _json(_ref("Order"), "created", _REPLAYED), **write_errors}}),
            "get": _secured({
                "operationId": "listOrders", "summary": "orders newest first",
                "parameters": [
                    _query("status", {"type": "string", "enum": list(OrderStatus.ALL)}, "orders in this status"),
                    _query("product", {"type": "string", "maxLength": 64}, "orders of this product (its path)"),
                    _query("since", _ANY_TIME, "created at or after"),
                    _query("until", _ANY_TIME, "created before"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIST, "default": 50},
                           "orders per page"),
                    _query("before", {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                           "the next value of the previous page"),
                ],
                "responses": {"200": _json(_ref("OrderList"), "a page of orders"), **_errors(400, 401, 404)}}),
        },
        "/api/v1/orders/{order_no}": {"get": _secured({
            "operationId": "getOrder", "parameters": [_ORDER_NO],
            "responses": {"200": _json(_ref("Order"), "the order"), **_errors(401, 404)}})},
        "/api/v1/orders/{order_no}/{action}": {"post": _secured({
            "operationId": "transitionOrder", "summary": "move an order through its life (docs/api.md)",
            "parameters": [_ORDER_NO, _path("action", {"type": "string", "enum": ["pay", "cancel", "refund",
                                                                                  "complete"]}, "the move"),
                           _IDEMPOTENCY_KEY],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {"200": _json(_ref("Order"), "moved", _REPLAYED), **write_errors}})},
    }


def _webhooks() -> dict:
    found = {}
    for hook in hooks.HOOKS:
        found[hook.name] = {"post": {
            "operationId": f"webhook_{hook.name}", "summary": schemas.LABELS[hook.name],
            "description": "What a WebHook channel receives (docs/webhooks.md): the envelope, signed.",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _ref(f"{hook.name}.envelope"), "example": schemas.example(hook.name)}}},
            "responses": {"200": {"description": "any 2xx: received; others are retried or refused as "
                                                 "docs/webhooks.md says"}}}}
    return found


@lru_cache(maxsize=1)
def _document() -> dict:
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {"title": "merchant-notify API", "version": "1",
                 "description": "The events API, reconciliation and the ledger. Every error has the shape of "
                                "components.schemas.Error. See docs/api.md."},
        "paths": _paths(),
        "webhooks": _webhooks(),
        "components": {
            "schemas": _components(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "a token from Settings › API tokens or "
                                                          "`flask --app app tokens create NAME`"}},
        },
        "security": [{"bearer": []}],
    }


def document() -> dict:
    """The OpenAPI document (a copy: change it freely). Built once per process: it depends on code only."""
    return copy.deepcopy(_document())
