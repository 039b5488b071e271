"""The event catalogue: one source (notify.schemas) for the page, docs/webhooks.md and the OpenAPI
document; each example is the whole body as delivered and satisfies its schema; the page's Test
sends the hook's sample through the real Test path to a real receiver."""
import html
import json
import re

import pytest

from extensions import db
from models import Channel, Delivery, Event
from notify import hooks, schemas
from tests.conftest import SwitchableReceiver, run_worker


@pytest.mark.parametrize("hook_name", hooks.HOOK_NAMES)
def test_each_example_is_the_whole_body_and_satisfies_its_schema(hook_name):
    body = schemas.example(hook_name)
    assert set(body) == {"id", "event", "created_at", "test", "data"} and body["event"] == hook_name
    assert body["data"] == hooks.get(hook_name).sample
    assert schemas.check_envelope(hook_name, body) == []
    schemas.validate_data(hook_name, body["data"])  # the check every event passes at the door


def test_the_envelope_schema_refuses_what_a_webhook_never_gets():
    body = schemas.example("order_pay_hook")
    assert schemas.check_envelope("order_pay_hook", {**body, "event": "order_create_hook"})
    assert schemas.check_envelope("order_pay_hook", {**body, "extra": 1})
    assert schemas.check_envelope("order_pay_hook", {**body, "data": {"product": {}}})
    assert schemas.check_envelope("order_pay_hook", {k: v for k, v in body.items() if k != "test"})


def test_a_real_delivery_satisfies_the_envelope_schema(app):
    with app.app_context():
        for hook in hooks.HOOKS:
            event = Event(hook=hook.name, data=hook.sample, is_test=True)
            db.session.add(event)
            db.session.flush()
            assert schemas.check_envelope(hook.name, event.envelope()) == []
        db.session.rollback()


def test_the_page_shows_every_hook_with_its_schema_and_example(login, make_webhook):
    make_webhook("https://a.example.com/h", hooks_=["order_pay_hook"])
    make_webhook("https://off.example.com/h", enabled=False)
    page = login.get("/settings/catalogue/").text
    blocks = [html.unescape(block) for block in re.findall(r'<pre class="code">(.*?)</pre>', page, re.S)]
    assert len(blocks) == 2 * len(hooks.HOOKS)
    for index, hook in enumerate(hooks.HOOKS):
        assert f'id="{hook.name}"' in page
        assert json.loads(blocks[2 * index]) == schemas.example(hook.name)
        assert json.loads(blocks[2 * index + 1]) == schemas.for_hook(hook.name)
    # Enabled channels only, subscribed or not; the subscribed one says so for its hook.
    assert "off.example.com" not in page and page.count("a.example.com/h") == len(hooks.HOOKS)
    section = page[page.index('id="order_pay_hook"'):page.index('id="order_cancel_hook"')]
    assert "· subscribed" in section
    assert "· subscribed" not in page[page.index('id="order_create_hook"'):page.index('id="order_pay_hook"')]
    assert 'href="/settings/catalogue/"' in login.get("/settings/notifications/").text


def test_without_an_enabled_channel_the_page_says_how_to_get_one(login):
    page = login.get("/settings/catalogue/").text
    assert "first add and enable a channel" in page and "Send this as a test" not in page


def test_send_this_as_a_test_goes_through_the_real_test_path(app, login, make_webhook):
    receiver = SwitchableReceiver(200, path="/hook")
    try:
        # Not subscribed to the hook: a Test may still go there.
        channel_id = make_webhook(receiver.url, hooks_=["order_pay_hook"])
        response = login.post("/settings/catalogue/stock_alarm_hook/test", data={"channel": str(channel_id)})
        assert response.status_code == 302 and "/deliveries/dlv_" in response.location
        delivery_id = response.location.rsplit("/", 1)[-1]
        run_worker(app)
        ((raw, _headers),) = receiver.received
        body = json.loads(raw)
        expected = schemas.example("stock_alarm_hook", test=True)
        assert {k: v for k, v in body.items() if k not in ("id", "created_at")} == \
            {k: v for k, v in expected.items() if k not in ("id", "created_at")}
        assert schemas.check_envelope("stock_alarm_hook", body) == []
        with app.app_context():
            delivery = db.session.get(Delivery, delivery_id)
            assert delivery.status == "delivered" and delivery.max_attempts == 1 and delivery.event.source == "test"
    finally:
        receiver.close()


@pytest.mark.parametrize("channel", ["", "abc", "999999", "1" * 30])
def test_a_missing_or_unknown_channel_is_refused_and_nothing_is_sent(app, login, channel):
    response = login.post("/settings/catalogue/order_pay_hook/test", data={"channel": channel})
    assert response.status_code == 302 and response.location.endswith("/settings/catalogue/#order_pay_hook")
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Delivery.id))) == 0


def test_a_disabled_channel_and_an_unknown_hook_are_refused(app, login, make_webhook):
    channel_id = make_webhook("https://off.example.com/h", enabled=False)
    login.post("/settings/catalogue/order_pay_hook/test", data={"channel": str(channel_id)})
    assert "Choose an enabled channel" in login.get("/settings/catalogue/").text
    assert login.post("/settings/catalogue/order_paid/test", data={"channel": str(channel_id)}).status_code == 404
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Delivery.id))) == 0


def test_the_test_needs_a_csrf_token_and_a_login(app_env, admin, make_webhook):
    from app import create_app

    app = create_app({"TESTING": True})  # CSRF on, as in production
    with app.app_context():
        channel = Channel(kind="webhook", config={"url": "https://a.example.com/h", "auth_mode": "signature"},
                          hooks=[], enabled=True)
        channel.secret = "whsec_test_secret_0123456789"
        db.session.add(channel)
        db.session.commit()
        channel_id = channel.id
    client = app.test_client()
    assert client.get("/settings/catalogue/").status_code == 302  # to the login page
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert client.post("/login", data=dict(admin, csrf_token=token)).status_code == 302
    assert client.post("/settings/catalogue/order_pay_hook/test", data={"channel": channel_id}).status_code == 400
    page = client.get("/settings/catalogue/").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/settings/catalogue/order_pay_hook/test", data={"channel": channel_id, "csrf_token": token})
    assert response.status_code == 302 and "/deliveries/dlv_" in response.location


def test_the_docs_and_the_page_share_one_source():
    """docs/webhooks.md's examples are `schemas.example`, regenerated by `python -m notify.schemas --write`."""
    text = schemas.DOCS_FILE.read_text(encoding="utf-8")
    section = text[text.index(schemas.EXAMPLES_BEGIN):text.index(schemas.EXAMPLES_END) + len(schemas.EXAMPLES_END)]
    assert section == schemas.examples_markdown()
    for hook in hooks.HOOKS:
        published = re.search(rf"#### `{hook.name}`.*?```json\n(.*?)```", section, re.S).group(1)
        assert json.loads(published) == schemas.example(hook.name)
