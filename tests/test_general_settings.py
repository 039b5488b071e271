"""Settings › Configuration › General: the page in both languages, saving and its errors, the
password never shown, fields locked by the environment, the effective values reaching messages,
the daily report and the Email method (through a real SMTP server and a real worker process), and
the first run in Chinese."""
from __future__ import annotations

import html
import re
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from extensions import db
from models import Channel, Delivery, DeliveryStatus, Event, User
from notify import dispatch, hooks, shop_settings
from shop import report
from tests.conftest import SmtpServer, free_port
from tests.test_processes import flask_process, wait_for  # noqa: F401  (flask_process is a fixture)

URL = "/settings/general/"
PASSWORD = "qq-auth-code-4f8a2c9e1b7d"


def form_data(**overrides) -> dict:
    data = {"shop_name": "Shop", "currency": "CNY", "language": "en", "timezone": "UTC",
            "mail_server": "localhost", "mail_port": "25", "mail_security": "none", "mail_username": "",
            "mail_password": "", "mail_sender": "merchant-notify@localhost", "save": ""}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def effective(app) -> shop_settings.ShopSettings:
    with app.app_context():
        shop_settings.forget_cache()
        return shop_settings.effective()


def select_options(page: str, name: str) -> list[str]:
    block = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', page, re.S).group(1)
    return re.findall(r'<option[^>]*value="([^"]*)"', block)


def error_for(page: str, field: str) -> str:
    found = re.search(rf'<p class="error" id="{field}-error">(.*?)</p>', page, re.S)
    return html.unescape(found.group(1)) if found else ""


# -- The page ------------------------------------------------------------------------------
def test_the_page_in_english(login):
    page = login.get(URL).text
    assert "Settings › Configuration › General" in html.unescape(page)
    assert f'href="{URL}"' in page and 'aria-current="page">General</a>' in page  # in the header, beside Notifications
    assert select_options(page, "timezone")[0] == "UTC" and "Asia/Shanghai" in select_options(page, "timezone")
    assert select_options(page, "currency")[:4] == ["CNY", "USD", "EUR", "HKD"]
    assert "CNY — Chinese Yuan" in page
    assert select_options(page, "language") == ["en", "zh_CN"]
    # Presets carry their server for app.js; without JavaScript the Use button fills them in.
    assert 'data-host="smtp.qq.com" data-port="465" data-security="ssl"' in page
    assert 'data-host="smtp.gmail.com" data-port="587" data-security="starttls"' in page
    assert 'name="use_preset"' in page and "<script>" not in page.replace('<script src=', '')
    assert "smtp://localhost:25" in page


def test_the_page_in_chinese(login):
    page = login.get(URL + "?lang=zh_CN").text
    for text in ("设置 › 配置 › 常规", "店铺名称", "消息语言", "时区", "邮件服务器", "保存并发送测试邮件", "QQ 邮箱"):
        assert text in html.unescape(page), text
    assert select_options(page, "timezone")[0] == "Asia/Shanghai"
    assert "CNY — 人民币" in page


def test_saving_changes_the_effective_settings(app, login):
    response = login.post(URL, data=form_data(shop_name="  Demo   shop ", currency="usd", language="zh_CN",
                                              timezone="Asia/Shanghai", mail_server="smtp.qq.com", mail_port="465",
                                              mail_security="ssl", mail_username="12345@qq.com",
                                              mail_password=PASSWORD, mail_sender="12345@QQ.com"))
    assert response.status_code == 302
    settings = effective(app)
    assert (settings.shop_name, settings.currency, settings.language, settings.timezone) == (
        "Demo shop", "USD", "zh_CN", "Asia/Shanghai")
    assert settings.mail.describe() == "smtp://12345@qq.com@smtp.qq.com:465 SSL"
    assert settings.mail.password == PASSWORD and settings.mail.sender == "12345@qq.com"
    page = login.get(URL).text
    assert "Settings saved." in page and 'value="Demo shop"' in page
    # The notifications page says which server is in use, and links here.
    notifications = login.get("/settings/notifications/").text
    assert "smtp://12345@qq.com@smtp.qq.com:465 SSL" in notifications and f'href="{URL}#mail"' in notifications


@pytest.mark.parametrize("lang, expected", [
    ("en", {"timezone": "Choose a time zone from the list", "mail_port": "a number from 1 to 65535",
            "mail_sender": "not-an-address is not a valid email address", "shop_name": "Enter the shop's name",
            "mail_server": "letters, digits, dots and hyphens", "currency": "ISO 4217"}),
    ("zh_CN", {"timezone": "请从列表中选择时区", "mail_port": "1 到 65535", "mail_sender": "不是有效的电子邮件地址",
               "shop_name": "请输入店铺名称", "mail_server": "主机名只能包含", "currency": "ISO 4217 货币代码"}),
])
def test_errors_are_shown_next_to_their_fields_and_nothing_is_saved(app, login, lang, expected):
    login.get(URL + f"?lang={lang}")
    response = login.post(URL, data=form_data(shop_name=" ", currency="XYZ", timezone="Mars/Olympus_Mons",
                                              mail_server="smtp qq com", mail_port="99999",
                                              mail_sender="not-an-address", mail_password=PASSWORD))
    assert response.status_code == 200
    for field, text in expected.items():
        assert text in error_for(response.text, field), field
    assert PASSWORD not in response.text
    settings = effective(app)
    assert settings.timezone == "UTC" and settings.mail.port == 25 and settings.mail.password is None


def test_the_password_is_never_in_the_page_empty_keeps_it_and_it_can_be_cleared(app, login):
    login.post(URL, data=form_data(mail_username="shop@example.com", mail_password=PASSWORD))
    page = login.get(URL).text
    assert PASSWORD not in page and "••••••••1b7d" in page
    assert 'name="mail_password" type="password" value=""' in page
    login.post(URL, data=form_data(mail_username="shop@example.com", mail_password=""))  # empty keeps it
    assert effective(app).mail.password == PASSWORD
    # An invalid form shown again does not carry the typed password either.
    again = login.post(URL, data=form_data(mail_port="x", mail_password="typed-" + PASSWORD)).text
    assert PASSWORD not in again
    login.post(URL, data=form_data(mail_username="shop@example.com", clear_password="y"))
    assert effective(app).mail.password is None
    assert "Not saved yet." in login.get(URL).text


def test_a_preset_fills_in_the_server_without_javascript(app, login):
    page = login.post(URL, data=form_data(mail_preset="163", use_preset="", save=None)).text
    assert re.search(r'name="mail_server"[^>]*value="smtp.163.com"', page)
    assert re.search(r'name="mail_port"[^>]*value="465"', page)
    assert re.search(r'<input checked[^>]*value="ssl"|<input[^>]*value="ssl"[^>]*checked', page)
    assert "Filled in for 163 Mail" in page
    assert effective(app).mail.host == "localhost"  # nothing saved until Save


# -- The environment locks what it sets -------------------------------------------------------
@pytest.fixture
def locked_app(app, monkeypatch):
    """The same database, with an app whose environment sets the mail server and the time zone."""
    from app import create_app

    monkeypatch.setenv("MAIL_SERVER", "smtp.ops.example")
    monkeypatch.setenv("MAIL_PASSWORD", "env-password-0000")
    monkeypatch.setenv("MERCHANT_TIMEZONE", "Europe/Paris")
    return create_app({"TESTING": True, "WTF_CSRF_ENABLED": False})


def test_fields_set_in_the_environment_are_read_only(locked_app, admin):
    client = locked_app.test_client()
    client.post("/login", data=admin)
    page = html.unescape(client.get(URL).text)
    assert "Set by the MAIL_SERVER environment variable" in page and "smtp.ops.example" in page
    assert "Set by the MERCHANT_TIMEZONE environment variable" in page
    assert "Set by the MAIL_PASSWORD environment variable" in page and "env-password-0000" not in page
    assert 'name="mail_server"' not in page and 'name="timezone"' not in page and 'name="mail_password"' not in page
    assert 'name="mail_port"' in page  # not set there: the merchant's
    response = client.post(URL, data=form_data(mail_server="smtp.evil.example", timezone="Asia/Shanghai",
                                                mail_password="x", mail_port="2525"))
    assert response.status_code == 302
    settings = effective(locked_app)
    assert settings.mail.host == "smtp.ops.example" and settings.timezone == "Europe/Paris"
    assert settings.mail.password == "env-password-0000" and settings.mail.port == 2525
    with locked_app.app_context():  # nothing was stored for the locked fields
        assert db.session.get(shop_settings.Setting, "general.mail_server") is None


# -- The effective values reach messages, the report and the Email method ---------------------
def test_language_time_zone_and_shop_name_reach_an_email(app, worker, smtp_server, make_channel, login):
    login.post(URL, data=form_data(shop_name="小店", language="zh_CN", timezone="Asia/Shanghai",
                                   mail_server="127.0.0.1", mail_port=str(smtp_server.port),
                                   mail_sender="orders@example.com"))
    make_channel("email", {"recipients": ["owner@example.com"]})
    with app.app_context():
        ids = dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample).delivery_ids
    worker(until=lambda: len(smtp_server.messages) == 1)
    (message, envelope), = smtp_server.parsed()
    assert message["Subject"] == "[小店] 订单 AP202611271830001234 已支付 — ¥128.00"
    assert envelope.mail_from == "orders@example.com"
    text = message.get_body(("plain",)).get_content()
    assert "2026-11-27 18:31:12" in text and "Asia/Shanghai" in text  # 10:31:12 UTC in Beijing time
    with app.app_context():
        assert db.session.get(Delivery, ids[0]).status == DeliveryStatus.DELIVERED


def test_the_daily_report_follows_the_saved_time_zone_and_currency(app):
    with app.app_context():
        user = User(username="merchant", created_at=datetime(2026, 11, 1))
        user.set_password("correct horse")
        db.session.add(user)
        report.set_report_time("09:00")
        db.session.commit()
        # 01:00:30 UTC: not yet 09:00 in UTC (the default) ...
        now = datetime(2026, 11, 27, 1, 0, 30)
        assert report.latest_slot(now, ZoneInfo(shop_settings.effective().timezone), "09:00")[0].isoformat() == "2026-11-26"
        shop_settings.save({"timezone": "Asia/Shanghai", "currency": "HKD"})
        db.session.commit()
        # ... but 09:00:30 in Shanghai: the report of the 27th is due, on time.
        run = report.run_due(now=now)
        assert run.report_date == "2026-11-27" and not run.late
        data = db.session.get(Event, run.event_id).data
    assert data["timezone"] == "Asia/Shanghai" and data["currency"] == "HKD"


@pytest.mark.processes
def test_a_worker_process_sends_through_the_saved_mail_server_and_sees_changes(app, login, make_channel,
                                                                              flask_process):
    server = SmtpServer()
    try:
        login.post(URL, data=form_data(mail_server="127.0.0.1", mail_port=str(server.port),
                                       mail_sender="first@example.com"))
        make_channel("email", {"recipients": ["owner@example.com"]}, hooks_=["order_pay_hook"])
        flask_process("worker")
        with app.app_context():
            dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample)
        wait_for(lambda: len(server.messages) == 1)
        assert server.messages[0].mail_from == "first@example.com"
        # Changed on the page while the worker runs: it sees it without a restart.
        login.post(URL, data=form_data(mail_server="127.0.0.1", mail_port=str(server.port),
                                       mail_sender="second@example.com", shop_name="Renamed"))
        time.sleep(shop_settings.CACHE_SECONDS + 0.5)
        with app.app_context():
            dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample)
        wait_for(lambda: len(server.messages) == 2)
        (_, second), = [m for m in server.parsed() if m[1].mail_from != "first@example.com"]
        assert second.mail_from == "second@example.com"
        assert server.parsed()[1][0]["Subject"].startswith("[Renamed] ")
    finally:
        server.stop()


# -- Send test email ------------------------------------------------------------------------
def test_send_test_email_without_authentication(app, login):
    server = SmtpServer()
    try:
        response = login.post(URL, data=form_data(mail_server="127.0.0.1", mail_port=str(server.port),
                                                  mail_sender="shop@example.com", test_to="", send_test="",
                                                  save=None), follow_redirects=True)
    finally:
        server.stop()
    page = html.unescape(response.text)
    assert "A test email was sent to shop@example.com" in page  # default: the sender
    (message, envelope), = server.parsed()
    assert envelope.rcpt_tos == ["shop@example.com"] and message["Subject"] == "[Shop] Test email from merchant-notify"
    assert f"smtp://127.0.0.1:{server.port}" in message.get_content()


def authenticating_server() -> SmtpServer:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(_server, _session, _envelope, mechanism, data):
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"12345@qq.com", PASSWORD.encode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    return SmtpServer(auth_require_tls=False, auth_required=True, authenticator=check)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_send_test_email_with_authentication(app, login):
    server = authenticating_server()
    try:
        response = login.post(URL, data=form_data(mail_server="127.0.0.1", mail_port=str(server.port),
                                                  mail_username="12345@qq.com", mail_password=PASSWORD,
                                                  mail_sender="12345@qq.com", test_to="owner@example.com",
                                                  send_test="", save=None), follow_redirects=True)
    finally:
        server.stop()
    assert "A test email was sent to owner@example.com" in html.unescape(response.text)
    (_, envelope), = server.parsed()
    assert envelope.rcpt_tos == ["owner@example.com"] and PASSWORD not in response.text


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("lang, explained", [
    ("en", "check the user and the authorisation code (QQ Mail and 163 Mail need an authorisation code, not the "
           "login password)"),
    ("zh_CN", "请检查用户名和授权码（QQ 邮箱和 163 邮箱需要授权码，而不是登录密码）"),
])
def test_a_wrong_password_is_explained(app, login, lang, explained):
    server = authenticating_server()
    login.get(URL + f"?lang={lang}")
    try:
        response = login.post(URL, data=form_data(mail_server="127.0.0.1", mail_port=str(server.port),
                                                  mail_username="12345@qq.com", mail_password="the-login-password",
                                                  mail_sender="12345@qq.com", send_test="", save=None),
                              follow_redirects=True)
    finally:
        server.stop()
    page = html.unescape(response.text)
    assert explained in page and "535" in page and "the-login-password" not in page
    assert server.messages == []


def test_an_unreachable_mail_server_is_explained(app, login):
    response = login.post(URL, data=form_data(mail_server="127.0.0.1", mail_port=str(free_port()),
                                              mail_sender="shop@example.com", send_test="", save=None),
                          follow_redirects=True)
    page = html.unescape(response.text)
    assert "Connection refused" in page and "this server cannot reach the mail server" in page
    assert "Check the host, the port and the firewall" in page


def test_the_test_address_is_checked(app, login):
    response = login.post(URL, data=form_data(test_to="owner at example", send_test="", save=None))
    assert "is not a valid email address" in error_for(response.text, "test_to")


# -- First run -------------------------------------------------------------------------------
@pytest.mark.parametrize("accept, language, tz", [("zh-CN,zh;q=0.9", "zh_CN", "Asia/Shanghai"), ("en-US", "en", "UTC")])
def test_the_first_run_in_chinese_gets_chinese_messages_in_beijing_time(app, client, accept, language, tz):
    headers = {"Accept-Language": accept}
    assert "创建" in client.get("/setup", headers=headers).text or accept.startswith("en")
    response = client.post("/setup", headers=headers, data={"username": "merchant", "password": "correct horse",
                                                            "confirm": "correct horse"})
    assert response.status_code == 302
    settings = effective(app)
    assert (settings.language, settings.timezone) == (language, tz)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_new_merchant_makes_the_email_method_work_without_a_shell(app, client, worker):
    """From the setup page to an order email in the inbox, through pages only."""
    server = authenticating_server()
    try:
        client.post("/setup", data={"username": "merchant", "password": "correct horse", "confirm": "correct horse"})
        client.post(URL, data=form_data(mail_server="127.0.0.1", mail_port=str(server.port),
                                        mail_username="12345@qq.com", mail_password=PASSWORD,
                                        mail_sender="12345@qq.com"))
        client.post("/settings/notifications/email/new", data={"recipients": "owner@example.com",
                                                               "hooks": ["order_pay_hook"], "enabled": "y"})
        with app.app_context():
            channel_id = db.session.scalar(db.select(Channel.id).where(Channel.kind == "email"))
        test = client.post(f"/settings/notifications/channels/{channel_id}/test", data={"hook": "order_pay_hook"})
        assert test.status_code == 302
        worker(until=lambda: len(server.messages) == 1)
    finally:
        server.stop()
    (message, envelope), = server.parsed()
    assert envelope.rcpt_tos == ["owner@example.com"] and "[TEST]" in message["Subject"]
