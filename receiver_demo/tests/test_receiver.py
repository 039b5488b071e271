import json
import re
import threading
import time
from datetime import datetime

import pytest

import receiver
from verify import compute_signature

SECRET = "SECtest-receiver-5f3a9c"
ENVELOPE = {"id": "evt_1", "event": "order_pay_hook", "created_at": "2026-11-27T10:00:00.000Z", "test": False,
            "data": {"order_no": "A1001", "amount": "12.50", "items": [{"name": "绿茶", "qty": 2}]}}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in receiver.DEFAULTS:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def log_path(tmp_path):
    return tmp_path / "events.jsonl"


def make_client(log_path, **overrides):
    config = {"RECEIVER_SECRET": SECRET, "RECEIVER_LOG": str(log_path), **overrides}
    return receiver.create_app(config).test_client()


@pytest.fixture
def client(log_path):
    return make_client(log_path)


def now_ms():
    return int(time.time() * 1000)


def headers(secret=SECRET, ts=None, event="order_pay_hook", delivery="dlv_1", token=None):
    ts = now_ms() if ts is None else ts
    h = {"Content-Type": "application/json", "User-Agent": "apsdai-hook",
         "X-Apsdai-Token": compute_signature(secret, ts) if token is None else token,
         "X-Apsdai-Timestamp": str(ts), "X-Apsdai-Event": event}
    if delivery is not None:
        h["X-Apsdai-Delivery"] = delivery
    return h


def post(client, body=ENVELOPE, path="/webhook", **kw):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body, ensure_ascii=False).encode()
    return client.post(path, data=data, headers=headers(**kw))


def log_lines(log_path):
    if not log_path.exists():
        return []
    return [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]


def test_signed_request_is_accepted_and_logged(client, log_path):
    ts = now_ms()
    resp = post(client, ts=ts, delivery="dlv_abc")
    assert resp.status_code == 200
    assert resp.get_json() == {"ok": True, "duplicate": False}
    [line] = log_lines(log_path)
    assert line["delivery"] == "dlv_abc"
    assert line["event"] == "order_pay_hook"
    assert line["timestamp"] == str(ts)
    assert line["verified"] is True
    assert line["body"] == ENVELOPE
    assert line["received_at"].endswith("Z")
    datetime.fromisoformat(line["received_at"].replace("Z", "+00:00"))
    assert "绿茶" in log_path.read_text(encoding="utf-8")  # written as characters, not \u escapes


def test_root_post_is_an_alias(client, log_path):
    resp = post(client, path="/", delivery="dlv_root")
    assert resp.status_code == 200 and resp.get_json() == {"ok": True, "duplicate": False}
    assert [e["delivery"] for e in log_lines(log_path)] == ["dlv_root"]


def test_wrong_secret_is_rejected_and_not_logged(client, log_path):
    resp = post(client, secret="not-the-secret")
    assert resp.status_code == 401
    assert resp.get_json() == {"ok": False, "reason": "signature does not match: check the secret"}
    assert log_lines(log_path) == []


def test_stale_timestamp_is_rejected(client):
    resp = post(client, ts=now_ms() - 400_000)
    assert resp.status_code == 401
    assert re.fullmatch(r"timestamp is 40[01] s old \(tolerance 300 s\)", resp.get_json()["reason"])


def test_future_timestamp_is_rejected(client):
    resp = post(client, ts=now_ms() + 400_000)
    assert resp.status_code == 401
    assert re.fullmatch(r"timestamp is 40[01] s in the future \(tolerance 300 s\)", resp.get_json()["reason"])


def test_tolerance_comes_from_config(log_path):
    client = make_client(log_path, RECEIVER_TOLERANCE="10")
    assert post(client, ts=now_ms() - 60_000).status_code == 401
    assert post(client, ts=now_ms() - 1_000).status_code == 200


@pytest.mark.parametrize("missing, reason", [
    ("X-Apsdai-Token", "missing X-Apsdai-Token header"),
    ("X-Apsdai-Timestamp", "missing X-Apsdai-Timestamp header"),
])
def test_missing_headers(client, log_path, missing, reason):
    h = headers()
    del h[missing]
    resp = client.post("/webhook", data=json.dumps(ENVELOPE), headers=h)
    assert resp.status_code == 401
    assert resp.get_json() == {"ok": False, "reason": reason}
    assert log_lines(log_path) == []


def test_non_digit_timestamp(client):
    h = headers()
    h["X-Apsdai-Timestamp"] = "2026-11-27T10:00:00Z"
    resp = client.post("/webhook", data=json.dumps(ENVELOPE), headers=h)
    assert resp.status_code == 401
    assert resp.get_json()["reason"] == "X-Apsdai-Timestamp is not epoch milliseconds (digits only)"


def test_replayed_delivery_is_acknowledged_once(client, log_path):
    assert post(client, delivery="dlv_retry").get_json() == {"ok": True, "duplicate": False}
    # A retry is signed afresh, with a later timestamp, but keeps the delivery id.
    resp = post(client, delivery="dlv_retry", ts=now_ms() + 5_000)
    assert resp.status_code == 200
    assert resp.get_json() == {"ok": True, "duplicate": True}
    assert [e["delivery"] for e in log_lines(log_path)] == ["dlv_retry"]
    assert post(client, delivery="dlv_other").get_json() == {"ok": True, "duplicate": False}
    assert [e["delivery"] for e in log_lines(log_path)] == ["dlv_retry", "dlv_other"]


def test_dedup_survives_a_restart(log_path):
    assert post(make_client(log_path), delivery="dlv_persist").get_json()["duplicate"] is False
    with log_path.open("a", encoding="utf-8") as f:
        f.write('{"delivery": "dlv_torn", "bo')  # a line torn by a crash must not break loading
    restarted = make_client(log_path)
    resp = post(restarted, delivery="dlv_persist")
    assert resp.status_code == 200 and resp.get_json() == {"ok": True, "duplicate": True}
    assert post(restarted, delivery="dlv_torn").get_json()["duplicate"] is False


def test_concurrent_retries_are_logged_once(client, log_path):
    results = []

    def send():
        results.append(post(client.application.test_client(), delivery="dlv_race").get_json()["duplicate"])

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] + [True] * 7
    assert len(log_lines(log_path)) == 1


def test_missing_delivery_header_is_accepted_without_dedup(client, log_path):
    assert post(client, delivery=None).get_json() == {"ok": True, "duplicate": False}
    assert post(client, delivery=None).get_json() == {"ok": True, "duplicate": False}
    assert [e["delivery"] for e in log_lines(log_path)] == [None, None]


def test_password_mode(log_path):
    client = make_client(log_path, RECEIVER_MODE="password", RECEIVER_SECRET="hunter2")
    ok = post(client, token="hunter2", delivery="dlv_pw")
    assert ok.status_code == 200 and ok.get_json() == {"ok": True, "duplicate": False}
    bad = post(client, token="hunter3", delivery="dlv_pw2")
    assert bad.status_code == 401
    assert bad.get_json() == {"ok": False, "reason": "password does not match"}
    assert [e["delivery"] for e in log_lines(log_path)] == ["dlv_pw"]


def test_no_secret_rejects_everything(log_path):
    client = make_client(log_path, RECEIVER_SECRET="")
    resp = post(client, secret="")
    assert resp.status_code == 401
    assert resp.get_json() == {"ok": False, "reason": "receiver has no secret configured: set RECEIVER_SECRET"}
    assert log_lines(log_path) == []
    assert "secret configured: <b>no</b>" in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"', b"", b"[" * 100_000])
def test_body_must_be_a_json_object(client, log_path, body):
    resp = post(client, body=body)
    assert resp.status_code == 400
    assert resp.get_json() == {"ok": False, "reason": "body is not a JSON object"}
    assert log_lines(log_path) == []


def test_body_over_one_mib_is_refused(client, log_path):
    big = json.dumps({"pad": "x" * (1024 * 1024)})
    resp = post(client, body=big)
    assert resp.status_code == 413
    assert resp.get_json() == {"ok": False, "reason": "body is larger than 1 MiB"}
    assert log_lines(log_path) == []


def test_index_lists_newest_first_and_hides_the_secret(client, monkeypatch):
    # Distinct, increasing receive times, so the order does not depend on the clock's resolution.
    stamps = iter(f"2026-11-27T10:00:0{i}.000Z" for i in range(10))
    monkeypatch.setattr(receiver, "_utc_now", lambda: next(stamps))
    post(client, delivery="dlv_first")
    post(client, delivery="dlv_bad", secret="wrong")
    post(client, delivery="dlv_third", event="<script>alert(1)</script>")
    html = client.get("/").get_data(as_text=True)
    assert html.index("dlv_third") < html.index("dlv_bad") < html.index("dlv_first")
    assert "&#10004; verified" in html
    assert "signature does not match: check the secret" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "http://localhost/webhook" in html
    assert "secret configured: <b>yes</b>" in html
    assert SECRET not in html
    assert "A1001" in html  # the accepted body, pretty-printed


def test_events_json(client, monkeypatch):
    stamps = iter(f"2026-11-27T10:00:0{i}.000Z" for i in range(10))
    monkeypatch.setattr(receiver, "_utc_now", lambda: next(stamps))
    post(client, delivery="dlv_ok")
    post(client, delivery="dlv_stale", ts=now_ms() - 900_000, event="order_cancel_hook")
    events = client.get("/events.json").get_json()["events"]
    assert [e["delivery"] for e in events] == ["dlv_stale", "dlv_ok"]
    rejected, accepted = events
    assert set(accepted) == set(rejected) == {"received_at", "event", "delivery", "verified", "reason", "body"}
    assert accepted == {"received_at": "2026-11-27T10:00:00.000Z", "event": "order_pay_hook", "delivery": "dlv_ok",
                        "verified": True, "reason": None, "body": ENVELOPE}
    assert rejected["verified"] is False and rejected["body"] is None
    assert rejected["event"] == "order_cancel_hook"
    assert re.fullmatch(r"timestamp is 90[01] s old \(tolerance 300 s\)", rejected["reason"])


def test_rejections_kept_in_memory_are_capped(client):
    for i in range(105):
        post(client, delivery=f"dlv_{i}", secret="wrong")
    events = client.get("/events.json").get_json()["events"]
    assert len(events) == 100
    assert {e["delivery"] for e in events} == {f"dlv_{i}" for i in range(5, 105)}


def test_health(client):
    resp = client.get("/health")
    assert resp.status_code == 200 and resp.get_json() == {"ok": True}


def test_config_from_environment_and_overrides(monkeypatch, log_path):
    monkeypatch.setenv("RECEIVER_MODE", "password")
    monkeypatch.setenv("RECEIVER_SECRET", "from-env")
    monkeypatch.setenv("RECEIVER_LOG", str(log_path))
    monkeypatch.setenv("RECEIVER_PORT", "6000")
    assert receiver.load_config()["RECEIVER_PORT"] == 6000
    client = receiver.create_app().test_client()
    assert post(client, token="from-env").status_code == 200
    overridden = receiver.create_app({"RECEIVER_SECRET": "from-dict"}).test_client()
    assert post(overridden, token="from-env", delivery="dlv_2").status_code == 401
    assert post(overridden, token="from-dict", delivery="dlv_3").status_code == 200


def test_unknown_mode_fails_at_startup(log_path):
    with pytest.raises(ValueError, match="RECEIVER_MODE"):
        receiver.create_app({"RECEIVER_MODE": "hmac", "RECEIVER_LOG": str(log_path)})


def test_a_body_altered_on_the_way_is_rejected(client, log_path):
    from verify import body_signature

    ts = now_ms()
    body = json.dumps(ENVELOPE).encode()
    headers = {"X-Apsdai-Token": compute_signature(SECRET, ts), "X-Apsdai-Timestamp": str(ts),
               "X-Apsdai-Event": "order_pay_hook", "X-Apsdai-Delivery": "dlv_body",
               "X-Apsdai-Signature-256": body_signature(SECRET, ts, body), "Content-Type": "application/json"}
    tampered = client.post("/webhook", data=body.replace(b"12.50", b"0.01"), headers=headers)
    assert tampered.status_code == 401 and "body signature does not match" in tampered.get_json()["reason"]
    assert client.post("/webhook", data=body, headers=headers).get_json() == {"ok": True, "duplicate": False}
