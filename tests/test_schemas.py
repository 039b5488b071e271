"""The hooks' schemas and the checks at the API's door (issue 12): what is refused, with which
field, and that concurrent calls with one Idempotency-Key all get the replay (or 409 in_progress).
Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from jsonschema import Draft202012Validator
from werkzeug.serving import make_server

from extensions import db
from models import Event, IdempotencyKey, Order
from notify import hooks, schemas

VPN = {"path": "vpn", "name": "VPN Monthly Plan", "price": "128.00", "currency": "CNY"}


def post_event(client, token, raw: bytes):
    return client.post("/api/v1/events", data=raw, headers={"Authorization": f"Bearer {token}"})


def test_every_sample_satisfies_its_hook_s_schema_and_the_schemas_are_valid_draft_2020_12():
    for hook in hooks.HOOKS:
        schema = schemas.for_hook(hook.name)
        Draft202012Validator.check_schema(schema)
        assert Draft202012Validator(schema).is_valid(hook.sample)
        schemas.validate_data(hook.name, hook.sample)
        schemas.check_values(hook.sample)
    schemas.for_hook("order_pay_hook")["properties"].clear()  # a copy: the checks are untouched
    with pytest.raises(schemas.Invalid):
        schemas.validate_data("order_pay_hook", {"order": {"product": "abc"}})


ORDER = '{"event": "order_pay_hook", "data": {"order": %s}}'


@pytest.mark.parametrize("order, field, fragment", [
    ('{"product": "abc"}', "data.order.product", "must be a JSON object"),
    ('{"amount": NaN}', "data.order.amount", "NaN, which is not JSON"),
    ('{"amount": Infinity}', "data.order.amount", "Infinity"),
    ('{"amount": -Infinity}', "data.order.amount", "-Infinity"),
    ('{"amount": 1e400}', "data.order.amount", "out of range"),
    ('{"amount": 1' + "0" * 5000 + "}", "data.order.amount", "out of range"),
    ('{"amount": "12.345"}', "data.order.amount", "at most two decimals"),
    ('{"amount": 0.291}', "data.order.amount", "at most two decimals"),
    ('{"amount": "-1.00"}', "data.order.amount", "from 0 to 9999999999.99"),
    ('{"amount": "10000000000.00"}', "data.order.amount", "from 0 to 9999999999.99"),
    ('{"quantity": 0}', "data.order.quantity", "from 1 to 100000"),
    ('{"quantity": 2.5}', "data.order.quantity", "a whole number"),
    ('{"quantity": 9007199254740993}', "data.order.quantity", "out of range"),
    ('{"order_no": "A\\u0000B"}', "data.order.order_no", "NUL"),
    ('{"order_no": "A\\ud800"}', "data.order.order_no", "lone surrogate"),
    ('{"order_no": ""}', "data.order.order_no", "1 to 64 characters"),
    ('{"order_no": "%s"}' % ("x" * 65), "data.order.order_no", "1 to 64 characters"),
    ('{"note\\u0000": 1}', "data.order.note\\x00", "NUL"),
    ('{"\\udfff": 1}', "data.order.\\udfff", "lone surrogate"),
    ('{"created_at": "0001-01-01T00:00:00+05:00"}', "data.order.created_at", "1970 to 2099"),
    ('{"paid_at": "9999-12-31T23:59:59Z"}', "data.order.paid_at", "1970 to 2099"),
    ('{"paid_at": "2026-02-30T10:00:00Z"}', "data.order.paid_at", "ISO 8601"),
    ('{"paid_at": "yesterday"}', "data.order.paid_at", "ISO 8601"),
    ('{"currency": "cny"}', "data.order.currency", "ISO 4217"),
    ('{"product": {"name": 5}}', "data.order.product.name", "must be a text"),
    ('"abc"', "data.order", "must be a JSON object"),
])
def test_bad_order_data_is_400_naming_the_field(client, app, api_token, order, field, fragment):
    response = post_event(client, api_token, (ORDER % order).encode())
    assert response.status_code == 400, response.json
    error = response.json["error"]
    assert error["field"] == field and fragment in error["message"], error
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Event.id))) == 0


@pytest.mark.parametrize("hook, data, field", [
    ("order_count_amount_hook", {"days": [{"date": "2026-13-01"}]}, "data.days[0].date"),
    ("order_count_amount_hook", {"days": [{"order_count": 1}]}, "data.days[0].date"),
    ("order_count_amount_hook", {"days": [{"date": "2026-11-27"}] * 32}, "data.days"),
    ("order_count_amount_hook", {"days": ["2026-11-27"]}, "data.days[0]"),
    ("order_count_amount_hook", {"days": [{"date": "2026-11-27", "amounts": {"usd": "1.00"}}]},
     "data.days[0].amounts"),
    ("stock_alarm_hook", {"product": {"path": "p"}, "inventory": -1}, "data.inventory"),
    ("key_stock_alarm_hook", {"product": {"path": "p"}, "threshold": "5"}, "data.threshold"),
    ("stock_alarm_hook", {"product": []}, "data.product"),
])
def test_bad_alarm_and_report_data_is_400_naming_the_field(client, api_token, hook, data, field):
    response = post_event(client, api_token, json.dumps({"event": hook, "data": data}).encode())
    assert response.status_code == 400 and response.json["error"]["field"] == field, response.json


def test_the_shop_s_own_fields_pass_through_unchanged(client, app, api_token):
    data = {"order": {"order_no": "A1", "amount": 128.5, "coupon": {"code": "X", "tiers": [1, [2, {"k": None}]]}},
            "shop": "我的店"}
    response = post_event(client, api_token, json.dumps({"event": "order_pay_hook", "data": data}).encode())
    assert response.status_code == 202
    with app.app_context():
        assert db.session.get(Event, response.json["id"]).data == data


@pytest.mark.parametrize("raw, code", [
    (b"[" * 33 + b"]" * 33, "too_deep"),
    (b'{"event": "order_pay_hook", "data": {"order": ' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}}", "too_deep"),
    (b"\xff\xfe{}", "invalid_json"),
    (b'{"event": "order_pay_hook", "data": {"order": {"a": "\xed\xa0\x80"}}}', "invalid_json"),  # an encoded surrogate
])
def test_deep_and_undecodable_bodies_are_400(client, api_token, raw, code):
    response = post_event(client, api_token, raw)
    assert response.status_code == 400 and response.json["error"]["code"] == code


def test_nesting_up_to_the_limit_is_accepted(client, api_token):
    # The body is level 1, data 2, order 3: 29 more levels of the shop's own reach 32.
    deep = b'{"event": "order_pay_hook", "data": {"order": {"x": ' + b"[" * 29 + b"]" * 29 + b"}}}"
    assert post_event(client, api_token, deep).status_code == 202
    brackets_in_strings = json.dumps({"event": "order_pay_hook", "data": {"order": {"note": "[{" * 500}}}).encode()
    assert post_event(client, api_token, brackets_in_strings).status_code == 202


# -- the ledger -------------------------------------------------------------------------------
@pytest.fixture
def api(client, api_token):
    def call(method: str, path: str, body=None, raw: bytes | None = None, **headers):
        response = client.open(f"/api/v1{path}", method=method, json=body if raw is None else None,
                               data=raw, headers={"Authorization": f"Bearer {api_token}", **headers})
        return response.status_code, response.get_json()
    return call


@pytest.mark.parametrize("query, field", [
    ("since=0001-01-01T00:00:00%2B05:00", "since"),
    ("until=9999-12-31T23:59:59-05:00", "until"),
    ("since=2026-11-27T10:00:00%2B99:00", "since"),
    (f"before={2**63}", "before"),
    ("before=0", "before"),
    ("before=1_0", "before"),
    ("limit=%D9%A3", "limit"),
    ("limit=201", "limit"),
    ("product=v%00", "product"),
    ("status=paid%00", "status"),
    ("status=paid&status=created", "status"),
    ("colour=red", "colour"),
])
def test_bad_list_parameters_are_400_naming_the_parameter(api, query, field):
    status, body = api("GET", f"/orders?{query}")
    assert status == 400 and body["error"]["field"] == field, body


def test_good_list_parameters_still_work(api):
    api("POST", "/products", VPN)
    api("POST", "/orders", {"product": "vpn", "order_no": "AP1"})
    status, body = api("GET", "/orders?since=2026-01-01&until=2099-12-31T23:59:59%2B08:00&limit=200&before=99")
    assert status == 200 and [o["order_no"] for o in body["orders"]] == ["AP1"]
    assert api("GET", "/products?x=1")[1]["error"]["code"] == "unknown_parameter"


@pytest.mark.parametrize("path", ["/products/v%00", "/orders/A%00/pay", "/orders/A%00", "/products/v%00/keys"])
def test_nul_in_a_path_is_not_found_not_a_database_error(api, path):
    method = "GET" if path.count("/") == 2 else "POST"
    status, body = api(method, path, {"count": 1} if path.endswith("keys") else None)
    assert status == 404 and body["error"]["code"] in ("unknown_product", "unknown_order"), body


@pytest.mark.parametrize("path, body, field", [
    ("/products", dict(VPN, price=float("nan")), "price"),
    ("/products", dict(VPN, name="V\x00PN"), "name"),
    ("/products", dict(VPN, name="\ud800"), "name"),
    ("/products", dict(VPN, inventory=2**63), "inventory"),
    ("/orders", {"product": "vpn", "quantity": 100000}, "quantity"),  # 128.00 × 100000 is more than an amount
    ("/orders", {"product": "vpn", "order_no": "A/1"}, "order_no"),
    ("/orders", {"product": "vpn", "order_no": "A\n1"}, "order_no"),
    ("/orders", {"product": "vpn", "buyer_email": ["a@example.com"]}, "buyer_email"),
])
def test_bad_ledger_bodies_are_400_naming_the_field(api, app, path, body, field):
    api("POST", "/products", dict(VPN, price="9999999.00", path="dear"))
    api("POST", "/products", VPN)
    if path == "/orders" and field == "quantity":
        body = dict(body, product="dear")
    raw = json.dumps(body, allow_nan=True).encode()
    status, answer = api("POST", path, raw=raw)
    assert status == 400 and answer["error"]["field"] == field, answer


def test_keys_stop_at_the_largest_level(api):
    api("POST", "/products", dict(VPN, keys={"enabled": True, "available": schemas.MAX_LEVEL - 5}))
    assert api("POST", "/products/vpn/keys", {"count": 5})[0] == 200
    status, body = api("POST", "/products/vpn/keys", {"count": 1})
    assert status == 400 and body["error"]["field"] == "count"


def test_idempotency_key_must_be_printable_ascii(api):
    api("POST", "/products", VPN)
    status, body = api("POST", "/orders", {"product": "vpn"}, **{"Idempotency-Key": "k\x01"})
    assert status == 400 and body["error"]["field"] == "Idempotency-Key"


# -- concurrent retries with one Idempotency-Key -------------------------------------------------------
@pytest.fixture
def server(app):
    """The app behind a real threaded HTTP server on loopback, as gunicorn's threads would run it."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/api/v1"
    httpd.shutdown()
    httpd.server_close()


def _concurrently(n: int, call) -> list[requests.Response]:
    barrier = threading.Barrier(n)

    def one(_):
        with requests.Session() as session:
            barrier.wait()
            return call(session)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


@pytest.mark.parametrize("what", ["pay", "create"])
def test_concurrent_calls_with_one_key_all_get_the_replay_or_in_progress(app, api, api_token, server, what):
    api("POST", "/products", VPN)
    api("POST", "/orders", {"product": "vpn", "order_no": "AP1"})
    headers = {"Authorization": f"Bearer {api_token}", "Idempotency-Key": f"retry-{what}"}
    if what == "pay":
        call = lambda s: s.post(f"{server}/orders/AP1/pay", headers=headers, timeout=60)  # noqa: E731
    else:
        call = lambda s: s.post(f"{server}/orders", json={"product": "vpn", "order_no": "AP2"},  # noqa: E731
                                headers=headers, timeout=60)
    answers = _concurrently(100, call)
    statuses = sorted({r.status_code for r in answers})
    assert set(statuses) <= {200, 201, 409}, statuses
    done = [r for r in answers if r.status_code != 409]
    busy = [r for r in answers if r.status_code == 409]
    assert all(r.json()["error"]["code"] == "in_progress" and r.headers["Retry-After"] for r in busy), \
        {r.json()["error"]["code"] for r in busy}
    assert len({r.text for r in done}) == 1  # one answer, replayed
    assert sum(r.headers.get("Idempotent-Replayed") != "true" for r in done) == 1
    with app.app_context():
        emitted = db.session.scalars(db.select(Event.hook)).all()
        # Besides the setting up's order_create_hook (AP1), one event: the call's, once.
        assert sorted(emitted) == sorted(["order_create_hook", "order_pay_hook" if what == "pay" else "order_create_hook"])
        assert db.session.scalar(db.select(db.func.count(IdempotencyKey.id))) == 1
        assert db.session.scalar(db.select(db.func.count(Order.id))) == (1 if what == "pay" else 2)

