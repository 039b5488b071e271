"""A minimal receiver for APSDAI webhooks: verifies, de-duplicates and logs them, and shows them.

Run: RECEIVER_SECRET=... python receiver.py   (see README.md for every setting)
"""
from __future__ import annotations

import json
import os
import threading
from collections import deque
from datetime import datetime, timezone

from flask import Flask, jsonify, render_template_string, request, url_for

from verify import MODES, verify_headers

MAX_BODY_BYTES = 1024 * 1024
NO_SECRET_REASON = "receiver has no secret configured: set RECEIVER_SECRET"
DEFAULTS = {
    "RECEIVER_MODE": "signature",
    "RECEIVER_SECRET": "",
    "RECEIVER_PREVIOUS_SECRET": "",
    "RECEIVER_TOLERANCE": 300,
    "RECEIVER_LOG": "received_events.jsonl",
    "RECEIVER_HOST": "127.0.0.1",
    "RECEIVER_PORT": 5001,
}


def load_config(overrides: dict | None = None) -> dict:
    """DEFAULTS, then the environment, then `overrides` (same key names)."""
    cfg = {key: os.environ.get(key, default) for key, default in DEFAULTS.items()}
    cfg.update(overrides or {})
    if cfg["RECEIVER_MODE"] not in MODES:
        raise ValueError(f"RECEIVER_MODE must be one of {MODES}, not {cfg['RECEIVER_MODE']!r}")
    cfg["RECEIVER_TOLERANCE"] = int(cfg["RECEIVER_TOLERANCE"])
    cfg["RECEIVER_PORT"] = int(cfg["RECEIVER_PORT"])
    return cfg


def _utc_now() -> str:
    # Same shape as the envelope's created_at; fixed width, so these strings sort chronologically.
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _read_log(path: str) -> list[dict]:
    """Every well-formed line of the log; a torn last line (crash mid-write) is skipped."""
    entries = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    entries.append(entry)
    except FileNotFoundError:
        pass
    return entries


def create_app(config: dict | None = None) -> Flask:
    cfg = load_config(config)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES  # Werkzeug answers 413 beyond this
    log_path = cfg["RECEIVER_LOG"]
    lock = threading.Lock()  # the dev server is threaded: guards `seen`, `rejected` and the log
    # Loaded from the log so that a restart still recognises retries of deliveries already accepted.
    seen = {e["delivery"] for e in _read_log(log_path) if e.get("delivery")}
    rejected: deque[dict] = deque(maxlen=100)  # memory only: unauthenticated input stays off disk

    def reject(status: int, reason: str):
        entry = {
            "received_at": _utc_now(),
            # Untrusted header values: trimmed so a hostile sender cannot grow memory much.
            "event": (request.headers.get("X-Apsdai-Event") or "")[:200] or None,
            "delivery": (request.headers.get("X-Apsdai-Delivery") or "")[:200] or None,
            "verified": False,
            "reason": reason,
            "body": None,  # never kept: the sender is not authenticated, or the body is unusable
        }
        with lock:  # a deque mutated while another thread copies it raises RuntimeError
            rejected.append(entry)
        return jsonify(ok=False, reason=reason), status

    def receive():
        if not cfg["RECEIVER_SECRET"]:
            return reject(401, NO_SECRET_REASON)
        result = verify_headers(request.headers, mode=cfg["RECEIVER_MODE"], secret=cfg["RECEIVER_SECRET"],
                                previous_secret=cfg["RECEIVER_PREVIOUS_SECRET"], body=request.get_data(),
                                tolerance_s=cfg["RECEIVER_TOLERANCE"])
        if not result.ok:
            return reject(401, result.reason)
        try:
            # Parsed regardless of Content-Type; json.loads detects the UTF encoding of bytes.
            body = json.loads(request.get_data())
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            return reject(400, "body is not a JSON object")

        delivery = request.headers.get("X-Apsdai-Delivery") or None
        entry = {
            "received_at": _utc_now(),
            "delivery": delivery,
            "event": request.headers.get("X-Apsdai-Event"),
            "timestamp": request.headers.get("X-Apsdai-Timestamp"),
            "verified": True,
            "body": body,
        }
        # Check and append under one lock, so two concurrent retries cannot both be logged.
        with lock:
            if delivery is not None and delivery in seen:
                return jsonify(ok=True, duplicate=True)
            # Opened per line: closing flushes it, and a rotated or deleted log is simply recreated.
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
            if delivery is not None:  # without the header there is nothing to de-duplicate on
                seen.add(delivery)
        # Real receivers should queue slow work and answer now: the sender times out and retries.
        return jsonify(ok=True, duplicate=False)

    app.add_url_rule("/webhook", "webhook", receive, methods=["POST"])
    app.add_url_rule("/", "webhook_root", receive, methods=["POST"])

    @app.errorhandler(413)
    def too_large(_error):
        return reject(413, f"body is larger than {MAX_BODY_BYTES // 1024 // 1024} MiB")

    def recent_events() -> list[dict]:
        with lock:
            accepted = _read_log(log_path)[-200:]
            items = [dict(e) for e in rejected]  # copies: the page adds display-only keys
        items += [{"received_at": e.get("received_at"), "event": e.get("event"), "delivery": e.get("delivery"),
                  "verified": True, "reason": None, "body": e.get("body")} for e in accepted]
        items.sort(key=lambda item: item["received_at"] or "", reverse=True)
        return items

    @app.get("/events.json")
    def events_json():
        return jsonify(events=recent_events())

    @app.get("/health")
    def health():
        return jsonify(ok=True)

    @app.get("/")
    def index():
        events = recent_events()
        for item in events:
            item["pretty"] = json.dumps(item["body"], indent=2, ensure_ascii=False)
        return render_template_string(INDEX_HTML, events=events, mode=cfg["RECEIVER_MODE"],
                                      has_secret=bool(cfg["RECEIVER_SECRET"]), tolerance=cfg["RECEIVER_TOLERANCE"],
                                      post_url=url_for("webhook", _external=True), log_path=log_path)

    return app


# render_template_string autoescapes, so header values and bodies cannot inject markup.
INDEX_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>APSDAI webhook receiver</title>
<style>
 body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
 table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #ddd;padding:.4em;text-align:left;vertical-align:top}
 code,pre{font:12px ui-monospace,monospace} pre{background:#f6f6f6;padding:.5em;overflow:auto;max-height:30em}
 .ok{color:#137333} .bad{color:#b3261e}
</style></head><body>
<h1>APSDAI webhook receiver</h1>
<p>POST URL to configure: <code>{{ post_url }}</code><br>
Mode: <b>{{ mode }}</b> &middot; secret configured: <b>{{ "yes" if has_secret else "no" }}</b>
&middot; tolerance: {{ tolerance }} s &middot; log: <code>{{ log_path }}</code></p>
{% if not has_secret %}<p class="bad">Every request is rejected until RECEIVER_SECRET is set.</p>{% endif %}
<table><tr><th>Received (UTC)</th><th>Event</th><th>Delivery</th><th>Result</th><th>Body</th></tr>
{% for e in events %}
<tr><td>{{ e.received_at }}</td><td>{{ e.event or "-" }}</td><td><code>{{ e.delivery or "-" }}</code></td>
{% if e.verified %}<td class="ok">&#10004; verified</td>{% else %}<td class="bad">&#10008; {{ e.reason }}</td>{% endif %}
<td>{% if e.body is not none %}<details><summary>body</summary><pre>{{ e.pretty }}</pre></details>{% else %}-{% endif %}</td></tr>
{% else %}
<tr><td colspan="5">Nothing received yet.</td></tr>
{% endfor %}
</table></body></html>
"""


if __name__ == "__main__":
    settings = load_config()
    if not settings["RECEIVER_SECRET"]:
        print(f"warning: {NO_SECRET_REASON}; every request will be rejected")
    create_app(settings).run(host=settings["RECEIVER_HOST"], port=settings["RECEIVER_PORT"], threaded=True)
