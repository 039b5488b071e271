"""The Feishu fake follows CHANNELS.md §3b: real HTTP on loopback, and it rejects what Feishu
rejects, with the same codes and answer shapes."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
import requests

from tests.fakes import FakeFeishu, ManualClock

NOW_S = 1_700_000_000.0
SECRET = "Xy7Kq2Lm9Pn4Rs8T"


@pytest.fixture
def clock():
    return ManualClock(NOW_S)


@pytest.fixture
def feishu(clock):
    with FakeFeishu(clock=clock) as fake:
        yield fake


def post(url: str, body=None, *, raw: bytes | None = None) -> dict:
    if raw is None:
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    response = requests.post(url, data=raw, headers={"Content-Type": "application/json"}, timeout=5)
    assert response.status_code == 200
    return response.json()


def sign(secret: str, timestamp: str) -> str:
    """The client side of Feishu signing, written from §3b independently of the fake: the key
    is timestamp + newline + secret, the message empty."""
    return base64.b64encode(hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()).decode()


def card(markdown: str = "**Order paid**", title: str = "Order A1 paid", template: str = "green", **extra) -> dict:
    return {"msg_type": "interactive", "card": {
        "header": {"title": {"tag": "plain_text", "content": title}, "template": template},
        "elements": [{"tag": "markdown", "content": markdown}]}, **extra}


def test_accepts_a_card_and_records_it(feishu):
    url = feishu.add_bot("tok-1")
    assert post(url, card()) == {"code": 0, "msg": "success", "data": {}}
    assert feishu.bots["tok-1"].messages == [card()]


def test_accepts_text_and_post(feishu):
    url = feishu.add_bot("tok-1")
    assert post(url, {"msg_type": "text", "content": {"text": "hi <at user_id=\"all\">所有人</at>"}})["code"] == 0
    post_body = {"msg_type": "post", "content": {"post": {"zh_cn": {"title": "t", "content": [[{"tag": "text", "text": "x"}]]}}}}
    assert post(url, post_body)["code"] == 0
    assert len(feishu.bots["tok-1"].messages) == 2


def test_unknown_token_is_19001(feishu):
    feishu.add_bot("tok-1")
    answer = post(f"{feishu.base_url}/open-apis/bot/v2/hook/other", card())
    assert answer["code"] == 19001 and "access token invalid" in answer["msg"]


def test_other_paths_are_404(feishu):
    assert requests.post(f"{feishu.base_url}/robot/send", json=card(), timeout=5).status_code == 404


def test_legacy_bots_answer_with_statuscode(feishu):
    url = feishu.add_bot("old", legacy=True)
    assert post(url, card()) == {"StatusCode": 0, "StatusMessage": "success"}
    assert post(url, {"msg_type": "nope"}) == {"StatusCode": 9499, "StatusMessage": "Bad Request"}


def test_signature_in_the_body(feishu):
    url = feishu.add_bot("tok-1", secret=SECRET)
    timestamp = str(int(NOW_S))
    assert post(url, card(timestamp=timestamp, sign=sign(SECRET, timestamp)))["code"] == 0


@pytest.mark.parametrize("fields", [
    {},                                                                       # unsigned
    {"timestamp": str(int(NOW_S)), "sign": "AAAA"},                           # wrong sign
    {"timestamp": int(NOW_S), "sign": sign(SECRET, str(int(NOW_S)))},         # timestamp not a string
    {"timestamp": str(int(NOW_S) * 1000), "sign": sign(SECRET, str(int(NOW_S) * 1000))},   # milliseconds
    {"timestamp": str(int(NOW_S) - 3601), "sign": sign(SECRET, str(int(NOW_S) - 3601))},   # over an hour old
])
def test_bad_signature_or_timestamp_is_19021(feishu, fields):
    url = feishu.add_bot("tok-1", secret=SECRET)
    assert post(url, card(**fields))["code"] == 19021
    assert feishu.bots["tok-1"].messages == []


def test_dingtalk_style_signature_is_refused(feishu):
    """DingTalk keys the HMAC with the secret and signs timestamp + secret: not Feishu's."""
    url = feishu.add_bot("tok-1", secret=SECRET)
    timestamp = str(int(NOW_S))
    dingtalk = base64.b64encode(hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(), hashlib.sha256)
                                .digest()).decode()
    assert post(url, card(timestamp=timestamp, sign=dingtalk))["code"] == 19021


def test_ip_allow_list_is_19022(feishu):
    url = feishu.add_bot("tok-1", allowed_ips=("203.0.113.7",))
    assert post(url, card())["code"] == 19022
    url = feishu.add_bot("tok-2", allowed_ips=("127.0.0.1",))
    assert post(url, card())["code"] == 0


def test_keywords_are_19024(feishu):
    url = feishu.add_bot("tok-1", keywords=("shop-alert", "告警"))
    assert post(url, card("nothing here"))["code"] == 19024
    assert post(url, card("an order\n\n告警"))["code"] == 0
    assert post(url, card(title="shop-alert: order"))["code"] == 0


@pytest.mark.parametrize("body", [
    {"msg_type": "markdown", "content": {"text": "x"}},
    {"msg_type": "text", "content": {"text": ""}},
    {"msg_type": "interactive"},
    card(title=""),
    card(template="pink"),
    {"msg_type": "interactive", "card": {"header": {"title": {"content": "t"}}, "elements": []}},
    {"msg_type": "interactive", "card": {"header": {"title": {"content": "t"}}, "elements": [{"tag": "table"}]}},
    {"msg_type": "interactive", "card": {"header": {"title": {"content": "t"}}, "elements": [{"tag": "markdown"}]}},
    ["not", "an", "object"],
])
def test_malformed_messages_are_9499(feishu, body):
    url = feishu.add_bot("tok-1")
    assert post(url, body)["code"] == 9499


def test_not_json_is_9499(feishu):
    url = feishu.add_bot("tok-1")
    assert post(url, raw=b"{not json")["code"] == 9499


def test_body_limit_is_20_kb_of_raw_bytes(feishu):
    url = feishu.add_bot("tok-1")
    base = len(json.dumps(card(""), ensure_ascii=False).encode())
    fits = card("飞" * ((20 * 1024 - base) // 3))
    assert len(json.dumps(fits, ensure_ascii=False).encode()) <= 20 * 1024
    assert post(url, fits)["code"] == 0
    assert post(url, card("飞" * ((20 * 1024 - base) // 3 + 1)))["code"] == 9499


def test_six_in_a_second_is_11232(feishu, clock):
    url = feishu.add_bot("tok-1")
    codes = [post(url, card())["code"] for _ in range(6)]
    assert codes == [0] * 5 + [11232]
    clock.advance(1.01)
    assert post(url, card())["code"] == 0


def test_101_in_a_minute_is_11232(feishu, clock):
    url = feishu.add_bot("tok-1")
    codes = []
    for _ in range(101):
        codes.append(post(url, card())["code"])
        clock.advance(0.5)      # 2 a second: never over 5 a second
    assert codes[:100] == [0] * 100 and codes[100] == 11232
    assert feishu.bots["tok-1"].limited_count == 1
    clock.advance(60)
    assert post(url, card())["code"] == 0


def test_each_bot_has_its_own_rate(feishu):
    one, two = feishu.add_bot("tok-1"), feishu.add_bot("tok-2")
    assert [post(one, card())["code"] for _ in range(5)] == [0] * 5
    assert post(two, card())["code"] == 0


def test_system_busy_answers_11232(feishu):
    url = feishu.add_bot("tok-1")
    feishu.system_busy = 1
    assert post(url, card())["code"] == 11232
    assert post(url, card())["code"] == 0
