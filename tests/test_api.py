"""The events API and API tokens."""
import json

import pytest

from extensions import db
from models import ApiToken, Event


def post(client, token, body, raw=False, **headers):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = body if raw else json.dumps(body)
    return client.post("/api/v1/events", data=data, headers=headers)


def test_event_is_accepted_with_one_delivery_per_subscribed_enabled_channel(client, app, api_token, make_webhook):
    make_webhook("https://a.example.com/h", hooks_=["order_pay_hook"])
    make_webhook("https://b.example.com/h", hooks_=["order_pay_hook", "order_create_hook"])
    make_webhook("https://c.example.com/h", hooks_=["order_create_hook"])
    make_webhook("https://d.example.com/h", hooks_=["order_pay_hook"], enabled=False)
    response = post(client, api_token, {"event": "order_pay_hook", "data": {"order": {"order_no": "A1"}}})
    assert response.status_code == 202
    body = response.json
    assert body["event"] == "order_pay_hook" and body["id"].startswith("evt_") and body["deliveries"] == 2
    with app.app_context():
        event = db.session.get(Event, body["id"])
        assert event.data == {"order": {"order_no": "A1"}} and event.source == "api"
        assert sorted(d.target for d in event.deliveries) == ["https://a.example.com/h", "https://b.example.com/h"]
        assert {d.max_attempts for d in event.deliveries} == {4}  # 1 + the 3 steps of the test schedule


@pytest.mark.parametrize("body, raw, field, fragment", [
    ({"event": "order_paid", "data": {"order": {}}}, False, "event", "unknown hook 'order_paid'"),
    ({"data": {"order": {}}}, False, "event", "event is required"),
    ({"event": "order_pay_hook"}, False, "data", "data is required"),
    ({"event": "order_pay_hook", "data": [1]}, False, "data", "data must be a JSON object"),
    ({"event": "order_pay_hook", "data": {"product": {}}}, False, "data.order", "needs data.order"),
    ("{not json", True, None, "not valid JSON"),
    ("", True, None, "body is empty"),
    ("[1, 2]", True, None, "must be a JSON object"),
])
def test_bad_requests_answer_400_naming_the_problem(client, app, api_token, body, raw, field, fragment):
    response = post(client, api_token, body, raw=raw)
    assert response.status_code == 400
    error = response.json["error"]
    assert fragment in error["message"]
    assert error.get("field") == field
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Event.id))) == 0


def test_missing_wrong_and_revoked_tokens_are_401(client, app, api_token):
    body = {"event": "order_pay_hook", "data": {"order": {}}}
    response = post(client, None, body)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in response.json["error"]["message"]
    assert post(client, "mnt_wrong", body).status_code == 401
    with app.app_context():
        token = db.session.scalar(db.select(ApiToken))
        from models.base import utcnow

        token.revoked_at = utcnow()
        db.session.commit()
    response = post(client, api_token, body)
    assert response.status_code == 401 and "revoked" in response.json["error"]["message"]


def test_body_over_the_limit_is_413(client, app, api_token):
    big = {"event": "order_pay_hook", "data": {"order": {"note": "x" * (64 * 1024)}}}
    response = post(client, api_token, big)
    assert response.status_code == 413
    assert response.json["error"]["code"] == "body_too_large" and "65536 bytes" in response.json["error"]["message"]


def test_token_use_is_recorded(client, app, api_token):
    post(client, api_token, {"event": "order_pay_hook", "data": {"order": {}}})
    with app.app_context():
        assert db.session.scalar(db.select(ApiToken)).last_used_at is not None


def test_unknown_api_paths_and_methods_answer_json(client):
    response = client.get("/api/v1/nothing")
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
    response = client.delete("/api/v1/events")  # GET lists them (reconciliation)
    assert response.status_code == 405 and "error" in response.json


def test_tokens_cli_prints_the_token_on_its_last_line_and_it_works(runner, client):
    result = runner.invoke(args=["tokens", "create", "shop"])
    assert result.exit_code == 0
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("mnt_") and len(token) > 40
    assert post(client, token, {"event": "order_pay_hook", "data": {"order": {}}}).status_code == 202
    listing = runner.invoke(args=["tokens", "list"]).output
    assert "shop" in listing and "active" in listing and token not in listing
    assert runner.invoke(args=["tokens", "revoke", "1"]).exit_code == 0
    assert post(client, token, {"event": "order_pay_hook", "data": {"order": {}}}).status_code == 401


def test_tokens_page_shows_a_new_token_once_and_stores_only_its_hash(login, app, client):
    page = login.post("/settings/tokens/", data={"name": "web shop"}).text
    import re

    token = re.search(r'<pre class="code" id="new-token">([^<]+)</pre>', page).group(1)
    with app.app_context():
        row = db.session.scalar(db.select(ApiToken))
        assert row.token_hash == ApiToken.hash(token) and token not in (row.hint, row.token_hash)
    assert token not in login.get("/settings/tokens/").text
    assert post(client, token, {"event": "order_pay_hook", "data": {"order": {}}}).status_code == 202
    login.post(f"/settings/tokens/{row.id}/revoke")
    assert post(client, token, {"event": "order_pay_hook", "data": {"order": {}}}).status_code == 401


def test_emit_cli(runner, app, make_webhook):
    make_webhook("https://a.example.com/h")
    result = runner.invoke(args=["emit", "stock_alarm_hook", "--data", '{"product": {"path": "p1"}, "inventory": 2}'])
    assert result.exit_code == 0 and "1 deliveries queued" in result.output
    with app.app_context():
        event = db.session.scalar(db.select(Event))
        assert event.hook == "stock_alarm_hook" and event.source == "cli" and len(event.deliveries) == 1
    result = runner.invoke(args=["emit", "stock_alarm_hook", "--data", "{oops"])
    assert result.exit_code != 0 and "not valid JSON" in result.output
    result = runner.invoke(args=["emit", "nope_hook", "--data", "{}"])
    assert result.exit_code != 0 and "unknown hook" in result.output
