"""Reconciliation: GET /api/v1/events with each delivery's state, and redelivery from code.
A real receiver on loopback and a real worker make the failures and the redelivery."""
import json
from datetime import timedelta

import pytest

from extensions import db
from models import Delivery, DeliveryStatus, Event
from tests.conftest import SwitchableReceiver, run_worker


@pytest.fixture
def receiver():
    """A WebHook receiver on loopback answering 400 until a test changes its `status`."""
    found = SwitchableReceiver(400, path="/hook")
    yield found
    found.close()


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def emit(client, token, hook="order_pay_hook", order_no="A1"):
    data = {"order": {"order_no": order_no}} if hook.startswith("order_") and hook != "order_count_amount_hook" else \
        {"product": {"path": "p"}}
    response = client.post("/api/v1/events", json={"event": hook, "data": data}, headers=auth(token))
    assert response.status_code == 202, response.json
    return response.json["id"]


def test_events_list_shows_each_delivery_state_and_failed_ones_can_be_found_and_sent_again(
        app, client, api_token, make_webhook, receiver):
    make_webhook(receiver.url, hooks_=["order_pay_hook", "stock_alarm_hook"], auth_mode="password")
    first = emit(client, api_token, order_no="A1")
    second = emit(client, api_token, "stock_alarm_hook")
    # The receiver answers 400 to every attempt: after the retry schedule (4 attempts), dead.
    run_worker(app, until=lambda: len(receiver.received) == 8)
    assert len(receiver.received) == 8

    listed = client.get("/api/v1/events", headers=auth(api_token)).json
    assert [e["id"] for e in listed["events"]] == [first, second] and listed["next_cursor"] is None
    event = listed["events"][0]
    assert event["event"] == "order_pay_hook" and event["data"] == {"order": {"order_no": "A1"}}
    assert event["test"] is False and event["source"] == "api"
    (delivery,) = event["deliveries"]
    assert delivery["status"] == "dead" and delivery["attempts"] == 4 and delivery["last_status_code"] == 400
    assert delivery["channel_kind"] == "webhook" and delivery["target"] == receiver.url
    assert delivery["updated_at"].endswith("Z")

    dead = client.get("/api/v1/events?status=dead&hook=order_pay_hook", headers=auth(api_token)).json
    assert [e["id"] for e in dead["events"]] == [first]
    assert len(client.get("/api/v1/events?status=dead", headers=auth(api_token)).json["events"]) == 2
    assert client.get("/api/v1/events?status=delivered", headers=auth(api_token)).json["events"] == []

    receiver.status = 200
    answer = client.post(f"/api/v1/deliveries/{delivery['id']}/redeliver", headers=auth(api_token))
    assert answer.status_code == 202
    assert answer.json["id"] == delivery["id"] and answer.json["status"] == "retrying"
    # Not final now: a second call is refused until the worker has sent it.
    again = client.post(f"/api/v1/deliveries/{delivery['id']}/redeliver", headers=auth(api_token))
    assert again.status_code == 409 and again.json["error"]["code"] == "not_final"
    assert again.json["error"]["current_status"] == "retrying"
    run_worker(app)
    assert len(receiver.received) == 9 and json.loads(receiver.received[-1][0])["id"] == first
    listed = client.get("/api/v1/events?hook=order_pay_hook", headers=auth(api_token)).json
    state = listed["events"][0]["deliveries"][0]
    assert state["status"] == "delivered" and state["attempts"] == 5 and state["last_status_code"] == 200


def test_cursor_pages_through_every_event_once_oldest_first(app, client, api_token, make_webhook):
    make_webhook("https://a.example.com/h", hooks_=["order_pay_hook"])
    ids = [emit(client, api_token, order_no=f"A{n}") for n in range(5)]
    with app.app_context():  # two events in the same instant: the id breaks the tie
        same = db.session.get(Event, ids[1]).created_at
        db.session.get(Event, ids[2]).created_at = same
        db.session.commit()
    ids = [ids[0]] + sorted(ids[1:3]) + ids[3:]
    seen, cursor = [], None
    for _ in range(5):
        url = "/api/v1/events?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=auth(api_token)).json
        assert len(page["events"]) <= 2
        seen += [e["id"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids


def test_since_keeps_later_events_and_status_filter_sees_any_delivery(app, client, api_token, make_webhook):
    make_webhook("https://a.example.com/h", hooks_=["order_pay_hook"])
    make_webhook("https://b.example.com/h", hooks_=["order_pay_hook"])
    old, new = emit(client, api_token, order_no="OLD"), emit(client, api_token, order_no="NEW")
    with app.app_context():
        event = db.session.get(Event, old)
        event.created_at -= timedelta(days=3)
        moment = event.created_at + timedelta(days=1)
        # One of the new event's two deliveries is dead: the event is listed under status=dead.
        db.session.get(Event, new).deliveries[1].status = DeliveryStatus.DEAD
        db.session.commit()
    since = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [e["id"] for e in client.get(f"/api/v1/events?since={since}", headers=auth(api_token)).json["events"]] \
        == [new]
    dead = client.get("/api/v1/events?status=dead", headers=auth(api_token)).json["events"]
    assert [e["id"] for e in dead] == [new] and sorted(d["status"] for d in dead[0]["deliveries"]) == ["dead",
                                                                                                       "pending"]


@pytest.mark.parametrize("query, field, code", [
    ("limit=0", "limit", "invalid_parameter"),
    ("limit=201", "limit", "invalid_parameter"),
    ("limit=ten", "limit", "invalid_parameter"),
    ("status=lost", "status", "invalid_parameter"),
    ("hook=order_paid", "hook", "invalid_parameter"),
    ("since=0001-01-01", "since", "invalid_parameter"),
    ("since=yesterday", "since", "invalid_parameter"),
    ("cursor=bm9wZQ", "cursor", "invalid_parameter"),
    ("cursor=%00", "cursor", "invalid_parameter"),
    ("limit=1&limit=2", "limit", "invalid_parameter"),
    ("before=3", "before", "unknown_parameter"),
])
def test_bad_parameters_answer_400_naming_them(client, api_token, query, field, code):
    response = client.get(f"/api/v1/events?{query}", headers=auth(api_token))
    assert response.status_code == 400
    assert response.json["error"]["field"] == field and response.json["error"]["code"] == code


def test_listing_and_redelivery_need_a_token(client):
    assert client.get("/api/v1/events").status_code == 401
    assert client.post("/api/v1/deliveries/dlv_x/redeliver").status_code == 401


def test_redeliver_unknown_is_404_and_active_is_409(app, client, api_token, make_webhook):
    response = client.post("/api/v1/deliveries/dlv_nothing/redeliver", headers=auth(api_token))
    assert response.status_code == 404 and response.json["error"]["code"] == "unknown_delivery"
    assert client.post("/api/v1/deliveries/" + "x" * 300 + "/redeliver", headers=auth(api_token)).status_code == 404
    make_webhook("https://a.example.com/h", hooks_=["order_pay_hook"])
    emit(client, api_token)
    with app.app_context():
        delivery_id = db.session.scalar(db.select(Delivery.id))
    response = client.post(f"/api/v1/deliveries/{delivery_id}/redeliver", headers=auth(api_token))
    assert response.status_code == 409 and response.json["error"]["current_status"] == "pending"
