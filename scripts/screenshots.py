"""Screenshots of the main pages for the README, in English and Chinese, taken in headless
Chromium (Debian's package) driven by Playwright: `make screenshots` (writes docs/screenshots/).

Runs the whole product in a temporary folder (embedded Redis, SQLite, the receiver demo, a worker)
and drives it like a merchant: create the admin, add a WebHook to the demo, press Test, let the
demo shop make some traffic; then photographs each page in each language.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def wait_http(url: str) -> None:
    for _ in range(100):
        try:
            requests.get(url, timeout=0.5)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def main() -> None:
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT))
    from tests.conftest import free_port

    tmp = Path(tempfile.mkdtemp(prefix="mn-shots-"))
    port, demo_port = free_port(), free_port()
    env = dict(os.environ, INSTANCE_PATH=str(tmp), SECRET_KEY="screenshots", PYTHONUNBUFFERED="1",
               ALLOW_PRIVATE_TARGETS="1", MERCHANT_TIMEZONE="Asia/Shanghai", MERCHANT_NAME="Demo shop")
    env.pop("DATABASE_URL", None)
    # One embedded Redis for every process, started before them (as `make run` does): started by
    # each on its own, the admin and the worker could race and each start its own.
    from notify import embedded_redis

    env["REDIS_URL"] = embedded_redis.ensure_running(tmp / "redis")
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    secret = "whsec_screenshot_demo_secret_0123456789"
    procs = [
        subprocess.Popen([*flask, "run", "--port", str(port)], cwd=ROOT, env=env, stderr=subprocess.DEVNULL),
        subprocess.Popen([*flask, "worker"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "receiver_demo/receiver.py"], cwd=ROOT, stderr=subprocess.DEVNULL,
                         env=dict(env, RECEIVER_SECRET=secret, RECEIVER_PORT=str(demo_port),
                                  RECEIVER_LOG=str(tmp / "received.jsonl"))),
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/login")
        wait_http(f"http://127.0.0.1:{demo_port}/health")
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
            page.goto(base + "/")
            page.fill("#username", "merchant")
            page.fill("#password", "correct horse")
            page.fill("#confirm", "correct horse")
            page.click("button.primary")
            page.screenshot(path=str(OUT / "first-run.png"), full_page=True)
            page.click("text=Add WebHook")
            page.fill("#url", f"http://127.0.0.1:{demo_port}/webhook")
            page.fill("#description", "Receiver demo")
            page.fill("#secret", secret)
            page.click("button.primary")
            page.select_option("#hook", "order_pay_hook")
            page.get_by_role("button", name="Send test").click()  # the filters' help text names it too
            page.wait_for_selector("#result .badge-delivered", timeout=15000)
            subprocess.run([*flask, "demo", "seed"], cwd=ROOT, env=env, check=True, capture_output=True)
            time.sleep(3)  # the worker delivers the demo shop's events
            pages = {"dashboard": "/dashboard", "notifications": "/settings/notifications/",
                     "test-result": page.url.split(base)[1], "deliveries": "/deliveries/",
                     "dingtalk": "/settings/notifications/dingtalk/new"}
            for language, suffix in (("en", ""), ("zh_CN", "-zh")):
                for name, path in pages.items():
                    page.goto(f"{base}{path}{'&' if '?' in path else '?'}lang={language}")
                    page.screenshot(path=str(OUT / f"{name}{suffix}.png"), full_page=True)
            # The same session on a phone-sized screen (390 px), where tables become stacked rows.
            phone = browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
            phone.context.add_cookies(page.context.cookies())
            for name in ("notifications", "deliveries"):
                phone.goto(f"{base}{pages[name]}?lang=zh_CN")
                phone.screenshot(path=str(OUT / f"{name}-phone-zh.png"))
            browser.close()
        print(f"screenshots written to {OUT}")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        embedded_redis.stop(tmp / "redis")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
