"""Every admin page in Chinese says nothing in English.

The catalogue tests (test_i18n.py) prove that each extracted text has a translation; they cannot
see text that never reaches the catalogue, or that is formatted before the reader's language is
known (a label built at import time). This test reads the pages as a person does: it renders every
admin page with `?lang=zh_CN` (forms with their errors shown too), keeps the text a person reads
(between tags, and the attributes people read), drops what is data (URLs, addresses, ids, hook
names in `code`, payloads in `pre`, the sample product's name), and fails on any run of two or more
English words that are not names of protocols and formats (ALLOWED).
"""
from __future__ import annotations

import re
from html.parser import HTMLParser


from extensions import db
from models import Channel, Delivery, DeliveryStatus, User
from notify import dispatch

# Names of protocols, formats and headers: they read the same in a Chinese text.
ALLOWED = {"WebHook", "WebHooks", "SMTP", "STARTTLS", "SSL", "TLS", "API", "URL", "URLs", "JSON", "HMAC-SHA256",
           "curl", "Bearer", "HTTP", "HTTPS", "POST", "GET", "IP", "ID", "SEC", "Base64", "UTC", "Unix",
           "merchant-notify", "APSDAI", "Markdown", "markdown", "English", "Prometheus", "Redis", "RQ", "QQ",
           "access_token", "key", "Content-Type", "User-Agent", "Retry-After", "Idempotency-Key", "Token",
           "Webhooks"}  # "Standard Webhooks", the name of a specification
HEADER = re.compile(r"^X-Apsdai-[A-Za-z0-9-]+$")
# The services have Chinese names, which a Chinese page uses: flagged even as a single word.
SERVICE_NAMES = {"DingTalk", "WeCom", "Email", "Feishu", "Lark"}
# Data a page shows as it is stored: the sample event's product, the test's own names.
DATA = re.compile(r"(?<![\w-])(?:VPN Monthly Plan|test shop|receiver demo|merchant)(?![\w-])")

SKIPPED_ELEMENTS = {"script", "style", "code", "pre", "kbd", "samp", "textarea"}
READ_ATTRIBUTES = ("placeholder", "title", "aria-label", "alt", "data-confirm", "data-pending")


class VisibleText(HTMLParser):
    """The pieces of text a person reads on a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in SKIPPED_ELEMENTS:
            self.skipping += 1
        for name in READ_ATTRIBUTES:
            if attrs.get(name):
                self.pieces.append(attrs[name])
        if tag == "input" and attrs.get("type") in ("submit", "button", "reset") and attrs.get("value"):
            self.pieces.append(attrs["value"])

    def handle_endtag(self, tag):
        if tag in SKIPPED_ELEMENTS and self.skipping:
            self.skipping -= 1

    def handle_data(self, data):
        if not self.skipping and data.strip():
            self.pieces.append(data)


def english_runs(html: str) -> list[str]:
    """Runs of 2+ consecutive English words (not ALLOWED, not data) in the page's visible text,
    and the services' English names alone."""
    parser = VisibleText()
    parser.feed(html)
    found = []
    for piece in parser.pieces:
        piece = DATA.sub(" | ", piece)
        # Data: URLs, email addresses, and tokens with digits, underscores or slashes (ids, hook
        # names, secrets, masked values, numbers, time zone names).
        piece = re.sub(r"\S*://\S*|\S+@\S+|\S*[0-9_/…•]\S*", " | ", piece)
        words = []
        for token in re.findall(r"[A-Za-z][A-Za-z'’-]*|[^\sA-Za-z]+", piece):
            if not re.match(r"[A-Za-z]", token) or token.strip("-") in ALLOWED or HEADER.match(token):
                words.append(None)  # punctuation, other scripts and allowed names break a run
            else:
                words.append(token)
        run: list[str] = []
        for word in words + [None]:
            if word is not None:
                run.append(word)
                continue
            if len(run) >= 2 or (run and run[0] in SERVICE_NAMES):
                found.append(" ".join(run))
            run = []
    return found


def test_the_check_finds_english_and_passes_chinese():
    assert english_runs('<p>订单 <b>Order Paid</b> (<code>order_pay_hook</code>)</p>') == ["Order Paid"]
    assert english_runs('<input placeholder="Type a name"><input type="submit" value="Send now">') == [
        "Type a name", "Send now"]
    assert english_runs('<button aria-label="Close menu">×</button>') == ["Close menu"]
    assert english_runs("<h2>DingTalk</h2><p>添加 WeCom</p>") == ["DingTalk", "WeCom"]
    # Allowed names, data, code and payloads are not flagged; nor is a single word.
    assert english_runs('<p>WebHook URL 已保存：https://erp.example.com/a b；发给 owner@example.com</p>'
                        '<pre>{"order": "sample text"}</pre><code>X-Apsdai-Event header</code>'
                        '<p>X-Apsdai-Token 是 HMAC-SHA256 签名</p><p>English</p>') == []
    assert english_runs("<script>var a = 'hello world';</script><p>VPN Monthly Plan 库存不足</p>"
                        "<button>退出 (merchant)</button>") == []


def zh(client, url: str, *, data=None, expect=200) -> str:
    separator = "&" if "?" in url else "?"
    response = (client.post(f"{url}{separator}lang=zh_CN", data=data) if data is not None
                else client.get(f"{url}{separator}lang=zh_CN"))
    assert response.status_code == expect, (url, response.status_code)
    return response.get_data(as_text=True)


DINGTALK_URL = "https://oapi.dingtalk.com/robot/send?access_token=4f1c2a9e0b7d4c3f8a6e5d2c1b0a9f8e"
WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7aaa-4bc4-97a0-0ec2sifa5aaa"
FEISHU_URL = "https://open.feishu.cn/open-apis/bot/v2/hook/b2c7e1f4-93a0-4d6e-8f15-7a2c9d0e3b48"
BAD_FORMS = {
    "webhooks": {"url": "ftp://example.com/x", "auth_mode": "signature", "secret": "", "hooks": [],
                 "rules_min_amount": "1.234", "rules_product_paths": "a/b", "quiet_from": "22:00", "quiet_to": ""},
    "dingtalk": {"url": "https://robot.example.com/robot/send?access_token=4f1c2a9e0b7d4c3f8a6e",
                 "secret": "abc", "keyword": "x" * 51, "keyword_position": "prefix", "mobiles_order": "12345",
                 "hooks": ["order_pay_hook"]},
    "wecom": {"url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?token=1", "mobiles_order": "12345",
              "user_ids_order": "li si!", "hooks": ["order_pay_hook"]},
    "email": {"recipients": "owner@example, @example.com, owner@", "hooks": ["order_pay_hook"]},
    "feishu": {"url": "https://bot.example.com/open-apis/bot/v2/hook/b2c7e1f4-93a0", "secret": "秘密!",
               "keyword": "x" * 51, "user_ids_order": "li si!", "hooks": ["order_pay_hook"]},
}


def pages(app, client, make_channel, receiver_demo, worker) -> dict[str, str]:
    """Every admin page, in Chinese, by a name for the report."""
    shown = {}
    shown["setup"] = zh(client, "/setup")
    shown["setup with errors"] = zh(client, "/setup", data={"username": "a b", "password": "short",
                                                            "confirm": "other"})
    with app.app_context():
        user = User(username="merchant")
        user.set_password("correct horse")
        db.session.add(user)
        db.session.commit()
    shown["login"] = zh(client, "/login")
    shown["login with errors"] = zh(client, "/login", data={"username": "", "password": ""})
    shown["login, wrong password"] = zh(client, "/login", data={"username": "merchant", "password": "nope"})
    assert client.post("/login", data={"username": "merchant", "password": "correct horse"}).status_code == 302

    demo = receiver_demo()
    ids = {"email": make_channel("email", {"recipients": ["owner@example.com"]}),
           "dingtalk": make_channel("dingtalk", {"url": DINGTALK_URL,
                                                 "mentions": {"order": {"mobiles": "13800000000"}}}),
           "wecom": make_channel("wecom", {"url": WECOM_URL, "mentions": {"order": {"user_ids": "zhangsan"}}}),
           "webhooks": make_channel("webhook", {"url": demo.url, "auth_mode": "signature"}, demo.secret),
           "feishu": make_channel("feishu", {"url": FEISHU_URL, "keyword": "订单",
                                             "mentions": {"inventory": {"all": True}}}, "Xy7Kq2Lm9Pn4Rs8T")}
    response = client.post(f"/settings/notifications/channels/{ids['webhooks']}/test", data={"hook": "order_pay_hook"})
    delivery_id = response.location.rsplit("/", 1)[-1]

    def delivered():
        with app.app_context():
            return db.session.get(Delivery, delivery_id).status == DeliveryStatus.DELIVERED

    worker(until=delivered)
    # Filters and quiet hours on every channel (their fieldset on the edit pages, the summary in
    # the list), and an event they all left out (its page's "filtered by" lines).
    with app.app_context():
        for channel in db.session.scalars(db.select(Channel)):
            channel.rules = {"min_amount": "100.00", "products": ["vpnmonthly"], "tests": False,
                             "quiet": {"from": "22:00", "to": "08:00", "urgent": ["stock_alarm_hook"]}}
        db.session.commit()
        left_out = dispatch.emit("order_pay_hook", {"order": {"order_no": "AP-SMALL", "amount": "5.00"}}).id
        test_event = db.session.get(Delivery, delivery_id).event_id

    shown["dashboard"] = zh(client, "/dashboard")
    shown["notifications"] = zh(client, "/settings/notifications/")
    shown["notifications, bad report time"] = zh(client, "/settings/notifications/report-time",
                                                 data={"time": "25:99"}, expect=302) and zh(
        client, "/settings/notifications/")
    for path, channel_id in ids.items():
        shown[f"{path}: new"] = zh(client, f"/settings/notifications/{path}/new")
        shown[f"{path}: edit"] = zh(client, f"/settings/notifications/{path}/{channel_id}")
        shown[f"{path}: new, with errors"] = zh(client, f"/settings/notifications/{path}/new", data=BAD_FORMS[path])
    shown["recovery"] = zh(client, f"/settings/notifications/channels/{ids['webhooks']}/recover")
    shown["signature check"] = zh(client, f"/settings/notifications/webhooks/{ids['webhooks']}/signature-check")
    shown["settings file"] = zh(client, "/settings/notifications/file")
    shown["event catalogue"] = zh(client, "/settings/catalogue/")
    shown["event catalogue, no channel chosen"] = zh(client, "/settings/catalogue/order_pay_hook/test", data={},
                                                     expect=302) and zh(client, "/settings/catalogue/")
    shown["settings file, no file"] = zh(client, "/settings/notifications/file/import", data={})
    shown["general"] = zh(client, "/settings/general/")
    shown["general with errors"] = zh(client, "/settings/general/", data={
        "shop_name": "", "currency": "XXX", "language": "xx", "timezone": "Mars/Base", "mail_server": "",
        "mail_port": "nope", "mail_security": "starttls", "mail_sender": "not-an-address", "save": ""})
    shown["deliveries"] = zh(client, "/deliveries/")
    shown["deliveries, a search"] = zh(client, "/deliveries/?q=AP-NO-SUCH-ORDER")
    shown["send these again"] = zh(client, "/deliveries/redeliver")
    shown["delivery"] = zh(client, f"/deliveries/{delivery_id}")
    shown["test result"] = zh(client, f"/deliveries/{delivery_id}/result")
    shown["event, left out by filters"] = zh(client, f"/deliveries/events/{left_out}")
    shown["event with its delivery"] = zh(client, f"/deliveries/events/{test_event}")
    shown["tokens"] = zh(client, "/settings/tokens/")
    shown["tokens with errors"] = zh(client, "/settings/tokens/", data={"name": ""})
    shown["change password"] = zh(client, "/account/password")
    shown["change password with errors"] = zh(client, "/account/password", data={
        "current": "", "password": "short", "confirm": "different"})
    shown["404"] = zh(client, "/no-such-page", expect=404)
    return shown


def test_every_admin_page_in_chinese_has_no_english_sentences(app, client, make_channel, receiver_demo, worker):
    shown = pages(app, client, make_channel, receiver_demo, worker)
    # The forms with errors did show them (else the check would miss the error texts).
    for name in ("setup with errors", "login with errors", "tokens with errors", "change password with errors",
                 "webhooks: new, with errors", "dingtalk: new, with errors", "wecom: new, with errors",
                 "email: new, with errors", "feishu: new, with errors", "general with errors",
                 "settings file, no file"):
        assert 'class="error' in shown[name], name
    found = {name: runs for name, html in shown.items() if (runs := english_runs(html))}
    report = "\n".join(f"  {name}: {' | '.join(dict.fromkeys(runs))}" for name, runs in found.items())
    assert not found, "English on Chinese pages:\n" + report


def test_a_failed_delivery_in_chinese_has_no_english_sentences(app, login, make_webhook, worker):
    from tests.conftest import free_port

    channel_id = make_webhook(f"http://127.0.0.1:{free_port()}/hook")  # nothing listens there
    response = login.post(f"/settings/notifications/channels/{channel_id}/test", data={"hook": "stock_alarm_hook"})
    delivery_id = response.location.rsplit("/", 1)[-1]

    def settled():
        with app.app_context():
            return db.session.get(Delivery, delivery_id).status not in DeliveryStatus.ACTIVE

    worker(until=settled)
    shown = {"deliveries": zh(login, "/deliveries/"), "failed delivery": zh(login, f"/deliveries/{delivery_id}"),
             "failed test result": zh(login, f"/deliveries/{delivery_id}/result")}
    found = {name: runs for name, html in shown.items() if (runs := english_runs(html))}
    assert not found, found
