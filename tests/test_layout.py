"""Every page is usable on a phone (390 px), a laptop (1280 px) and a large screen (1920 px), in
English and in Chinese (issue 13): measured in a real Chromium, on pages filled with the long
values a merchant really has (URLs with tokens, several email addresses, descriptions), and
deliveries so that every column has something in it. The error pages, the favicon and the empty
dashboard chart are checked here too (without a browser)."""
from __future__ import annotations

import re

import pytest

from tests.test_browser import browser, live  # noqa: F401  (fixtures)

WIDTHS = {390: 844, 1280: 900, 1920: 1080}
LANGUAGES = ("en", "zh_CN")

# Computed in the page. Returns a list of problems, each a short sentence naming the element.
CHECK_PAGE = r"""
() => {
  const vw = document.documentElement.clientWidth;
  const problems = [];
  const name = (el) => {
    const parts = [];
    for (let e = el; e && e.nodeType === 1 && e !== document.body && parts.length < 5; e = e.parentElement) {
      let part = e.tagName.toLowerCase();
      if (e.id) { parts.unshift(part + "#" + e.id); break; }
      const classes = Array.from(e.classList).slice(0, 2);
      if (classes.length) part += "." + classes.join(".");
      const parent = e.parentElement;
      if (parent && !classes.length && Array.from(parent.children).filter((c) => c.tagName === e.tagName).length > 1) {
        part += ":nth-child(" + (Array.from(parent.children).indexOf(e) + 1) + ")";
      }
      parts.unshift(part);
    }
    const text = (el.innerText || el.value || el.getAttribute("aria-label") || "").trim().replace(/\s+/g, " ");
    return parts.join(" > ") + (text ? ' "' + text.slice(0, 50) + '"' : "");
  };
  const shown = (el) => {
    if (!el.checkVisibility({visibilityProperty: true})) return false;
    const r = el.getBoundingClientRect();
    if (r.width <= 1 || r.height <= 1) return false;
    // Visually hidden on purpose (.sr-only, a stacked table's header): inside a 1 px clipping box.
    for (let e = el; e && e !== document.body; e = e.parentElement) {
      const b = e.getBoundingClientRect();
      if ((b.width <= 1 || b.height <= 1) && getComputedStyle(e).overflowX !== "visible") return false;
    }
    return true;
  };
  const clipping = (el) => {  // the ancestors that cut off what sticks out of them
    const found = [];
    for (let e = el.parentElement; e && e !== document.documentElement; e = e.parentElement) {
      const cs = getComputedStyle(e);
      if (cs.overflowX !== "visible" || cs.overflowY !== "visible") found.push([e, cs]);
    }
    return found;
  };
  const inner = (e) => {  // the padding box: where content is seen
    const r = e.getBoundingClientRect();
    const left = r.left + e.clientLeft, top = r.top + e.clientTop;
    return {left, top, right: left + e.clientWidth, bottom: top + e.clientHeight};
  };

  const width = document.documentElement.scrollWidth;
  if (width > vw + 1) {
    // Name the elements that stick out, innermost first, so the culprit is in the message.
    const out = Array.from(document.body.querySelectorAll("*")).filter((e) => {
      const r = e.getBoundingClientRect();
      return r.width > 0 && r.right > vw + 1;
    });
    const innermost = out.filter((e) => !out.some((o) => o !== e && e.contains(o)));
    problems.push("the page scrolls sideways: " + width + " px wide in a " + vw + " px window; sticking out: "
                  + innermost.slice(0, 3).map(name).join("; "));
  }

  for (const el of document.querySelectorAll("a[href], button, input:not([type=hidden]), select, textarea, summary")) {
    if (!shown(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.left < -1 || r.right > vw + 1) {
      problems.push("control outside the window (" + Math.round(r.left) + "–" + Math.round(r.right) + " px): " + name(el));
      continue;
    }
    for (const [box, cs] of clipping(el)) {
      const b = inner(box);
      const outX = cs.overflowX !== "visible" && (r.left < b.left - 1 || r.right > b.right + 1);
      const outY = cs.overflowY !== "visible" && (r.top < b.top - 1 || r.bottom > b.bottom + 1);
      if (outX || outY) { problems.push("control hidden or cut off by " + name(box).split(' "')[0] + ": " + name(el)); break; }
    }
  }

  for (const el of document.body.querySelectorAll("*")) {
    if (el.tagName === "PRE" || el instanceof SVGElement) continue;
    const cs = getComputedStyle(el);
    if ((cs.overflowX === "auto" || cs.overflowX === "scroll") && el.scrollWidth > el.clientWidth + 1 && shown(el)) {
      problems.push("scrolls sideways (" + el.scrollWidth + " px of content in " + el.clientWidth + " px): " + name(el).split(' "')[0]);
    }
  }

  // Text: never one letter per line, never running out of its box or cut off (an ellipsis is
  // fine when the full value is in a title).
  const byElement = new Map();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!node.data.trim() || !parent || parent instanceof SVGElement) continue;
    if (["SCRIPT", "STYLE", "OPTION", "TEXTAREA", "NOSCRIPT"].includes(parent.tagName)) continue;
    if (!byElement.has(parent)) byElement.set(parent, []);
    byElement.get(parent).push(node);
  }
  const range = document.createRange();
  for (const [el, nodes] of byElement) {
    if (!shown(el)) continue;
    const rects = [];
    for (const node of nodes) {
      range.selectNodeContents(node);
      for (const r of range.getClientRects()) if (r.width > 0) rects.push(r);
    }
    if (!rects.length) continue;
    const text = nodes.map((n) => n.data).join("").replace(/\s+/g, "");
    const lines = new Set(rects.map((r) => Math.round(r.top))).size;
    if (text.length >= 3 && lines >= 3 && text.length / lines < 2.5) {
      problems.push("text broken about one letter per line (" + text.length + " characters on " + lines + " lines): " + name(el));
      continue;
    }
    let block = el;
    while (block.parentElement && getComputedStyle(block).display.startsWith("inline") && !getComputedStyle(block).display.startsWith("inline-")) block = block.parentElement;
    const b = inner(block);
    const right = Math.max(...rects.map((r) => r.right)), left = Math.min(...rects.map((r) => r.left));
    if (getComputedStyle(block).overflowX === "visible" && (right > b.right + 2 || left < b.left - 2)) {
      problems.push("text runs out of its box by " + Math.round(Math.max(right - b.right, b.left - left)) + " px: " + name(el));
      continue;
    }
    for (const [box, cs] of clipping(el)) {
      if (cs.overflowX === "visible") continue;
      const c = inner(box);
      if (right > c.right + 2 || left < c.left - 2) {
        const ellipsised = cs.textOverflow === "ellipsis" && (el.closest("[title]") || box.closest("[title]"));
        if (!ellipsised) problems.push("text cut off by " + name(box).split(' "')[0] + ": " + name(el));
        break;
      }
    }
  }
  return problems;
}
"""


def page_problems(page) -> list[str]:
    """The problems on the page now, a table's rows with the same problem said once (with a count)."""
    counted: dict[str, int] = {}
    for problem in page.evaluate(CHECK_PAGE):
        key = re.sub(r"tr:nth-child\(\d+\)", "tr", problem)
        counted[key] = counted.get(key, 0) + 1
    return [f"{problem} (×{count})" if count > 1 else problem for problem, count in counted.items()]


def with_language(path: str, language: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}lang={language}"


LONG = {
    "webhook": "/integrations/merchant-notify/incoming-webhooks/orders-and-inventory-events"
               "?tenant=acme-international-trading-company-limited&signature_version=2",
    "emails": ["order-notifications.warehouse-team@very-long-company-domain-name.example.com",
               "finance.department.accounts-receivable@another-long-subsidiary-domain.example.org",
               "boss@example.com"],
    "description": "Orders, refunds and inventory alarms for the warehouse team in the Shenzhen office "
                   "(深圳办公室的仓库团队：订单、退款和库存告警)",
}
# Every filter and quiet hours: the longest summary a channel's row shows.
RULES = {"min_amount": "9999999.99", "products": ["vpnmonthly", "vpnyearly", "giftcard100"], "tests": False,
         "quiet": {"from": "22:30", "to": "07:45", "urgent": ["order_out_of_stock_hook", "stock_alarm_hook"]}}


@pytest.fixture
def filled_shop(app, live, local_receiver, dingtalk, wecom, feishu, smtp_server):
    """Channels of the five kinds with long targets, real deliveries to real servers on loopback
    (so "Last delivery" is filled, some delivered and some failed), a delivery with several attempts,
    and API tokens. Returns the paths of every page, by name."""
    from extensions import db
    from models import ApiToken, Channel, Delivery
    from notify import channels as channel_service
    from notify import dispatch, hooks
    from tests.conftest import run_worker

    receiver = local_receiver(lambda path, headers: (200, {"Content-Type": "application/json"}, b'{"ok":true}', 0))

    def make(kind, config, secret=None, description=LONG["description"]):
        channel = channel_service.apply(Channel(kind=kind), config=config, secret=secret, hooks_=list(hooks.HOOK_NAMES),
                                        enabled=True, description=description, rules_=RULES)
        db.session.add(channel)
        db.session.commit()
        return channel

    with app.app_context():
        webhook = make("webhook", {"url": receiver.url + LONG["webhook"], "auth_mode": "signature"},
                       secret="whsec_layout_secret_0123456789abcdef")
        # Nothing listens on port 9: every attempt fails with a long connection error.
        failing = make("webhook", {"url": "http://127.0.0.1:9/receivers/merchant-notify/failing-endpoint-with-a-long-path",
                                   "auth_mode": "password"}, secret="a-password-for-the-receiver")
        email = make("email", {"recipients": LONG["emails"]})
        ding = make("dingtalk", {"url": dingtalk.add_robot("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
                                 "keyword": "订单"})
        wecom_channel = make("wecom", {"url": wecom.add_robot("693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa-long-key")})
        feishu_channel = make("feishu", {"url": feishu.add_bot("b2c7e1f4-93a0-4d6e-8f15-7a2c9d0e3b48-long-token"),
                                         "keyword": "订单", "mentions": {"inventory": {"all": True}}},
                              secret="Xy7Kq2Lm9Pn4Rs8TfeishuLayout")
        channels = [webhook, failing, email, ding, wecom_channel, feishu_channel]
        test_ids = [channel_service.send_test(c, name) for c in channels for name in hooks.HOOK_NAMES[:6]]
        retried = dispatch.emit("order_pay_hook", hooks.get("order_pay_hook").sample, source="api",
                                channels=[failing]).delivery_ids[0]
        for name in ("Shop front (production, Shenzhen warehouse and the mini program)", "test"):
            token, _plain = ApiToken.issue(name)
            db.session.add(token)
        db.session.commit()
        ids = {c.kind + ("-failing" if c is failing else ""): c.id for c in channels}
        # Every channel's filters leave it out: the event's page lists five "filtered by" lines.
        left_out = dispatch.emit("order_pay_hook", {"order": {"order_no": "AP2026112718300012345678", "amount": "5.00",
                                                              "product": {"path": "vpnmonthly"}}}).id
        retried_event = db.session.get(Delivery, retried).event_id

    def retried_three_times():
        with app.app_context():
            return db.session.get(Delivery, retried).attempt_count >= 3

    run_worker(app, until=retried_three_times, timeout=30)
    base = "/settings/notifications"
    return {
        "dashboard": "/dashboard",
        "notifications": base + "/",
        **{f"{path} new": f"{base}/{path}/new" for path in ("webhooks", "email", "dingtalk", "wecom", "feishu")},
        "webhook edit": f"{base}/webhooks/{ids['webhook']}",
        "signature check": f"{base}/webhooks/{ids['webhook']}/signature-check",
        "email edit": f"{base}/email/{ids['email']}",
        "dingtalk edit": f"{base}/dingtalk/{ids['dingtalk']}",
        "wecom edit": f"{base}/wecom/{ids['wecom']}",
        "feishu edit": f"{base}/feishu/{ids['feishu']}",
        "recovery": f"{base}/channels/{ids['webhook-failing']}/recover",
        "settings file": f"{base}/file",
        "event catalogue": "/settings/catalogue/",
        "general": "/settings/general/",
        "deliveries": "/deliveries/",
        "deliveries, a search": "/deliveries/?q=AP-NO-SUCH-ORDER",
        "send these again": "/deliveries/redeliver",
        "delivery with attempts": f"/deliveries/{retried}",
        "a Test's result": f"/deliveries/{test_ids[0]}",
        "event, left out by filters": f"/deliveries/events/{left_out}",
        "event with its deliveries": f"/deliveries/events/{retried_event}",
        "tokens": "/settings/tokens/",
        "change password": "/account/password",
        "404": "/no-such-page",
    }


@pytest.mark.browser
def test_every_page_fits_every_width_in_both_languages(browser, live, app, filled_shop):  # noqa: F811
    from extensions import db
    from models import User

    problems = []
    contexts = []
    console = []

    def tab(width):
        context = browser.new_context(viewport={"width": width, "height": WIDTHS[width]}, locale="en-US")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15000)
        page.on("console", lambda message: console.append(message.text)
                if message.type == "error" and "Content Security Policy" in message.text else None)
        page.on("pageerror", lambda error: console.append(str(error)))
        # Nothing a page loads by itself (stylesheet, script) may fail.
        page.on("response", lambda response: console.append(f"{response.status} for {response.url}")
                if response.status >= 400 and response.request.resource_type != "document" else None)
        return page

    def check(page, label, path, width, language):
        response = page.goto(live + with_language(path, language))
        assert response.status == (404 if label == "404" else 200), (label, response.status, page.url)
        # Headless Chromium does not fetch icons: ask for the page's own, as a browser with tabs would.
        assert page.evaluate("fetch(document.querySelector('link[rel=icon]').href).then((r) => r.status)") == 200
        for problem in page_problems(page):
            problems.append(f"{label} ({path}) at {width} px, {language}: {problem}")

    try:
        logged_out = {width: tab(width) for width in WIDTHS}
        for width, page in logged_out.items():  # the first run: no account yet
            for language in LANGUAGES:
                check(page, "setup", "/setup", width, language)
        with app.app_context():
            user = User(username="merchant-with-a-rather-long-name")
            user.set_password("correct horse")
            db.session.add(user)
            db.session.commit()
        for width, page in logged_out.items():
            for language in LANGUAGES:
                check(page, "login", "/login", width, language)
            page.fill("#username", "merchant-with-a-rather-long-name")
            page.fill("#password", "correct horse")
            page.click("main form button.primary")
            page.wait_for_url(lambda url: "/login" not in url)
            for language in LANGUAGES:
                for label, path in filled_shop.items():
                    check(page, label, path, width, language)
    finally:
        for context in contexts:
            context.close()
    assert console == []
    assert problems == [], "\n" + "\n".join(problems)


# -- error pages, the favicon, the empty chart (no browser needed) ---------------------------

def test_an_unknown_page_is_a_translated_page_in_the_products_look(client, admin):
    page = client.get("/no-such-page")
    html = page.get_data(as_text=True)
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "Page not found" in html and 'href="/static/app.css"' in html and 'class="topbar"' in html
    assert '<a class="button primary" href="/">Go to the home page</a>' in html
    chinese = client.get("/no-such-page?lang=zh_CN").get_data(as_text=True)
    assert "页面不存在" in chinese and "返回首页" in chinese and '<html lang="zh-CN">' in chinese


def test_a_wrong_method_and_an_expired_form_are_pages_too(app, login):
    page = login.get("/logout")  # logging out is a POST
    assert page.status_code == 405 and "Not allowed" in page.get_data(as_text=True)
    assert "POST" in page.headers["Allow"]
    app.config["WTF_CSRF_ENABLED"] = True
    expired = login.post("/settings/tokens/", data={"name": "no token in this form"})
    assert expired.status_code == 400 and "The form has expired" in expired.get_data(as_text=True)


def test_the_api_keeps_its_json_errors(client, api_token):
    unknown = client.get("/api/v1/no-such-thing")
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == "not_found"
    wrong_method = client.delete("/api/v1/events", headers={"Authorization": f"Bearer {api_token}"})
    assert wrong_method.status_code == 405 and wrong_method.json["error"]["code"] == "method_not_allowed"


@pytest.fixture
def crashing_app(app_env, admin):
    """An app as in production (exceptions become 500s), with a page and an API path that crash."""
    from app import create_app

    app = create_app({"TESTING": False, "PROPAGATE_EXCEPTIONS": False})
    for path in ("/boom", "/api/v1/boom"):
        app.add_url_rule(path, path, lambda: 1 / 0)
    return app


def test_a_crash_is_a_translated_500_page_and_json_under_the_api(crashing_app):
    client = crashing_app.test_client()
    page = client.get("/boom", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 500 and "出错了" in page.get_data(as_text=True)
    assert 'class="topbar"' in page.get_data(as_text=True)
    api = client.get("/api/v1/boom")
    assert api.status_code == 500 and api.json["error"]["code"] == "internal_server_error"


def test_when_even_the_error_page_fails_a_bare_one_answers(crashing_app, monkeypatch):
    from notify import shop_settings

    def settings_unreadable():
        raise RuntimeError("the database is down")

    monkeypatch.setattr(shop_settings, "effective", settings_unreadable)  # the footer reads them
    page = crashing_app.test_client().get("/boom")
    html = page.get_data(as_text=True)
    assert page.status_code == 500 and "Something went wrong" in html and "Go to the home page" in html
    assert "Times are shown in" not in html  # the bare page: no footer, no settings


def test_the_favicon_is_served_and_linked(client):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml" and b"<svg" in icon.data
    assert client.get("/static/favicon.svg").status_code == 200
    login_page = client.get("/setup").get_data(as_text=True)
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in login_page


def test_an_empty_dashboard_chart_says_so(login):
    html = login.get("/dashboard").get_data(as_text=True)
    assert "No data yet" in html and "<svg" not in html
    assert "暂无数据" in login.get("/dashboard?lang=zh_CN").get_data(as_text=True)
