"""Screenshots of the main pages for the README, taken in headless Chromium (Debian's package).

    .venv/bin/pip install playwright          # the Python API only: the browser is Debian's
    apt-get install chromium
    .venv/bin/python scripts/screenshots.py   # writes docs/screenshots/*.png

Runs the whole product in a temporary folder (embedded Redis, SQLite, the receiver demo, a worker)
and drives it like a merchant: create the admin, add a WebHook to the demo, press Test.
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
    env = dict(os.environ, INSTANCE_PATH=str(tmp), SECRET_KEY="screenshots", PYTHONUNBUFFERED="1")
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
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
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + "/")
            page.fill("#username", "merchant")
            page.fill("#password", "correct horse")
            page.fill("#confirm", "correct horse")
            page.click("button.primary")
            page.click("text=Add WebHook")
            page.fill("#url", f"http://127.0.0.1:{demo_port}/webhook")
            page.fill("#description", "Receiver demo")
            page.fill("#secret", secret)
            page.click("button.primary")
            page.select_option("#hook", "order_pay_hook")
            page.screenshot(path=str(OUT / "webhook.png"), full_page=True)
            page.click("text=Send test")
            page.wait_for_selector("text=Attempt 1", timeout=15000)
            page.screenshot(path=str(OUT / "test-result.png"), full_page=True)
            page.goto(base + "/settings/notifications/")
            page.screenshot(path=str(OUT / "notifications.png"), full_page=True)
            browser.close()
        print(f"screenshots written to {OUT}")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        from notify import embedded_redis

        embedded_redis.stop(tmp / "redis")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
