"""End to end in a real browser: Debian's Chromium driven by Playwright, against the admin served on
loopback, with a real worker process, the receiver demo and the fake DingTalk.

Where Chromium or Playwright is missing these tests are skipped with a loud message, unless
MN_REQUIRE_BROWSER=1 (CI sets it through .ci/run): then they fail. `make test` installs Debian's
chromium package where it can."""
from __future__ import annotations

import os
import re
import shutil
import threading
import warnings

import pytest
from werkzeug.serving import make_server

from tests.test_processes import flask_process  # noqa: F401  (a fixture)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.browser


def _browser_missing() -> str | None:
    if not os.path.exists(CHROMIUM):
        return "Chromium is not installed (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -r requirements-dev.txt)"
    return None


@pytest.fixture(scope="module")
def browser():
    missing = _browser_missing()
    if missing:
        if os.environ.get("MN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests are required here but cannot run: {missing}")
        warnings.warn(f"BROWSER TESTS SKIPPED: {missing}")
        pytest.skip(f"BROWSER TESTS SKIPPED: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


@pytest.fixture
def live(app):
    """The admin served by a real HTTP server on loopback."""
    app.config["WTF_CSRF_ENABLED"] = True  # as in production: the forms carry their tokens
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def page(browser, live):
    """A browser tab; at the end, no page may have had anything refused by the
    Content-Security-Policy (Chromium reports each refusal on the console) or a script error."""
    context = browser.new_context(locale="en-US", viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    problems = []
    page.on("console", lambda message: problems.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    yield page
    context.close()
    assert problems == []


def create_admin(page, live):
    page.goto(live + "/")
    assert "/setup" in page.url  # a fresh install starts with the account
    page.fill("#username", "merchant")
    page.fill("#password", "correct horse")
    page.fill("#confirm", "correct horse")
    page.click("main form button.primary")
    page.wait_for_url(re.compile(r"/settings/notifications/$"))


def test_first_run_login_webhook_test_deliveries_and_redeliver(page, live, app, receiver_demo, flask_process):
    demo = receiver_demo()
    flask_process("worker")
    create_admin(page, live)
    assert page.is_visible("text=Getting started")
    # Log out and in again.
    page.click("button:has-text('Log out')")
    page.fill("#username", "merchant")
    page.fill("#password", "correct horse")
    page.click("button:has-text('Log in')")
    page.wait_for_url(re.compile(r"/settings/notifications/$"))
    # A WebHook to the receiver demo, then Test: the result panel turns to success by itself.
    page.click("text=Add WebHook")
    page.fill("#url", demo.url)
    page.fill("#secret", demo.secret)
    page.click("button:has-text('Save')")
    page.wait_for_url(re.compile(r"/webhooks/\d+$"))
    page.select_option("#hook", "order_pay_hook")
    page.click("button:has-text('Send test')")
    page.wait_for_selector("#result .badge-delivered")
    assert "HTTP 200" in page.inner_text("#result")
    assert [e["event"] for e in demo.events()] == ["order_pay_hook"]
    # The delivery history, and a redelivery with the same id.
    page.click("nav >> text=Deliveries")
    page.click("table a >> nth=0")
    delivery_id = page.url.rsplit("/", 1)[-1]
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Redeliver')")
    page.wait_for_selector("text=Attempt 2")
    assert delivery_id in page.url
    # The curl command: masked, until Reveal credentials.
    page.click("#reproduce summary")
    assert "X-Apsdai-Token: ••••••••" in page.inner_text("#curl")
    page.click("#reproduce button:has-text('Reveal credentials')")
    page.wait_for_selector("#reproduce details[open]")
    assert "••••" not in page.inner_text("#curl")
    # The dashboard's chart.
    page.click("nav >> text=Dashboard")
    assert page.locator("svg[data-chart] rect.bar-ok").count() == 14


def test_the_secret_reveal_and_generate_buttons_work_under_the_policy(page, live, app, make_webhook):
    create_admin(page, live)
    channel_id = make_webhook("http://127.0.0.1:9/hook", secret="whsec_browser_secret_0123456789")
    page.goto(f"{live}/settings/notifications/webhooks/{channel_id}")
    page.click("button[data-reveal]")
    page.wait_for_selector("text=whsec_browser_secret_0123456789")
    page.goto(live + "/settings/notifications/webhooks/new")
    page.click("[data-generate]")
    assert page.input_value("#secret").startswith("whsec_")


def test_a_password_change_in_the_browser_logs_out_the_other_browser(browser, page, live, app):
    create_admin(page, live)
    other = browser.new_context(locale="en-US")
    other.add_cookies(page.context.cookies())  # a copy of the session cookie
    other_page = other.new_page()
    other_page.goto(live + "/dashboard")
    assert other_page.url.endswith("/dashboard")
    page.click("nav >> text=Change password")
    page.fill("#current", "correct horse")
    page.fill("#password", "a brand new one")
    page.fill("#confirm", "a brand new one")
    page.click("main form button.primary")
    page.wait_for_selector("text=Your password is changed.")
    other_page.goto(live + "/dashboard")
    assert "/login" in other_page.url
    other.close()


def test_dingtalk_with_a_wrong_secret_is_explained(page, live, app, dingtalk, flask_process):
    flask_process("worker")
    url = dingtalk.add_robot("browsertoken0001", secret="SEC0123456789abcdef0123456789")
    create_admin(page, live)
    page.click("text=Add DingTalk")
    page.fill("#url", url)
    page.fill("#secret", "SEC9999999999wrongwrongwrong")
    page.click("button:has-text('Save')")
    # The fake service is on loopback, not oapi.dingtalk.com: the form asks to confirm the address.
    page.wait_for_selector("text=Use this address anyway")
    page.check("#confirm_host")
    page.click("button:has-text('Save')")
    page.wait_for_url(re.compile(r"/dingtalk/\d+$"))
    page.click("button:has-text('Send test')")
    page.wait_for_selector("#result .badge-failed")
    assert "Signature does not match: check the secret" in page.inner_text("#result")
    page.goto(live + "/settings/notifications/")
    assert page.is_visible("#method-dingtalk >> text=needs attention")


def test_the_language_switch_translates_every_page_and_is_remembered(page, live, app):
    create_admin(page, live)
    page.click("text=中文")
    assert page.locator("h1").first.inner_text() == "通知"
    assert page.get_attribute("html", "lang") == "zh-CN"
    page.click("nav >> text=投递记录")
    assert "投递记录" in page.inner_text("h1")
    assert page.is_visible(".langs >> text=English")


def test_the_pages_fit_a_phone(browser, live, app):
    context = browser.new_context(viewport={"width": 375, "height": 740}, locale="zh-CN")
    phone = context.new_page()
    create_admin(phone, live)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 375 + 1  # nothing forces sideways scrolling
    assert phone.locator("h1").first.inner_text() == "通知"  # the browser's language, from the start
    context.close()
