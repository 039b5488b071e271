"""Locks on the admin's door (issue 12): security headers on every response, sessions that end,
logins that cost the same for known and unknown users, throttled password guessing, and
credentials in the curl block only after an explicit reveal."""
from __future__ import annotations

import pytest

EXPECTED_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def assert_security_headers(response):
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.status_code, response.request.path)


# -- headers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method, url, status", [
    ("GET", "/login", 302),
    ("GET", "/dashboard", 200),
    ("GET", "/settings/notifications/", 200),
    ("GET", "/static/app.css", 200),
    ("GET", "/static/app.js", 200),
    ("GET", "/no-such-page", 404),
    ("GET", "/logout", 405),
    ("POST", "/api/v1/events", 401),
    ("GET", "/metrics", 200),
])
def test_every_response_carries_the_security_headers(login, method, url, status):
    response = login.open(url, method=method)
    assert response.status_code == status
    assert_security_headers(response)


def test_a_server_error_carries_them_too(app_env, admin):
    from app import create_app

    app = create_app({"TESTING": False, "PROPAGATE_EXCEPTIONS": False})

    @app.route("/boom")
    def boom():
        raise RuntimeError("boom")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert_security_headers(response)


def test_no_template_has_inline_script_or_style():
    """What the policy forbids must not be in the pages: it would be silently blocked."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "templates"
    offending = []
    for path in root.rglob("*.html"):
        if "messages" in path.relative_to(root).parts:
            continue  # email bodies, not pages: mail clients need inline styles
        text = path.read_text()
        for pattern in (r"\sstyle\s*=", r"<style", r"\son[a-z]+\s*=", r"<script(?![^>]*\ssrc=)", r"javascript:"):
            if re.search(pattern, text, re.IGNORECASE):
                offending.append((str(path.relative_to(root)), pattern))
    assert offending == []


# -- sessions --------------------------------------------------------------------------------

def _session_cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _copy_of(app, cookie: str):
    """Another browser (or a thief) holding a copy of the cookie."""
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other


def test_a_copied_cookie_stops_working_at_logout(app, login):
    copy = _copy_of(app, _session_cookie(login))
    assert copy.get("/settings/notifications/").status_code == 200  # the copy works while logged in
    assert login.post("/logout").status_code == 302
    response = copy.get("/settings/notifications/")
    assert response.status_code == 302 and "/login" in response.location
    assert login.get("/settings/notifications/").status_code == 302


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(app, login, admin):
    copy = _copy_of(app, _session_cookie(login))
    assert copy.get("/dashboard").status_code == 200
    page = login.get("/account/password").text
    assert "Current password" in page
    response = login.post("/account/password", data={"current": admin["password"], "password": "a new secret",
                                                     "confirm": "a new secret"})
    assert response.status_code == 302
    assert "Your password is changed." in login.get(response.location).text
    assert login.get("/settings/notifications/").status_code == 200  # this browser stays logged in
    response = copy.get("/settings/notifications/")
    assert response.status_code == 302 and "/login" in response.location
    # The new password is the one that works now.
    fresh = app.test_client()
    assert fresh.post("/login", data=admin).status_code == 200
    assert fresh.post("/login", data={"username": admin["username"], "password": "a new secret"}).status_code == 302


def test_changing_the_password_needs_the_current_one(app, login, admin):
    page = login.post("/account/password", data={"current": "not it", "password": "a new secret",
                                                 "confirm": "a new secret"}).text
    assert "This is not your current password." in page
    page = login.post("/account/password", data={"current": admin["password"], "password": "a new secret",
                                                 "confirm": "another"}).text
    assert "The two passwords differ." in page
    with app.app_context():
        from extensions import db
        from models import User

        assert db.session.scalar(db.select(User)).check_password(admin["password"])


def test_the_header_links_to_the_password_page(login):
    assert 'href="/account/password"' in login.get("/dashboard").text


def test_a_new_password_from_the_command_line_ends_sessions_too(app, login, runner, admin):
    assert login.get("/dashboard").status_code == 200
    result = runner.invoke(args=["create-admin", admin["username"], "--password", "from the shell"])
    assert result.exit_code == 0, result.output
    assert login.get("/dashboard").status_code == 302


def test_a_cookie_with_the_bare_user_id_is_refused(app, admin):
    """Sessions from before session versions (or forged ids without one) do not log anyone in."""
    client = app.test_client()
    with app.app_context():
        from extensions import db
        from models import User

        user_id = db.session.scalar(db.select(User.id))
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)
        session["_fresh"] = True
    assert client.get("/dashboard").status_code == 302
    with client.session_transaction() as session:
        session["_user_id"] = f"{user_id}:1"
    assert client.get("/dashboard").status_code == 200


# -- known and unknown usernames cost the same -----------------------------------------------

def test_an_unknown_username_checks_a_hash_of_the_same_method(client, admin, monkeypatch):
    import models.users

    checked = []
    real = models.users.check_password_hash

    def counting(pwhash, password):
        checked.append(pwhash.split("$")[0])  # the method and its parameters, e.g. scrypt:32768:8:1
        return real(pwhash, password)

    monkeypatch.setattr(models.users, "check_password_hash", counting)
    client.post("/login", data={"username": admin["username"], "password": "wrong"})
    assert len(checked) == 1
    client.post("/login", data={"username": "nobody-by-this-name", "password": "wrong"})
    assert len(checked) == 2 and checked[0] == checked[1]


def test_known_and_unknown_usernames_take_about_as_long(client, admin):
    """Loosely, from the outside: before, a known username took ~30 times as long as an unknown one."""
    import statistics
    import time

    def timed(username):
        started = time.perf_counter()
        client.post("/login", data={"username": username, "password": "wrong"})
        return time.perf_counter() - started

    known, unknown = [], []
    for _ in range(5):  # interleaved, so load on the machine affects both alike
        known.append(timed(admin["username"]))
        unknown.append(timed("nobody-by-this-name"))
    ratio = statistics.median(known) / statistics.median(unknown)
    assert 1 / 3 < ratio < 3, (known, unknown)


# -- throttled password guessing -------------------------------------------------------------

def _wrong(client, username="merchant", **kwargs):
    return client.post("/login", data={"username": username, "password": "wrong guess"}, **kwargs)


def test_wrong_passwords_for_one_username_are_refused_after_ten(client, admin):
    answers = [_wrong(client).status_code for _ in range(12)]
    assert answers == [200] * 10 + [429] * 2
    response = client.post("/login", data=admin)  # the right password too, until the window passes
    assert response.status_code == 429
    page = response.text
    assert "Too many failed attempts. Try again in 15 minutes." in page
    # Next to the password field, in the form that keeps the username typed.
    assert 'id="password-error"' in page and 'value="merchant"' in page
    assert 890 <= int(response.headers["Retry-After"]) <= 900
    assert client.get("/settings/notifications/").status_code == 302
    # Another username from the same address is still answered (its own count, and the
    # address's 30 are not used up).
    assert _wrong(client, "someone-else").status_code == 200


def test_the_right_password_works_again_once_the_window_passes(app, client, admin):
    app.config.update(LOGIN_FAILURES_PER_USERNAME=3, LOGIN_FAILURE_WINDOW=2)
    assert [_wrong(client).status_code for _ in range(4)] == [200, 200, 200, 429]
    response = client.post("/login", data=admin)
    assert response.status_code == 429 and 1 <= int(response.headers["Retry-After"]) <= 2
    assert "Try again in 1 minute." in response.text
    import time

    time.sleep(2.1)
    assert client.post("/login", data=admin).status_code == 302


def test_a_successful_login_does_not_count(app, client, admin):
    app.config.update(LOGIN_FAILURES_PER_USERNAME=2)
    for _ in range(4):
        assert client.post("/login", data=admin).status_code == 302
        client.post("/logout")
    assert _wrong(client).status_code == 200


def test_one_address_gets_thirty_failures_whatever_the_usernames(client, admin):
    answers = [_wrong(client, f"user{n}").status_code for n in range(31)]
    assert answers == [200] * 30 + [429]
    assert _wrong(client, "user-new").status_code == 429
    # Another address is not held up by it.
    assert client.post("/login", data=admin, environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 302


def test_the_setup_page_is_throttled_by_address(client):
    bad = {"username": "boss", "password": "short", "confirm": "other"}
    answers = [client.post("/setup", data=bad).status_code for _ in range(31)]
    assert answers == [200] * 30 + [429]
    good = {"username": "boss", "password": "longenough", "confirm": "longenough"}
    response = client.post("/setup", data=good)
    assert response.status_code == 429 and "Too many failed attempts." in response.text


def test_the_password_change_is_throttled_by_username(login, admin):
    def attempt(current):
        return login.post("/account/password", data={"current": current, "password": "a new secret",
                                                     "confirm": "a new secret"})

    assert [attempt("not it").status_code for _ in range(11)] == [200] * 10 + [429]
    response = attempt(admin["password"])
    assert response.status_code == 429
    assert 'id="current-error"' in response.text and "Too many failed attempts." in response.text


def test_the_message_is_translated(client, admin):
    for _ in range(10):
        _wrong(client)
    page = _wrong(client, headers={"Accept-Language": "zh-CN"}).text
    assert "失败次数过多" in page


def test_each_app_counts_apart(app, client, admin, redis_url, queue_name):
    """Keys carry RQ_QUEUE: two installs on one Redis (and two tests) do not share counts."""
    import redis

    _wrong(client)
    keys = [k.decode() for k in redis.Redis.from_url(redis_url).scan_iter(f"*{queue_name}:username:*")]
    assert len(keys) == 1 and admin["username"] not in keys[0]


def test_logins_work_while_redis_is_down(app_env, admin, caplog):
    """The limiter fails open: without Redis there is no throttle, but the merchant can log in."""
    from app import create_app
    from tests.conftest import free_port

    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    client = app.test_client()
    with caplog.at_level("ERROR", logger="flask-limiter"):
        assert _wrong(client).status_code == 200
        assert client.post("/login", data=admin).status_code == 302
    assert "Failed to rate limit" in caplog.text


@pytest.mark.processes
def test_from_outside_two_gunicorn_workers_share_the_count(app_env, admin, tmp_path):
    """The admin as deployed (gunicorn, two worker processes, CSRF on), guessed at over HTTP: the
    count lives in Redis, so the 11th wrong password is refused whichever process answers it. (The
    window is 10 s here; refusals cost no hash, so the 30 attempts take well under that.)"""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    import requests

    from tests.conftest import ROOT, free_port

    port = free_port()
    log = open(tmp_path / "gunicorn.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                               "app:create_app()"], cwd=ROOT, env={**os.environ, **app_env,
                                                                   "LOGIN_FAILURE_WINDOW": "10"},
                              stdout=log, stderr=log, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(base + "/login", timeout=5)
                break
            except (requests.ConnectionError, requests.Timeout):
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)

        def attempt(password):
            browser = requests.Session()  # a new connection each time: either worker may answer
            token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                              browser.get(base + "/login", timeout=5).text).group(1)
            return browser.post(base + "/login", data={"username": admin["username"], "password": password,
                                                        "csrf_token": token}, allow_redirects=False, timeout=5)

        answers = [attempt("wrong guess").status_code for _ in range(30)]
        assert answers.index(429) == 10 and set(answers[10:]) == {429}
        refused = attempt(admin["password"])
        assert refused.status_code == 429 and "Too many failed attempts." in refused.text
        assert refused.headers["Content-Security-Policy"].startswith("default-src 'self'")
        time.sleep(int(refused.headers["Retry-After"]) + 0.2)
        assert attempt(admin["password"]).status_code == 302
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)


# -- credentials in the curl block only after a reveal ---------------------------------------

CURL_SECRET = "whsec_curl_block_secret_0123456789"


def _curl_block(page: str) -> str:
    import html
    import re

    return html.unescape(re.search(r'<pre class="code" id="curl">(.*?)</pre>', page, re.S).group(1))


def _run(command: str):
    """The command as the merchant would paste it into a shell."""
    import subprocess

    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=20)


def _test_delivery(login, channel_id: int) -> str:
    response = login.post(f"/settings/notifications/channels/{channel_id}/test", data={"hook": "order_pay_hook"})
    assert response.status_code == 302
    return response.location.rsplit("/", 1)[-1]


def test_a_test_results_curl_is_masked_until_revealed_and_then_works(login, receiver_demo, make_webhook):
    demo = receiver_demo(secret=CURL_SECRET)
    delivery_id = _test_delivery(login, make_webhook(demo.url, secret=CURL_SECRET))
    page = login.get(f"/deliveries/{delivery_id}").text
    masked = _curl_block(page)
    assert CURL_SECRET not in page
    assert "'X-Apsdai-Token: ••••••••" in masked and "'X-Apsdai-Signature-256: ••••••••" in masked
    assert "Reveal credentials" in page
    # The masked command is refused by the receiver: it holds no credential.
    assert '"ok":false' in _run(masked).stdout
    assert [e for e in demo.events() if e["verified"]] == []

    response = login.post(f"/deliveries/{delivery_id}/curl")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    revealed = _curl_block(response.text)
    assert "••••" not in revealed and "Reveal credentials" not in response.text
    assert '"ok":true' in _run(revealed).stdout
    (received,) = [e for e in demo.events() if e["verified"]]
    assert received["delivery"] == delivery_id


def test_a_deliverys_curl_hides_the_password_until_revealed(login, api_token, make_webhook):
    make_webhook("http://127.0.0.1:9/hook", secret="the-receivers-password", auth_mode="password")
    response = login.post("/api/v1/events", json={"event": "order_create_hook", "data": {"order": {"order_no": "A1"}}},
                          headers={"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 202
    from extensions import db
    from models import Delivery

    with login.application.app_context():
        delivery_id = db.session.scalar(db.select(Delivery.id))
    page = login.get(f"/deliveries/{delivery_id}").text
    assert "the-receivers-password" not in page and "X-Apsdai-Token: ••••••••word" in _curl_block(page)
    revealed = login.post(f"/deliveries/{delivery_id}/curl").text
    assert "'X-Apsdai-Token: the-receivers-password'" in _curl_block(revealed)


def test_a_robots_key_stays_masked_in_the_curl_until_revealed(login, make_channel, dingtalk):
    url = dingtalk.add_robot("robot-token-0123456789abcdef")
    delivery_id = _test_delivery(login, make_channel("dingtalk", {"url": url}))
    page = login.get(f"/deliveries/{delivery_id}").text
    assert "robot-token-0123456789abcdef" not in page
    assert "access_token=••••••••cdef" in _curl_block(page)
    assert "access_token=robot-token-0123456789abcdef" in _curl_block(login.post(f"/deliveries/{delivery_id}/curl").text)


def test_the_reveal_needs_a_csrf_token(app_env, admin, make_webhook):
    import re

    from app import create_app

    app = create_app({"TESTING": True})  # CSRF on, as in production
    client = app.test_client()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', client.get("/login").text).group(1)
    assert client.post("/login", data=dict(admin, csrf_token=token)).status_code == 302
    channel_id = make_webhook("http://127.0.0.1:9/hook", secret=CURL_SECRET)
    page = client.get("/settings/notifications/").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    delivery_id = client.post(f"/settings/notifications/channels/{channel_id}/test",
                              data={"hook": "order_pay_hook", "csrf_token": token}).location.rsplit("/", 1)[-1]
    assert client.post(f"/deliveries/{delivery_id}/curl").status_code == 400  # no token: refused
    response = client.post(f"/deliveries/{delivery_id}/curl", data={"csrf_token": token})
    assert response.status_code == 200 and "••••" not in _curl_block(response.text)


@pytest.mark.parametrize("url, secret", [
    ("https://oapi.dingtalk.com/robot/send?access_token=abcd1234SECRETtoken", "abcd1234SECRETtoken"),
    ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=0a1b2c3d-SECRET-key", "0a1b2c3d-SECRET-key"),
    ("https://open.feishu.cn/open-apis/bot/v2/hook/b2c7e1f4-SECRET-hook", "b2c7e1f4-SECRET-hook"),
])
def test_a_network_error_quoting_the_request_keeps_the_robots_credential_out(url, secret):
    """urllib3's words can quote the request (`Max retries exceeded with url: /robot/send?access_token=…`);
    the reason stored with the attempt and shown on pages must not carry the credential."""
    from urllib.parse import urlsplit

    from urllib3.exceptions import MaxRetryError

    from notify import http

    parts = urlsplit(url)
    quoted = parts.path + (f"?{parts.query}" if parts.query else "")
    why = http._describe(MaxRetryError(None, quoted, reason="boom"), url, 5.0, 10.0)
    assert secret not in repr(why.to_json()) and secret not in why.english()
    assert why.to_json()["params"]["host"] == parts.netloc  # the host is still named
