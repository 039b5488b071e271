"""The Settings › Configuration › Notifications page and the WebHook form."""
import re

import pytest

from extensions import db
from models import Channel, Delivery, DeliveryStatus
from notify import hooks

ALL_HOOKS = list(hooks.HOOK_NAMES)


def field_errors(html: str) -> list[str]:
    return re.findall(r'<p class="error"[^>]*>([^<]*)</p>', html)


def form(**overrides):
    data = {"url": "https://erp.example.com/hooks/apsdai", "auth_mode": "signature", "secret": "whsec_typed_secret_1234",
            "description": "ERP", "hooks": ALL_HOOKS, "enabled": "y"}
    data.update(overrides)
    return data


def test_page_shows_the_four_methods_and_the_hook_table(login):
    page = login.get("/settings/notifications/").text
    for method in ("Email", "DingTalk", "WeCom", "WebHook"):
        assert f"<h2>{method}</h2>" in page
    assert "coming soon" not in page
    for kind, label in (("email", "Email"), ("dingtalk", "DingTalk"), ("wecom", "WeCom"), ("webhooks", "WebHook")):
        assert f'href="/settings/notifications/{kind}/new">Add {label}</a>' in page
    for name in ALL_HOOKS:
        assert f"<code>{name}</code>" in page
    assert "Usually one commonly used method is enough" in page


def test_create_webhook_then_it_is_listed_enabled(login, app):
    response = login.post("/settings/notifications/webhooks/new", data=form())
    assert response.status_code == 302
    with app.app_context():
        channel = db.session.scalar(db.select(Channel))
        assert (channel.kind, channel.target, channel.secret, channel.enabled) == (
            "webhook", "https://erp.example.com/hooks/apsdai", "whsec_typed_secret_1234", True)
        assert channel.hooks == ALL_HOOKS and channel.config["auth_mode"] == "signature"
    page = login.get("/settings/notifications/").text
    assert "https://erp.example.com/hooks/apsdai" in page and "9 / 9" in page and "none yet" in page


@pytest.mark.parametrize("overrides, field_id, message", [
    ({"url": "not a url"}, "url", "The URL must not contain spaces."),
    ({"url": "erp.example.com/hook"}, "url", "This is not a valid URL"),
    ({"url": "ftp://erp.example.com/hook"}, "url", "Only http:// and https:// URLs are supported, not ftp://."),
    ({"url": ""}, "url", "Enter the URL that should receive the WebHook."),
    ({"secret": ""}, "secret", "A signature needs a secret: type one or press Generate."),
    ({"secret": "", "auth_mode": "password"}, "secret", "Enter the password to send."),
    ({"secret": "密码123", "auth_mode": "password"}, "secret", "which carries only Latin-1 characters"),
    ({"hooks": []}, None, "Choose at least one event."),
])
def test_invalid_input_is_explained_next_to_the_field(login, app, overrides, field_id, message):
    response = login.post("/settings/notifications/webhooks/new", data=form(**overrides))
    assert response.status_code == 200
    assert any(message in error for error in field_errors(response.text)), field_errors(response.text)
    if field_id:
        assert f'id="{field_id}-error"' in response.text
    # What the merchant typed is still there.
    if overrides.get("url"):
        assert f'value="{overrides["url"]}"' in response.text
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Channel.id))) == 0


def _create(login, app, **overrides) -> int:
    assert login.post("/settings/notifications/webhooks/new", data=form(**overrides)).status_code == 302
    with app.app_context():
        return db.session.scalar(db.select(Channel.id).order_by(Channel.id.desc()))


def test_secret_is_masked_after_saving_and_revealed_on_request(login, app):
    channel_id = _create(login, app)
    page = login.get(f"/settings/notifications/webhooks/{channel_id}").text
    assert "whsec_typed_secret_1234" not in page
    assert "••••••••1234" in page
    response = login.get(f"/settings/notifications/webhooks/{channel_id}/secret")
    assert response.json == {"secret": "whsec_typed_secret_1234"}
    assert response.headers["Cache-Control"] == "no-store"


def test_blank_secret_on_edit_keeps_the_saved_one(login, app):
    channel_id = _create(login, app)
    response = login.post(f"/settings/notifications/webhooks/{channel_id}",
                          data=form(secret="", url="https://erp.example.com/v2", hooks=["order_pay_hook"]))
    assert response.status_code == 302
    with app.app_context():
        channel = db.session.get(Channel, channel_id)
        assert channel.secret == "whsec_typed_secret_1234"
        assert channel.target == "https://erp.example.com/v2" and channel.hooks == ["order_pay_hook"]


def test_regenerate_replaces_the_secret_with_a_strong_one(login, app):
    channel_id = _create(login, app)
    assert login.post(f"/settings/notifications/webhooks/{channel_id}/regenerate", data={"window": "0"}).status_code == 302
    with app.app_context():
        channel = db.session.get(Channel, channel_id)
        assert channel.secret != "whsec_typed_secret_1234" and channel.secret.startswith("whsec_")
        assert len(channel.secret) >= 40 and not channel.rotating()


def test_rotation_keeps_the_old_secret_signing_for_the_window(login, app):
    channel_id = _create(login, app)
    response = login.post(f"/settings/notifications/webhooks/{channel_id}/regenerate", data={"window": "24"},
                          follow_redirects=True)
    assert "For 24 hours the old one keeps signing" in response.text
    assert "Rotation in progress: the old secret (••••••••1234)" in response.text
    with app.app_context():
        channel = db.session.get(Channel, channel_id)
        assert channel.previous_secret == "whsec_typed_secret_1234" and channel.rotating()


def test_toggle_disables_and_enables(login, app):
    channel_id = _create(login, app)
    login.post(f"/settings/notifications/channels/{channel_id}/toggle")
    with app.app_context():
        assert db.session.get(Channel, channel_id).enabled is False
    assert "disabled" in login.get("/settings/notifications/").text
    login.post(f"/settings/notifications/channels/{channel_id}/toggle")
    with app.app_context():
        assert db.session.get(Channel, channel_id).enabled is True


def test_delete_cancels_pending_deliveries_and_keeps_history(login, app):
    channel_id = _create(login, app)
    with app.app_context():
        from notify import dispatch

        (delivery_id,) = dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample).delivery_ids
    assert login.post(f"/settings/notifications/channels/{channel_id}/delete").status_code == 302
    with app.app_context():
        assert db.session.get(Channel, channel_id) is None
        delivery = db.session.get(Delivery, delivery_id)
        assert delivery.status == DeliveryStatus.CANCELLED and delivery.channel_id is None
        assert delivery.target == "https://erp.example.com/hooks/apsdai"


def test_unknown_channel_is_404(login):
    assert login.get("/settings/notifications/webhooks/999").status_code == 404
    assert login.post("/settings/notifications/channels/999/test", data={"hook": "order_pay_hook"}).status_code == 404


def test_static_assets_are_served_locally(login):
    page = login.get("/settings/notifications/").text
    assert "http://" not in re.sub(r'href="http[^"]*"', "", "".join(re.findall(r'<(?:link|script)[^>]*>', page)))
    assert login.get("/static/app.css").status_code == 200
    assert login.get("/static/app.js").status_code == 200


# -- DingTalk, WeCom and Email forms ---------------------------------------------------------------
DINGTALK_URL = "https://oapi.dingtalk.com/robot/send?access_token=4f1c2a9e0b7d4c3f8a6e5d2c1b0a9f8e"
WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7aaa-4bc4-97a0-0ec2sifa5aaa"


def robot_form(**overrides):
    data = {"url": DINGTALK_URL, "secret": "", "keyword": "", "keyword_position": "prefix", "hooks": ALL_HOOKS,
            "enabled": "y"}
    data.update(overrides)
    return data


def test_dingtalk_saved_with_mentions_per_group_and_token_never_shown_again(login, app):
    response = login.post("/settings/notifications/dingtalk/new", data=robot_form(
        secret="SECabcdef0123456789", keyword="订单", at_all_inventory="y", mobiles_order="13800000000，13900000000"))
    assert response.status_code == 302
    with app.app_context():
        channel = db.session.scalar(db.select(Channel))
        assert channel.kind == "dingtalk" and channel.secret == "SECabcdef0123456789"
        assert channel.config["mentions"] == {
            "order": {"all": False, "mobiles": ["13800000000", "13900000000"], "user_ids": []},
            "inventory": {"all": True, "mobiles": [], "user_ids": []}}
    for page in (login.get("/settings/notifications/").text, login.get(response.location).text):
        assert "4f1c2a9e0b7d4c3f8a6e5d2c1b0a9f8e" not in page and "access_token=••••••••9f8e" in page
        assert "SECabcdef0123456789" not in page
    # Editing with the URL and secret left blank keeps both.
    assert login.post(response.location, data=robot_form(url="", keyword="订单")).status_code == 302
    with app.app_context():
        channel = db.session.scalar(db.select(Channel))
        assert channel.config["url"] == DINGTALK_URL and channel.secret == "SECabcdef0123456789"
        assert channel.config["mentions"] == {}  # the mention fields were sent empty this time


@pytest.mark.parametrize("path, overrides, field_id, message", [
    ("dingtalk", {"url": "https://oapi.dingtalk.com/robot/send"}, "url", "The URL has no access_token"),
    ("dingtalk", {"secret": "abc"}, "secret", "A DingTalk signing secret starts with SEC"),
    ("dingtalk", {"mobiles_order": "12345, 13800000000, call-me"}, "mobiles_order",
     "Not a mobile number: 12345, call-me."),
    ("dingtalk", {"keyword": "x" * 51}, "keyword", "at most 50 characters"),
    ("wecom", {"url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?token=1"}, "url", "The URL has no key"),
    ("wecom", {"url": WECOM_URL, "user_ids_statistics": "li si! _x"}, "user_ids_statistics", "Not a user id: si!, _x."),
    ("email", {"recipients": "owner@example.com, not-an-address"}, "recipients", "Not a valid email address"),
    ("email", {"recipients": ""}, "recipients", "Enter at least one email address."),
])
def test_channel_forms_explain_bad_input_next_to_the_field(login, app, path, overrides, field_id, message):
    response = login.post(f"/settings/notifications/{path}/new", data=robot_form(**overrides))
    assert response.status_code == 200
    assert any(message in error for error in field_errors(response.text)), field_errors(response.text)
    assert f'id="{field_id}-error"' in response.text
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Channel)) == 0


def test_email_page_names_the_mail_server_but_never_the_password(login, app):
    app.config.update(MAIL_SERVER="smtp.example.com", MAIL_PORT=587, MAIL_USE_TLS=True, MAIL_USERNAME="shop",
                      MAIL_PASSWORD="hunter2-secret")
    response = login.post("/settings/notifications/email/new",
                          data={"recipients": "Owner@Example.com\nops@example.com", "hooks": ALL_HOOKS, "enabled": "y"})
    assert response.status_code == 302
    for page in (login.get("/settings/notifications/").text, login.get(response.location).text):
        assert "smtp://shop@smtp.example.com:587 STARTTLS" in page and "hunter2" not in page
    assert "Owner@example.com, ops@example.com" in login.get("/settings/notifications/").text


def test_each_kind_has_its_test_button(login, app, make_channel):
    ids = [make_channel("email", {"recipients": ["owner@example.com"]}),
           make_channel("dingtalk", {"url": DINGTALK_URL}), make_channel("wecom", {"url": WECOM_URL})]
    for channel_id, path in zip(ids, ("email", "dingtalk", "wecom")):
        page = login.get(f"/settings/notifications/{path}/{channel_id}").text
        assert f'action="/settings/notifications/channels/{channel_id}/test"' in page
        response = login.post(f"/settings/notifications/channels/{channel_id}/test", data={"hook": "stock_alarm_hook"})
        assert response.status_code == 302 and "/deliveries/dlv_" in response.location
    # A channel's page is only reachable under its own kind.
    assert login.get(f"/settings/notifications/wecom/{ids[0]}").status_code == 404
    assert login.get("/settings/notifications/sms/new").status_code == 404


def test_daily_report_time_is_set_on_the_page(login, app):
    page = login.get("/settings/notifications/").text
    assert 'id="daily-report"' in page and 'value="09:00"' in page and "No report sent yet." in page
    response = login.post("/settings/notifications/report-time", data={"time": "25:00"}, follow_redirects=True)
    assert "Use HH:MM, from 00:00 to 23:59." in response.text
    response = login.post("/settings/notifications/report-time", data={"time": "20:30"}, follow_redirects=True)
    assert "The daily report will be sent at 20:30 (UTC)." in response.text and 'value="20:30"' in response.text
    from shop import report
    with app.app_context():
        assert report.report_time() == "20:30"


def test_a_fresh_install_explains_itself_and_adds_the_receiver_demo_in_one_click(login, app, worker, receiver_demo):
    page = login.get("/settings/notifications/").text
    assert "Getting started" in page and "Add the receiver demo as a WebHook" not in page  # no demo configured
    demo = receiver_demo()
    app.config.update(RECEIVER_DEMO_URL=demo.url, RECEIVER_DEMO_SECRET=demo.secret)  # as `make run` sets them
    assert "Add the receiver demo as a WebHook" in login.get("/settings/notifications/").text
    response = login.post("/settings/notifications/webhooks/demo")
    assert response.status_code == 302
    channel_id = int(response.location.rsplit("/", 1)[-1])
    test = login.post(f"/settings/notifications/channels/{channel_id}/test", data={"hook": "order_pay_hook"})
    worker()
    assert "HTTP 200" in login.get(test.location + "/result").text
    assert [e["event"] for e in demo.events()] == ["order_pay_hook"]
    assert "Getting started" not in login.get("/settings/notifications/").text


# -- Mistakes the forms catch ----------------------------------------------------------------------
def channel_count(app) -> int:
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(Channel))


@pytest.mark.parametrize("path, url, official", [
    ("dingtalk", "https://robot.example.com/robot/send?access_token=4f1c2a9e0b7d4c3f8a6e5d2c", "oapi.dingtalk.com"),
    ("wecom", "https://wecom-gateway.example.com/cgi-bin/webhook/send?key=693a91f6-7aaa-4bc4", "qyapi.weixin.qq.com"),
])
def test_a_robot_url_on_another_host_is_saved_only_once_confirmed(login, app, path, url, official):
    response = login.post(f"/settings/notifications/{path}/new", data=robot_form(url=url))
    assert response.status_code == 200 and channel_count(app) == 0
    errors = field_errors(response.text)
    assert any(f"is not" in e and official in e and url.split("/")[2] in e for e in errors), errors
    assert 'id="url-error"' in response.text and 'name="confirm_host"' in response.text
    assert "Use this address anyway" in response.text
    # Confirmed: saved as typed.
    response = login.post(f"/settings/notifications/{path}/new", data=robot_form(url=url, confirm_host="y"))
    assert response.status_code == 302 and channel_count(app) == 1
    with app.app_context():
        assert db.session.scalar(db.select(Channel)).config["url"] == url
    # Editing it later, with the URL left blank or typed again as it is, does not ask again.
    assert login.post(response.location, data=robot_form(url="")).status_code == 302
    assert login.post(response.location, data=robot_form(url=url)).status_code == 302
    # The service's own host is never questioned, and the form does not offer the checkbox.
    own = login.post(f"/settings/notifications/{path}/new", data=robot_form(url=DINGTALK_URL if path == "dingtalk"
                                                                             else WECOM_URL))
    assert own.status_code == 302 and channel_count(app) == 2
    assert 'name="confirm_host"' not in login.get(f"/settings/notifications/{path}/new").text


def test_a_confirmed_robot_url_still_goes_through_the_guard(login, app):
    app.config["ALLOW_PRIVATE_TARGETS"] = False
    url = "http://169.254.169.254/robot/send?access_token=4f1c2a9e0b7d4c3f8a6e5d2c"
    response = login.post("/settings/notifications/dingtalk/new", data=robot_form(url=url, confirm_host="y"))
    assert response.status_code == 200 and channel_count(app) == 0
    assert 'id="url-error"' in response.text and "is not" not in " ".join(field_errors(response.text))


def test_the_host_warning_and_the_checkbox_are_in_chinese(login, app):
    url = "https://robot.example.com/robot/send?access_token=4f1c2a9e0b7d4c3f8a6e5d2c"
    page = login.post("/settings/notifications/dingtalk/new?lang=zh_CN", data=robot_form(url=url)).text
    assert "robot.example.com 不是钉钉的地址（oapi.dingtalk.com）" in page and "仍然使用此地址" in page


@pytest.mark.parametrize("mobile, ok", [
    ("13800000000", True), ("19912345678", True), ("+85261234567", True), ("+852-61234567", True),
    ("+8613800000000", True), ("+12025550123", True),
    ("12345", False), ("12800000000", False), ("1380000000", False), ("138000000001", False), ("+1234567", False),
    ("+1234567890123456", False), ("+0123456789", False), ("138-0000-0000", False), ("call-me", False),
])
def test_mobiles_are_mainland_11_digits_or_e164(mobile, ok):
    from notify.channels.dingtalk.transport import DingTalkTransport
    from notify.channels.wecom.transport import WeComTransport

    for transport in (DingTalkTransport, WeComTransport):
        errors = transport.validate({"url": DINGTALK_URL if transport is DingTalkTransport else WECOM_URL,
                                     "mentions": {"order": {"mobiles": mobile}}}, None)
        assert ("mentions_order" not in errors) is ok, (transport.kind, mobile, errors)
        if not ok:
            assert f"Not a mobile number: {mobile}." in errors["mentions_order"]


def test_bad_mobiles_and_user_ids_are_each_named_next_to_their_own_field_in_chinese(login, app):
    page = login.post("/settings/notifications/wecom/new?lang=zh_CN", data=robot_form(
        url=WECOM_URL, mobiles_order="12345，13800000000 555", user_ids_order="zhangsan -lisi")).text
    errors = field_errors(page)
    assert any(e.startswith("不是手机号：12345, 555。") for e in errors), errors
    assert any(e.startswith("不是用户 ID：-lisi。") for e in errors), errors
    assert 'id="mobiles_order-error"' in page and 'id="user_ids_order-error"' in page
    assert channel_count(app) == 0


@pytest.mark.parametrize("typed, english, chinese", [
    ("owner@example", "owner@example: the part after the @ must be a domain with a dot, like example.com",
     "owner@example：@ 后面必须是带点号的域名，例如 example.com"),
    ("owner.example.com", "owner.example.com: there is no @", "owner.example.com：缺少 @"),
    ("@example.com", "@example.com: there is nothing before the @", "@example.com：@ 前面没有内容"),
    ("owner..x@example.com", "owner..x@example.com: a dot or a hyphen is out of place", "owner..x@example.com：点号或连字符的位置不对"),
    ("Owner <owner@example.com>", "write the address alone, without a name or &lt; &gt;", "只写地址本身"),
])
def test_email_addresses_are_explained_in_our_words(login, app, typed, english, chinese):
    data = {"recipients": f"ok@example.com, {typed}", "hooks": ALL_HOOKS, "enabled": "y"}
    page = login.post("/settings/notifications/email/new", data=data).text
    assert english in page and "@-sign" not in page
    page = login.post("/settings/notifications/email/new?lang=zh_CN", data=data).text
    assert chinese in page and "@-sign" not in page
    assert channel_count(app) == 0


def test_the_test_picker_is_labelled_in_the_readers_language(login, app, make_channel):
    channel_id = make_channel("email", {"recipients": ["owner@example.com"]})
    page = login.get(f"/settings/notifications/email/{channel_id}?lang=zh_CN").text
    assert '<option selected value="order_pay_hook">订单支付 (order_pay_hook)</option>' in page
    page = login.get(f"/settings/notifications/email/{channel_id}?lang=en").text
    assert '<option selected value="order_pay_hook">Order Paid (order_pay_hook)</option>' in page


def test_wtforms_own_messages_are_translated(client, admin):
    page = client.post("/login?lang=zh_CN", data={"username": "", "password": ""}).text
    assert "该字段是必填字段。" in page and "This field is required." not in page


def test_an_unknown_admin_page_is_explained_in_the_readers_language(client, admin):
    response = client.get("/no-such-page?lang=zh_CN")
    assert response.status_code == 404 and "页面不存在" in response.text and "Not Found" not in response.text
    # The API keeps answering JSON.
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404 and response.is_json
