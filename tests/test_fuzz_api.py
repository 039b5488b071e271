"""Property-based tests: generated bodies (well-formed and malformed) against the events and ledger
APIs never get a 5xx, only 2xx or a 4xx with the JSON error shape; and every event the events
API accepts renders for every channel kind, and goes through a real worker drain to a final state.
Runs on SQLite and PostgreSQL (TEST_DATABASE_URL). The large run is scripts/fuzz_api.py."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extensions import db
from models import Attempt, Channel, Delivery, DeliveryStatus, Event
from notify import dispatch, signing
from notify.channels import REGISTRY, DeliverySettings, transport_for
from notify.channels.email.transport import EmailTransport
from tests import strategies

FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


def _check_answer(response) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    body = response.get_json(silent=True)
    if response.status_code >= 400:
        assert strategies.is_error_shape(body), response.get_data(as_text=True)[:500]
    elif 300 <= response.status_code < 400:
        # Werkzeug's own answer to a path with doubled slashes (`/orders//pay`): where to ask instead.
        assert "/api/v1/" in response.headers["Location"]
    else:
        assert isinstance(body, dict)


def test_the_events_api_answers_every_generated_body_without_a_5xx(client, api_token):
    @FUZZ
    @given(body=strategies.event_bodies())
    def post(body: bytes):
        _check_answer(client.post("/api/v1/events", data=body, headers={"Authorization": f"Bearer {api_token}"}))

    post()


def test_the_ledger_api_answers_every_generated_request_without_a_5xx(app, client, api_token):
    auth = {"Authorization": f"Bearer {api_token}"}
    for product in strategies.SEED_PRODUCTS:
        assert client.post("/api/v1/products", json=product, headers=auth).status_code == 201
    for order in strategies.SEED_ORDERS:
        assert client.post("/api/v1/orders", json=order, headers=auth).status_code == 201

    @FUZZ
    @given(request=strategies.ledger_requests())
    def call(request):
        method, path, body, query = request
        response = client.open(f"/api/v1{path}" + (f"?{query}" if query else ""), method=method, data=body,
                               headers=auth)
        _check_answer(response)

    call()
    # What the ledger accepted it also emitted: every event it stored matches its schema.
    with app.app_context():
        for event in db.session.scalars(db.select(Event)):
            dispatch.validate(event.hook, event.data)


def _channels(app, make_channel, dingtalk, wecom, local_receiver, robots_per_kind: int) -> list[int]:
    receiver = local_receiver(lambda path, headers: (200, {}, b"ok", 0))
    ids = [make_channel("webhook", {"url": receiver.url + "/hook", "auth_mode": "signature"},
                        "whsec_fuzz_secret_0123456789"),
           make_channel("email", {"recipients": ["owner@example.com"]})]
    for n in range(robots_per_kind):
        ids.append(make_channel("dingtalk", {"url": dingtalk.add_robot(f"fuzzding{n}")}))
        ids.append(make_channel("wecom", {"url": wecom.add_robot(f"fuzzwecom{n}")}))
    return ids


def test_every_accepted_event_renders_for_every_kind_and_is_delivered(app, client, api_token, make_channel, dingtalk,
                                                                      wecom, local_receiver, smtp_server, worker,
                                                                      monkeypatch):
    accepted: list[str] = []
    rejected = 0
    unsaved = {kind: Channel(id=0, kind=kind, enabled=True, hooks=[], secret="whsec_fuzz_secret_0123456789",
                             config=config)
               for kind, config in {"webhook": {"url": "https://example.com/h", "auth_mode": "signature"},
                                    "dingtalk": {"url": "https://oapi.dingtalk.com/robot/send?access_token=t"},
                                    "wecom": {"url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"},
                                    "feishu": {"url": "https://open.feishu.cn/open-apis/bot/v2/hook/t"},
                                    "email": {"recipients": ["owner@example.com"]}}.items()}
    assert set(unsaved) == set(REGISTRY)

    @FUZZ
    # Three in four valid (with hostile content), the rest anything shaped like an event.
    @given(body=st.integers(0, 3).flatmap(lambda n: strategies.EVENTS if n == 0 else strategies.VALID_EVENTS)
           .map(strategies.encode))
    def post(body: bytes):
        nonlocal rejected
        response = client.post("/api/v1/events", data=body, headers={"Authorization": f"Bearer {api_token}"})
        _check_answer(response)
        if response.status_code != 202:
            rejected += 1
            return
        accepted.append(response.json["id"])
        with app.app_context():
            event = db.session.get(Event, response.json["id"])
            for kind, channel in unsaved.items():
                request = transport_for(kind)(channel, DeliverySettings()).prepare(
                    event, Delivery(id="dlv_fuzz"), signing.now_ms())
                assert request.body, kind
                if kind != "email":
                    json.loads(request.body)  # what goes to a robot or a receiver is JSON

    post()
    assert len(accepted) > 50 and rejected, (len(accepted), rejected)  # the strategy reaches both sides
    # A real drain: every accepted event to a channel of each kind, each as its own message. A
    # robot takes 20 messages a minute, and past 10 in a minute order events are folded into
    # digests (tests/test_digests.py), so each robot gets at most 10 of them; email's single budget
    # (5 a minute) is lifted for this test.
    monkeypatch.setattr(EmailTransport, "fold_budget", (10_000, 60.0))
    webhook, email, *robots = _channels(app, make_channel, dingtalk, wecom, local_receiver,
                                        math.ceil(len(accepted) / 10))
    with app.app_context():
        targets = {channel.id: dispatch.Target(channel.id, channel.kind,
                                               transport_for(channel.kind).describe(channel.config))
                   for channel in db.session.scalars(db.select(Channel))}
        rows = []
        for n, event_id in enumerate(accepted):
            event = db.session.get(Event, event_id)
            ding, wecom_robot = robots[2 * (n // 10)], robots[2 * (n // 10) + 1]
            rows += [{"event_id": event.id, "hook": event.hook, "channel": targets[channel_id]}
                     for channel_id in (webhook, email, ding, wecom_robot)]
        # The full (test) schedule: a connection the loopback receiver drops is retried, as in production.
        dispatch.add_deliveries(rows, max_attempts=dispatch.full_schedule())
        db.session.commit()
    assert len(rows) == 4 * len(accepted)

    def final() -> bool:
        with app.app_context():
            return not db.session.scalar(db.select(db.func.count(Delivery.id))
                                         .where(Delivery.status.not_in(DeliveryStatus.FINAL)))

    worker(until=final, timeout=120)
    with app.app_context():
        outcomes = db.session.execute(db.select(Delivery.channel_kind, Delivery.status)).all()
        assert {status for _, status in outcomes} <= {DeliveryStatus.DELIVERED, DeliveryStatus.FAILED}
        failed = db.session.scalars(db.select(Delivery).where(Delivery.status == DeliveryStatus.FAILED)).all()
        for delivery in failed:
            attempt = db.session.scalar(db.select(Attempt).where(Attempt.delivery_id == delivery.id))
            assert attempt is not None and attempt.error, delivery.id
        # Every accepted event was sent, to every kind.
        assert sorted(kind for kind, status in outcomes if status == DeliveryStatus.DELIVERED) == \
            sorted(["webhook", "email", "dingtalk", "wecom"] * len(accepted)), failed
    assert len(smtp_server.messages) == len(accepted)
    assert sum(len(robot.messages) for robot in dingtalk.robots.values()) == len(accepted)
    assert sum(len(robot.messages) for robot in wecom.robots.values()) == len(accepted)


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 5000 + b"1" + b"}" * 5000])
def test_nesting_far_beyond_the_parser_s_recursion_limit_is_400(client, api_token, raw, app):
    app.config["API_MAX_BODY_BYTES"] = 1_000_000
    response = client.post("/api/v1/events", data=raw, headers={"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 400 and response.json["error"]["code"] == "too_deep"
