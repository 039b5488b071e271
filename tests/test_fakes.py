"""The DingTalk and WeCom fakes follow CHANNELS.md §2 and §3: real HTTP on loopback, and they
reject what the real services reject, with the same codes."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import quote_plus

import pytest
import requests

from tests.fakes import FakeDingTalk, FakeWeCom, ManualClock

NOW_S = 1_700_000_000.0          # the injected clock; NOW_S * 1000 is the test vector's timestamp
VECTOR_TS = "1700000000000"
VECTOR_B64 = "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g="
VECTOR_ENCODED = "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D"


@pytest.fixture
def clock():
    return ManualClock(NOW_S)


@pytest.fixture
def dingtalk(clock):
    with FakeDingTalk(clock=clock) as fake:
        yield fake


@pytest.fixture
def wecom(clock):
    with FakeWeCom(clock=clock) as fake:
        yield fake


def post(url: str, body=None, *, raw: bytes | None = None, **kwargs) -> dict:
    """POST JSON (or raw bytes) and return the JSON answer, checking it came with HTTP 200."""
    if raw is None:
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    response = requests.post(url, data=raw, headers={"Content-Type": "application/json"},
                             timeout=5, **kwargs)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def text(content: str, **extra) -> dict:
    return {"msgtype": "text", "text": {"content": content}, **extra}


def sign(secret: str, timestamp: str) -> str:
    """The client side of DingTalk signing, written independently of the fake."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed(url: str, secret: str, timestamp: str = VECTOR_TS) -> str:
    return f"{url}&timestamp={timestamp}&sign={quote_plus(sign(secret, timestamp))}"


# ---- DingTalk -----------------------------------------------------------------------------------

def test_dingtalk_accepts_text_and_records_it(dingtalk):
    url = dingtalk.add_robot("tok")
    assert url == f"{dingtalk.base_url}/robot/send?access_token=tok"
    message = text("订单 #1 已支付", at={"atMobiles": ["13800000000"], "isAtAll": False})
    assert post(url, message) == {"errcode": 0, "errmsg": "ok"}
    assert dingtalk.robots["tok"].messages == [message]
    record = dingtalk.requests[-1]
    assert record.query == {"access_token": "tok"}
    assert record.headers["Content-Type"] == "application/json"
    assert (record.body, record.errcode, record.errmsg) == (message, 0, "ok")


def test_dingtalk_accepts_markdown(dingtalk):
    url = dingtalk.add_robot("tok")
    message = {"msgtype": "markdown", "markdown": {"title": "New order", "text": "**#1** paid"}}
    assert post(url, message)["errcode"] == 0
    assert dingtalk.robots["tok"].messages == [message]


@pytest.mark.parametrize("suffix", ["?access_token=nope", "?access_token=", ""])
def test_dingtalk_unknown_or_missing_token(dingtalk, suffix):
    dingtalk.add_robot("tok")
    answer = post(f"{dingtalk.base_url}/robot/send{suffix}", text("hi"))
    assert answer == {"errcode": 300001, "errmsg": "token is not exist"}


def test_dingtalk_signature_test_vector(dingtalk):
    assert sign("SECtest", VECTOR_TS) == VECTOR_B64
    assert quote_plus(VECTOR_B64) == VECTOR_ENCODED
    url = dingtalk.add_robot("tok", secret="SECtest")
    answer = post(f"{url}&timestamp={VECTOR_TS}&sign={VECTOR_ENCODED}", text("hi"))
    assert answer == {"errcode": 0, "errmsg": "ok"}
    assert dingtalk.requests[-1].query["sign"] == VECTOR_B64   # decoded exactly once


def test_dingtalk_rejects_a_doubly_encoded_sign(dingtalk):
    url = dingtalk.add_robot("tok", secret="SECtest")
    # requests encodes params again: the already-encoded %3D goes out as %253D.
    params = {"timestamp": VECTOR_TS, "sign": VECTOR_ENCODED}
    response = requests.post(url, params=params, json=text("hi"), timeout=5)
    assert response.request.url.endswith("%253D")
    assert response.json() == {"errcode": 310000, "errmsg": "sign not match"}
    assert dingtalk.requests[-1].query["sign"] == VECTOR_ENCODED
    assert dingtalk.robots["tok"].messages == []


def test_dingtalk_rejects_an_unencoded_plus_in_sign(dingtalk):
    """A '+' left raw in the query string decodes to a space, so the sign no longer matches."""
    timestamp = next(str(int(NOW_S * 1000) + i) for i in range(1000)
                     if "+" in sign("SECtest", str(int(NOW_S * 1000) + i)))
    url = dingtalk.add_robot("tok", secret="SECtest")
    raw_sign = sign("SECtest", timestamp)
    assert post(f"{url}&timestamp={timestamp}&sign={raw_sign}", text("hi")) == \
        {"errcode": 310000, "errmsg": "sign not match"}
    assert post(signed(url, "SECtest", timestamp), text("hi"))["errcode"] == 0


@pytest.mark.parametrize("query", [
    "&sign=x",                                  # timestamp missing
    f"&timestamp=abc&sign={VECTOR_ENCODED}",   # not a number
    f"&timestamp=-{VECTOR_TS}&sign=x",         # not a plain number
])
def test_dingtalk_invalid_timestamp(dingtalk, query):
    url = dingtalk.add_robot("tok", secret="SECtest")
    assert post(url + query, text("hi")) == {"errcode": 310000, "errmsg": "invalid timestamp"}


def test_dingtalk_timestamp_must_be_within_one_hour(dingtalk):
    url = dingtalk.add_robot("tok", secret="SECtest")
    now_ms = int(NOW_S * 1000)
    for edge in (now_ms - 3_600_000, now_ms + 3_600_000):
        assert post(signed(url, "SECtest", str(edge)), text("hi"))["errcode"] == 0
    for stale in (now_ms - 3_600_001, now_ms + 3_600_001):
        assert post(signed(url, "SECtest", str(stale)), text("hi")) == \
            {"errcode": 310000, "errmsg": "invalid timestamp"}


def test_dingtalk_clock_moving_on_makes_a_signature_stale(dingtalk, clock):
    url = signed(dingtalk.add_robot("tok", secret="SECtest"), "SECtest")
    assert post(url, text("hi"))["errcode"] == 0
    clock.advance(3601)
    assert post(url, text("hi"))["errmsg"] == "invalid timestamp"


@pytest.mark.parametrize("query", [
    f"&timestamp={VECTOR_TS}",                                         # sign missing
    f"&timestamp={VECTOR_TS}&sign={quote_plus(sign('SECother', VECTOR_TS))}",   # wrong secret
])
def test_dingtalk_sign_missing_or_wrong(dingtalk, query):
    url = dingtalk.add_robot("tok", secret="SECtest")
    assert post(url + query, text("hi")) == {"errcode": 310000, "errmsg": "sign not match"}


def test_dingtalk_signature_checked_before_body(dingtalk):
    url = dingtalk.add_robot("tok", secret="SECtest")
    assert post(url, raw=b"not json")["errmsg"] == "invalid timestamp"


@pytest.mark.parametrize("body", [
    b"not json",
    b"\xff\xfe",
    b"[1, 2]",
    json.dumps({"text": {"content": "no msgtype"}}).encode(),
    json.dumps({"msgtype": "image", "image": {}}).encode(),
    json.dumps({"msgtype": "text", "text": {"content": ""}}).encode(),
    json.dumps({"msgtype": "text", "text": "hi"}).encode(),
    json.dumps({"msgtype": "markdown", "markdown": {"text": "body only"}}).encode(),
    json.dumps({"msgtype": "markdown", "markdown": {"title": "t", "text": 5}}).encode(),
    json.dumps(text("hi", at=["13800000000"])).encode(),
    json.dumps(text("hi", at={"atMobiles": "13800000000"})).encode(),
    json.dumps(text("hi", at={"atUserIds": [1]})).encode(),
    json.dumps(text("hi", at={"isAtAll": "true"})).encode(),
    b'{"msgtype": "text", "text": {"content": "x"}, "n": NaN}',  # Python's json writes it; it is not JSON
    b'{"msgtype": "text", "text": {"content": "x", "n": Infinity}}',
    b'{"msgtype": "text", "text": {"content": "lone \\ud800 surrogate"}}',
])
def test_dingtalk_malformed_message(dingtalk, body):
    url = dingtalk.add_robot("tok")
    assert post(url, raw=body) == {"errcode": 40035, "errmsg": "missing parameter"}
    assert dingtalk.robots["tok"].messages == []


def test_dingtalk_other_known_msgtypes_accepted(dingtalk):
    url = dingtalk.add_robot("tok")
    link = {"msgtype": "link", "link": {"title": "t", "text": "x", "messageUrl": "https://e.x"}}
    assert post(url, link)["errcode"] == 0


def test_dingtalk_message_size_limit_counts_raw_bytes(dingtalk):
    url = dingtalk.add_robot("tok")
    skeleton = len(json.dumps(text("")).encode())
    fits = json.dumps(text("x" * (20_000 - skeleton))).encode()
    assert len(fits) == 20_000
    assert post(url, raw=fits)["errcode"] == 0
    too_long = json.dumps(text("x" * (20_001 - skeleton))).encode()
    assert post(url, raw=too_long) == {"errcode": 460101, "errmsg": "message too long"}
    chinese = json.dumps(text("订" * 6700), ensure_ascii=False).encode()   # 6,700 chars, >20,100 B
    assert post(url, raw=chinese)["errcode"] == 460101


def test_dingtalk_keywords(dingtalk):
    url = dingtalk.add_robot("tok", keywords=("告警", "alert"))
    assert post(url, text("new order")) == {"errcode": 310000, "errmsg": "keywords not in content"}
    assert post(url, text("库存告警: 1 left"))["errcode"] == 0
    markdown = {"msgtype": "markdown", "markdown": {"title": "Stock alert", "text": "1 left"}}
    assert post(url, markdown)["errcode"] == 0
    assert len(dingtalk.robots["tok"].messages) == 2


def test_dingtalk_21st_message_in_a_minute_throttles_for_ten_minutes(dingtalk, clock):
    url = dingtalk.add_robot("tok")
    robot = dingtalk.robots["tok"]
    for i in range(20):
        assert post(url, text(f"m{i}"))["errcode"] == 0
        clock.advance(1)
    assert robot.throttled_count == 0
    assert post(url, text("21st")) == \
        {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
    clock.advance(120)                              # the window is clear, the throttle is not
    assert post(url, text("later"))["errcode"] == 130101
    clock.advance(600 - 120 - 1)
    assert post(url, text("still"))["errcode"] == 130101
    clock.advance(61)                               # past 10 minutes and a quiet window
    assert post(url, text("again"))["errcode"] == 0
    assert robot.throttled_count == 3
    assert len(robot.messages) == 21


def test_dingtalk_sliding_window_allows_20_per_minute(dingtalk, clock):
    url = dingtalk.add_robot("tok")
    for minute in range(3):
        for i in range(20):
            assert post(url, text(f"{minute}-{i}"))["errcode"] == 0
        clock.advance(60)
    assert dingtalk.robots["tok"].throttled_count == 0


def test_dingtalk_each_robot_has_its_own_rate(dingtalk):
    url, other = dingtalk.add_robot("tok"), dingtalk.add_robot("other")
    for i in range(20):
        assert post(url, text(f"m{i}"))["errcode"] == 0
    assert post(other, text("another robot has its own budget"))["errcode"] == 0
    assert post(url, text("21st"))["errcode"] == 130101
    assert (dingtalk.robots["tok"].throttled_count, dingtalk.robots["other"].throttled_count) \
        == (1, 0)


def test_dingtalk_requests_during_the_throttle_still_count(dingtalk, clock):
    """The service counts requests, not successes: hammering a throttled robot re-throttles it."""
    url = dingtalk.add_robot("tok")
    for i in range(21):
        post(url, text(f"m{i}"))
    clock.advance(599.5)
    for i in range(21):
        assert post(url, text(f"during {i}"))["errcode"] == 130101
    clock.advance(1)                                # the 10 minutes are over, the window is full
    assert post(url, text("after"))["errcode"] == 130101
    assert dingtalk.robots["tok"].throttled_count == 23


def test_dingtalk_system_busy(dingtalk):
    url = dingtalk.add_robot("tok")
    dingtalk.system_busy = 2
    assert post(url, text("a")) == {"errcode": -1, "errmsg": "system busy"}
    assert post(url, text("b")) == {"errcode": -1, "errmsg": "system busy"}
    assert post(url, text("c")) == {"errcode": 0, "errmsg": "ok"}
    assert [m["text"]["content"] for m in dingtalk.robots["tok"].messages] == ["c"]
    assert [r.errcode for r in dingtalk.requests] == [-1, -1, 0]


def test_fake_is_a_real_server_and_stops(clock):
    fake = FakeDingTalk(clock=clock)
    with pytest.raises(RuntimeError):
        fake.base_url
    fake.start()
    url = fake.add_robot("tok")
    assert requests.get(url, timeout=5).status_code == 405
    assert requests.post(f"{fake.base_url}/elsewhere", timeout=5).status_code == 404
    fake.stop()
    with pytest.raises(requests.ConnectionError):
        requests.post(url, json=text("hi"), timeout=2)


# ---- WeCom --------------------------------------------------------------------------------------

def test_wecom_accepts_text_with_mentions(wecom):
    url = wecom.add_robot("k1")
    assert url == f"{wecom.base_url}/cgi-bin/webhook/send?key=k1"
    message = {"msgtype": "text", "text": {"content": "新订单", "mentioned_list": ["@all"],
                                            "mentioned_mobile_list": ["13800000000"]}}
    assert post(url, message) == {"errcode": 0, "errmsg": "ok"}
    assert wecom.robots["k1"].messages == [message]
    assert wecom.requests[-1].query == {"key": "k1"}


@pytest.mark.parametrize("msgtype", ["markdown", "markdown_v2"])
def test_wecom_accepts_markdown(wecom, msgtype):
    url = wecom.add_robot("k1")
    assert post(url, {"msgtype": msgtype, msgtype: {"content": "**订单** #1"}})["errcode"] == 0


@pytest.mark.parametrize("suffix", ["?key=nope", "?key=", ""])
def test_wecom_unknown_or_missing_key(wecom, suffix):
    wecom.add_robot("k1")
    answer = post(f"{wecom.base_url}/cgi-bin/webhook/send{suffix}", text("hi"))
    assert answer == {"errcode": 93000, "errmsg": "invalid webhook url"}


@pytest.mark.parametrize("body", [
    b"", b"{not json", b"\xff", b'"text"', b"[]",
    json.dumps(text("")).encode(),
    json.dumps({"msgtype": "text"}).encode(),
    json.dumps({"msgtype": "text", "text": {}}).encode(),
    json.dumps({"msgtype": "markdown", "markdown": {"content": ""}}).encode(),
    json.dumps({"msgtype": "markdown_v2", "markdown_v2": {"content": 7}}).encode(),
    b'{"msgtype": "text", "text": {"content": "x", "n": NaN}}',
    b'{"msgtype": "text", "text": {"content": "lone \\udfff surrogate"}}',
])
def test_wecom_empty_content_or_malformed_json(wecom, body):
    url = wecom.add_robot("k1")
    assert post(url, raw=body) == {"errcode": 44004, "errmsg": "empty content"}


@pytest.mark.parametrize("body", [{"text": {"content": "hi"}}, {"msgtype": "actionCard"},
                                  {"msgtype": "TEXT", "TEXT": {"content": "hi"}}])
def test_wecom_invalid_message_type(wecom, body):
    url = wecom.add_robot("k1")
    assert post(url, body) == {"errcode": 40008, "errmsg": "invalid message type"}


def test_wecom_text_limit_is_2048_bytes(wecom):
    url = wecom.add_robot("k1")
    assert post(url, text("x" * 2048))["errcode"] == 0
    assert post(url, text("订" * 682))["errcode"] == 0            # 2,046 bytes
    too_long = {"errcode": 40058, "errmsg": "invalid parameter: content exceed max length"}
    assert post(url, text("x" * 2049)) == too_long
    assert post(url, text("订" * 683)) == too_long                # 683 characters, 2,049 bytes


@pytest.mark.parametrize("msgtype", ["markdown", "markdown_v2"])
def test_wecom_markdown_limit_is_4096_bytes(wecom, msgtype):
    url = wecom.add_robot("k1")
    assert len(("订" * 1365).encode()) == 4095
    assert post(url, {"msgtype": msgtype, msgtype: {"content": "订" * 1365}})["errcode"] == 0
    answer = post(url, {"msgtype": msgtype, msgtype: {"content": "订" * 1366}})   # 4,098 bytes
    assert answer == {"errcode": 40058, "errmsg": "invalid parameter: content exceed max length"}
    assert len(wecom.robots["k1"].messages) == 1


@pytest.mark.parametrize("mentions", [{"mentioned_list": "@all"},
                                      {"mentioned_mobile_list": [13800000000]}])
def test_wecom_mentions_must_be_lists_of_strings(wecom, mentions):
    url = wecom.add_robot("k1")
    answer = post(url, {"msgtype": "text", "text": {"content": "hi", **mentions}})
    assert answer["errcode"] == 40058


def test_wecom_news_needs_one_to_eight_articles(wecom):
    url = wecom.add_robot("k1")
    article = {"title": "t", "url": "https://e.x"}
    assert post(url, {"msgtype": "news", "news": {"articles": [article]}})["errcode"] == 0
    assert post(url, {"msgtype": "news", "news": {"articles": []}})["errcode"] == 40058
    assert post(url, {"msgtype": "news", "news": {"articles": [article] * 9}})["errcode"] == 40058


def test_wecom_21st_message_in_a_minute_is_limited(wecom, clock):
    url = wecom.add_robot("k1")
    robot = wecom.robots["k1"]
    for i in range(20):
        assert post(url, text(f"m{i}"))["errcode"] == 0
        clock.advance(1)
    assert robot.limited_count == 0
    assert post(url, text("21st")) == {"errcode": 45009, "errmsg": "api freq out of limit"}
    clock.advance(41)               # the first messages leave the window: no long throttle
    assert post(url, text("22nd"))["errcode"] == 0
    assert robot.limited_count == 1
    assert len(robot.messages) == 21


def test_concurrent_requests_are_counted_exactly(wecom):
    """The fakes are threaded servers with locked state: 30 parallel sends, exactly 20 accepted."""
    from concurrent.futures import ThreadPoolExecutor

    url = wecom.add_robot("k1")
    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = list(pool.map(lambda i: post(url, text(f"m{i}"))["errcode"], range(30)))
    assert sorted(codes) == [0] * 20 + [45009] * 10
    assert (len(wecom.robots["k1"].messages), wecom.robots["k1"].limited_count) == (20, 10)
    assert len(wecom.requests) == 30
