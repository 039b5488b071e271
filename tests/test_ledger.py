"""The ledger: the order state machine, inventory and keys, alarms fired once per crossing (also
under concurrent sales), idempotent calls, and the API's errors. Runs on SQLite and PostgreSQL."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from extensions import db
from models import Event, Order
from shop import ledger

VPN = {"path": "vpn", "name": "VPN Monthly Plan", "price": "128.00", "currency": "CNY"}


@pytest.fixture
def api(client, api_token):
    def call(method: str, path: str, body=None, **headers):
        response = client.open(f"/api/v1{path}", method=method, json=body,
                               headers={"Authorization": f"Bearer {api_token}", **headers})
        return response.status_code, response.get_json()
    return call


def hooks_emitted(app) -> list[str]:
    with app.app_context():
        return [e.hook for e in db.session.scalars(db.select(Event).order_by(Event.created_at, Event.id))]


def events(app, hook: str) -> list[dict]:
    with app.app_context():
        return [e.data for e in db.session.scalars(db.select(Event).where(Event.hook == hook))]


def test_create_pay_complete_emits_each_hook_with_the_order(app, api, make_webhook):
    assert api("POST", "/products", VPN)[0] == 201
    status, order = api("POST", "/orders", {"product": "vpn", "quantity": 2, "buyer_email": "Buyer@Example.com",
                                            "order_no": "AP1"})
    assert status == 201 and order["status"] == "created" and order["amount"] == "256.00"
    assert order["buyer_email"] == "Buyer@example.com" and order["product"] == {"path": "vpn", "name": "VPN Monthly Plan"}
    status, paid = api("POST", "/orders/AP1/pay")
    assert status == 200 and paid["status"] == "paid" and paid["paid_at"].endswith("Z")
    status, done = api("POST", "/orders/AP1/complete")
    assert status == 200 and done["status"] == "completed"
    assert hooks_emitted(app) == ["order_create_hook", "order_pay_hook", "order_finish_hook"]
    (pay_event,) = events(app, "order_pay_hook")
    assert pay_event["order"] == {k: v for k, v in paid.items()}  # the event carries the order as the API shows it
    assert api("GET", "/orders/AP1") == (200, done)


@pytest.mark.parametrize("path, allowed", [
    (["cancel"], True), (["pay", "refund"], True), (["pay", "complete"], True),
    (["cancel", "pay"], False), (["cancel", "refund"], False), (["refund"], False), (["complete"], False),
    (["pay", "pay"], False), (["pay", "cancel"], False), (["pay", "complete", "refund"], False),
    (["pay", "refund", "complete"], False),
])
def test_every_transition_is_allowed_or_refused_with_409_and_no_change(app, api, path, allowed):
    api("POST", "/products", VPN)
    api("POST", "/orders", {"product": "vpn", "order_no": "AP1"})
    *before, last = path
    for action in before:
        assert api("POST", f"/orders/AP1/{action}")[0] == 200
    emitted = len(hooks_emitted(app))
    status_before = api("GET", "/orders/AP1")[1]["status"]
    status, body = api("POST", f"/orders/AP1/{last}")
    if allowed:
        assert status == 200 and len(hooks_emitted(app)) == emitted + 1
    else:
        assert status == 409 and body["error"]["code"] == "invalid_transition"
        assert body["error"]["current_status"] == status_before
        assert api("GET", "/orders/AP1")[1]["status"] == status_before and len(hooks_emitted(app)) == emitted


def test_keys_complete_orders_or_leave_them_out_of_stock_until_keys_arrive(app, api):
    api("POST", "/products", dict(VPN, keys={"enabled": True, "available": 1, "low_key_threshold": 0}))
    for no in ("K1", "K2", "K3"):
        api("POST", "/orders", {"product": "vpn", "order_no": no})
    assert api("POST", "/orders/K1/pay")[1]["status"] == "completed"
    assert api("POST", "/orders/K2/pay")[1]["status"] == "out_of_stock"
    assert api("POST", "/orders/K3/pay")[1]["status"] == "out_of_stock"
    status, product = api("POST", "/products/vpn/keys", {"count": 1})
    assert status == 200 and product["keys"]["available"] == 0
    # The oldest out-of-stock order got the key; the other still waits.
    assert api("GET", "/orders/K2")[1]["status"] == "completed" and api("GET", "/orders/K3")[1]["status"] == "out_of_stock"
    assert api("POST", "/orders/K3/refund")[1]["status"] == "refunded"
    assert hooks_emitted(app).count("order_out_of_stock_hook") == 2
    assert hooks_emitted(app).count("order_finish_hook") == 2


def test_fixed_inventory_is_decremented_and_overselling_refused(app, api):
    api("POST", "/products", dict(VPN, inventory=3, low_stock_threshold=0, stock_alert=False))
    api("POST", "/orders", {"product": "vpn", "order_no": "A", "quantity": 2})
    api("POST", "/orders", {"product": "vpn", "order_no": "B", "quantity": 2})
    assert api("POST", "/orders/A/pay")[0] == 200
    status, body = api("POST", "/orders/B/pay")
    assert status == 409 and body["error"]["code"] == "insufficient_inventory" and body["error"]["inventory"] == 1
    assert api("GET", "/orders/B")[1]["status"] == "created"  # nothing changed
    assert api("GET", "/products/vpn")[1]["inventory"] == 1
    # No event for the refused payment.
    assert hooks_emitted(app) == ["order_create_hook", "order_create_hook", "order_pay_hook"]


def test_stock_alarm_fires_once_per_crossing_and_rearms_above_the_threshold(app, api):
    api("POST", "/products", dict(VPN, inventory=7, low_stock_threshold=5))
    for i in range(6):
        api("POST", "/orders", {"product": "vpn", "order_no": f"S{i}"})
        api("POST", f"/orders/S{i}/pay")  # 6, 5 (fires), 4, 3, 2, 1: no more alarms
    assert events(app, "stock_alarm_hook") == [{"product": {"path": "vpn", "name": "VPN Monthly Plan"},
                                                "inventory": 5, "threshold": 5}]
    api("PUT", "/products/vpn/inventory", {"inventory": 5})  # still at the threshold: not re-armed
    api("PUT", "/products/vpn/inventory", {"inventory": 20})  # above: re-armed, no alarm
    assert len(events(app, "stock_alarm_hook")) == 1
    api("PUT", "/products/vpn/inventory", {"inventory": 2})  # a fall to below: the second crossing
    assert [e["inventory"] for e in events(app, "stock_alarm_hook")] == [5, 2]


def _concurrent_sales(app, orders: list[str]) -> list[str]:
    """Pay every order from 8 threads at once; each call in its own app context and transaction."""
    def pay(order_no: str) -> str:
        with app.app_context():
            try:
                ledger.pay(order_no)
                db.session.commit()
                return "paid"
            except ledger.Conflict as exc:
                db.session.rollback()
                return exc.code
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(pay, orders))


def test_concurrent_sales_never_oversell_and_fire_each_alarm_exactly_once(app, api):
    api("POST", "/products", dict(VPN, inventory=20, low_stock_threshold=5,
                                  keys={"enabled": True, "available": 15, "low_key_threshold": 3}))
    orders = [f"C{i:02d}" for i in range(24)]
    for no in orders:
        api("POST", "/orders", {"product": "vpn", "order_no": no})
    results = _concurrent_sales(app, orders)
    assert results.count("paid") == 20 and results.count("insufficient_inventory") == 4
    product = api("GET", "/products/vpn")[1]
    assert product["inventory"] == 0 and product["keys"]["available"] == 0
    assert len(events(app, "stock_alarm_hook")) == 1
    assert len(events(app, "key_stock_alarm_hook")) == 1
    with app.app_context():
        statuses = sorted(db.session.scalars(db.select(Order.status)))
    assert statuses.count("completed") == 15 and statuses.count("out_of_stock") == 5
    assert statuses.count("created") == 4
    # Every paid order has its pay event, none twice.
    assert len(events(app, "order_pay_hook")) == 20 and len(events(app, "order_finish_hook")) == 15


def test_idempotency_key_replays_the_first_answer_and_emits_nothing_twice(app, api):
    first = api("POST", "/products", VPN, **{"Idempotency-Key": "p-1"})
    assert api("POST", "/products", VPN, **{"Idempotency-Key": "p-1"}) == first
    api("POST", "/orders", {"product": "vpn", "order_no": "I1"}, **{"Idempotency-Key": "o-1"})
    assert api("POST", "/orders", {"product": "vpn", "order_no": "I1"}, **{"Idempotency-Key": "o-1"})[0] == 201
    paid = api("POST", "/orders/I1/pay", **{"Idempotency-Key": "pay-1"})
    assert api("POST", "/orders/I1/pay", **{"Idempotency-Key": "pay-1"}) == paid
    assert hooks_emitted(app) == ["order_create_hook", "order_pay_hook"]
    # The same key for another request is refused; without a key a second pay is a 409.
    status, body = api("POST", "/orders/I1/cancel", **{"Idempotency-Key": "pay-1"})
    assert status == 422 and body["error"]["field"] == "Idempotency-Key"
    assert api("POST", "/orders/I1/pay")[0] == 409


def test_a_failed_call_can_be_retried_with_its_key(app, api):
    api("POST", "/products", dict(VPN, inventory=0))
    api("POST", "/orders", {"product": "vpn", "order_no": "R1"})
    assert api("POST", "/orders/R1/pay", **{"Idempotency-Key": "r"})[0] == 409
    api("PUT", "/products/vpn/inventory", {"inventory": 1})
    assert api("POST", "/orders/R1/pay", **{"Idempotency-Key": "r"})[0] == 200


@pytest.mark.parametrize("path, body, field, fragment", [
    ("/orders", {"product": "nope"}, "product", "no product with path 'nope'"),
    ("/orders", {"product": "vpn", "quantity": -1}, "quantity", "between 1 and"),
    ("/orders", {"product": "vpn", "quantity": "2"}, "quantity", "whole number"),
    ("/orders", {"product": "vpn", "amount": "12.345"}, "amount", "more than two decimals"),
    ("/orders", {"product": "vpn", "amount": "-1"}, "amount", "zero or more"),
    ("/orders", {"product": "vpn", "currency": "XYZ"}, "currency", "ISO 4217"),
    ("/orders", {"product": "vpn", "buyer_email": "not-an-email"}, "buyer_email", "not a valid address"),
    ("/orders", {"quantity": 1}, "product", "product is required"),
    ("/products", dict(VPN, path="bad path!"), "path", "letters and digits"),
    ("/products", dict(VPN, path="other", price="1.001"), "price", "more than two decimals"),
    ("/products", {"path": "x1", "name": "X", "price": "1"}, "currency", "currency is required"),
])
def test_bad_input_answers_4xx_naming_the_field(app, api, path, body, field, fragment):
    api("POST", "/products", VPN)
    status, answer = api("POST", path, body)
    assert 400 <= status < 500 and answer["error"]["field"] == field and fragment in answer["error"]["message"]


def test_non_json_body_and_unknown_things(app, api, client, api_token):
    response = client.post("/api/v1/orders", data="order please", headers={"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_json"
    assert api("GET", "/orders/none")[0] == 404 and api("POST", "/orders/none/pay")[0] == 404
    assert api("GET", "/products/none")[1]["error"]["code"] == "unknown_product"
    assert client.post("/api/v1/orders", json={"product": "vpn"}).status_code == 401
    api("POST", "/products", VPN)
    assert api("POST", "/products", VPN)[1]["error"]["code"] == "product_exists"
    assert api("PATCH", "/products/vpn", {"path": "other"})[1]["error"]["field"] == "path"


def test_orders_are_listed_newest_first_with_filters_and_a_cursor(app, api):
    api("POST", "/products", VPN)
    api("POST", "/products", dict(VPN, path="vps", name="VPS"))
    for i in range(5):
        api("POST", "/orders", {"product": "vpn" if i % 2 else "vps", "order_no": f"L{i}"})
    api("POST", "/orders/L1/pay")
    status, page = api("GET", "/orders?limit=2")
    assert status == 200 and [o["order_no"] for o in page["orders"]] == ["L4", "L3"]
    rest = api("GET", f"/orders?limit=10&before={page['next']}")[1]
    assert [o["order_no"] for o in rest["orders"]] == ["L2", "L1", "L0"] and rest["next"] is None
    assert [o["order_no"] for o in api("GET", "/orders?status=paid")[1]["orders"]] == ["L1"]
    assert [o["order_no"] for o in api("GET", "/orders?product=vpn")[1]["orders"]] == ["L3", "L1"]
    assert api("GET", "/orders?status=lost")[1]["error"]["field"] == "status"
    assert api("GET", "/orders?since=yesterday")[1]["error"]["field"] == "since"
