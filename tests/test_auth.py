"""First run, login, access rules and CSRF."""
import re

import pytest

from extensions import db
from models import User

PROTECTED = [
    ("GET", "/settings/notifications/"),
    ("GET", "/settings/notifications/webhooks/new"),
    ("POST", "/settings/notifications/webhooks/new"),
    ("GET", "/settings/notifications/webhooks/1"),
    ("GET", "/settings/notifications/webhooks/1/secret"),
    ("POST", "/settings/notifications/webhooks/1/regenerate"),
    ("POST", "/settings/notifications/channels/1/toggle"),
    ("POST", "/settings/notifications/channels/1/delete"),
    ("POST", "/settings/notifications/channels/1/test"),
    ("GET", "/deliveries/"),
    ("GET", "/deliveries/dlv_x"),
    ("GET", "/deliveries/dlv_x/result"),
    ("POST", "/deliveries/dlv_x/redeliver"),
    ("POST", "/deliveries/dlv_x/curl"),
    ("GET", "/settings/catalogue/"),
    ("POST", "/settings/catalogue/order_pay_hook/test"),
    ("GET", "/settings/tokens/"),
    ("POST", "/settings/tokens/"),
    ("POST", "/settings/tokens/1/revoke"),
    ("GET", "/settings/notifications/file"),
    ("GET", "/settings/notifications/file/export"),
    ("POST", "/settings/notifications/file/import"),
    ("GET", "/settings/general/"),
    ("POST", "/settings/general/"),
    ("GET", "/account/password"),
    ("POST", "/account/password"),
    ("POST", "/logout"),
]


def test_fresh_install_asks_for_the_admin_account(client):
    response = client.get("/settings/notifications/")
    assert response.status_code == 302 and response.location.endswith("/setup")
    page = client.get("/setup").text
    assert "Create the admin account" in page or "Create account" in page


def test_setup_validates_next_to_the_field_and_creates_the_admin(client, app):
    page = client.post("/setup", data={"username": "boss", "password": "short", "confirm": "other"}).text
    assert "Use at least 8 characters." in page and "The two passwords differ." in page
    response = client.post("/setup", data={"username": "boss", "password": "longenough", "confirm": "longenough"})
    assert response.status_code == 302 and response.location.endswith("/settings/notifications/")
    assert client.get("/settings/notifications/").status_code == 200  # logged in straight away
    with app.app_context():
        user = db.session.scalar(db.select(User))
        assert user.username == "boss" and user.password_hash != "longenough" and user.check_password("longenough")
    # Once an admin exists the setup page is closed.
    assert client.get("/setup").location.endswith("/login")


@pytest.mark.parametrize("method, url", PROTECTED)
def test_admin_pages_require_login(client, admin, method, url):
    response = client.open(url, method=method)
    assert response.status_code == 302 and "/login" in response.location


def test_wrong_password_is_refused_with_a_message(client, admin):
    page = client.post("/login", data={"username": admin["username"], "password": "nope"}).text
    assert "Wrong username or password." in page
    assert client.get("/settings/notifications/").status_code == 302


def test_login_redirects_only_to_local_next(client, admin):
    response = client.post("/login?next=https://evil.example/", data=admin)
    assert response.location == "/settings/notifications/"
    client.post("/logout")
    response = client.post("/login?next=/deliveries/", data=admin)
    assert response.location == "/deliveries/"


def test_logout_is_a_post(login):
    assert login.get("/logout").status_code == 405
    assert login.post("/logout").status_code == 302
    assert login.get("/settings/notifications/").status_code == 302


def test_create_admin_cli(runner, app):
    result = runner.invoke(args=["create-admin", "ops", "--password", "s3cret-pass"])
    assert result.exit_code == 0 and "Admin 'ops' created." in result.output
    result = runner.invoke(args=["create-admin", "ops", "--password", "another-pass"])
    assert "password updated" in result.output
    with app.app_context():
        assert db.session.scalar(db.select(User).filter_by(username="ops")).check_password("another-pass")
    result = runner.invoke(args=["create-admin", "x", "--password", "short"])
    assert result.exit_code != 0 and "at least 8 characters" in result.output


def test_every_post_requires_a_csrf_token(app_env, admin):
    from app import create_app

    app = create_app({"TESTING": True})  # CSRF on, as in production
    client = app.test_client()
    assert client.post("/login", data=admin).status_code == 400  # no token
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert client.post("/login", data=dict(admin, csrf_token=token)).status_code == 302
    assert client.post("/settings/tokens/", data={"name": "x"}).status_code == 400
