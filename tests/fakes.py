"""Local fakes of DingTalk's custom group robot, WeCom's group robot and Feishu's custom bot
(CHANNELS.md §2, §3 and §3b).

Each fake is a real threaded HTTP server on 127.0.0.1 (a free port), so the product sends real
HTTP to it. The fakes reject what the real services reject, with the same error codes, so a test
against them proves the product speaks the contract, not merely that it sends something.

    with FakeDingTalk(clock=ManualClock(1_700_000_000)) as fake:
        url = fake.add_robot("tok", secret="SECtest", keywords=("alert",))
        ...                                   # send to url (plus &timestamp=…&sign=…)
        assert fake.robots["tok"].messages    # accepted messages, parsed

Time (the signature's 1-hour window and the rate-limit windows) comes from `clock`, a callable
returning epoch seconds as a float (`time.time` by default), so tests control it.
Standard library and werkzeug only.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

RATE_LIMIT = 20          # messages per robot per window (both services)
RATE_WINDOW_S = 60.0     # the sliding window, seconds


class ManualClock:
    """A controllable clock: call it for epoch seconds; `advance()` moves it forward."""

    def __init__(self, now: float = 1_700_000_000.0):
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Reject(Exception):
    """A check failed: the fake answers HTTP 200 with this errcode and errmsg."""

    def __init__(self, errcode: int, errmsg: str):
        super().__init__(errcode, errmsg)
        self.errcode, self.errmsg = errcode, errmsg


@dataclass
class RecordedRequest:
    """One request as the fake saw it, and the answer it gave."""

    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes
    body: Any              # the parsed JSON, or None when the body was not JSON
    errcode: int = 0
    errmsg: str = "ok"


def _parse_query(raw_query: str) -> dict[str, str]:
    """Parse the raw query string once, percent-decoding once (first value of each name)."""
    parsed = parse_qs(raw_query, keep_blank_values=True)
    return {name: values[0] for name, values in parsed.items()}


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


def _parse_json(raw: bytes) -> Any:
    """The body as JSON (UTF-8), or None when it is not valid UTF-8 JSON. Strict, as the services'
    parsers are: NaN and Infinity (which Python's json writes by default) and `\\ud800` escapes
    of lone surrogates (which no UTF-8 text holds) are malformed."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_not_json)
        json.dumps(body, ensure_ascii=False).encode("utf-8")  # UnicodeEncodeError for a lone surrogate
        return body
    except (UnicodeError, ValueError):
        return None


def _is_list_of_str(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _over_rate(times: deque, now: float) -> bool:
    """Record a request at `now`; True when the sliding window now holds more than RATE_LIMIT."""
    times.append(now)
    while times and times[0] <= now - RATE_WINDOW_S:
        times.popleft()
    return len(times) > RATE_LIMIT


class _FakeServer:
    """A WSGI app served by a threaded werkzeug server on 127.0.0.1, on a free port.

    Subclasses set `path` and implement `_check(query, body, raw)`, which raises `Reject` or
    returns normally (errcode 0, "ok"). All state changes happen under one lock.
    """

    path = "/"

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.requests: list[RecordedRequest] = []
        self.system_busy = 0       # answer the next N requests with errcode -1 "system busy"
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self):
        """Bind a free port on 127.0.0.1 and serve in a daemon thread. Returns self."""
        if self._server is None:
            self._server = make_server("127.0.0.1", 0, self, threaded=True)
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            kwargs={"poll_interval": 0.02}, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT` (the server must be started)."""
        if self._server is None:
            raise RuntimeError("the fake is not started")
        return f"http://127.0.0.1:{self._server.server_port}"

    # -- WSGI ------------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.path != self.path:
            return Response("not found", status=404)(environ, start_response)
        if request.method != "POST":
            return Response("method not allowed", status=405)(environ, start_response)
        raw = request.get_data()
        record = RecordedRequest(
            query=_parse_query(environ.get("QUERY_STRING", "")),
            headers=dict(request.headers),
            raw=raw,
            body=_parse_json(raw),
        )
        with self._lock:
            self._answer(record)
            self.requests.append(record)
        payload = json.dumps({"errcode": record.errcode, "errmsg": record.errmsg})
        return Response(payload, status=200, mimetype="application/json")(environ, start_response)

    def _answer(self, record: RecordedRequest) -> None:
        """Fill in the record's answer: a simulated outage first, then the service's checks."""
        if self.system_busy > 0:
            self.system_busy -= 1
            record.errcode, record.errmsg = -1, "system busy"
            return
        try:
            self._check(record.query, record.body, record.raw)
        except Reject as rejected:
            record.errcode, record.errmsg = rejected.errcode, rejected.errmsg

    def _check(self, query: dict[str, str], body: Any, raw: bytes) -> None:
        raise NotImplementedError


# ================================================================================================
# DingTalk (CHANNELS.md §2)
# ================================================================================================

DINGTALK_MSGTYPES = ("text", "markdown", "link", "actionCard", "feedCard")
DINGTALK_MAX_BYTES = 20_000
DINGTALK_TIMESTAMP_SKEW_MS = 3_600_000   # the timestamp must be within 1 hour of the server clock
DINGTALK_THROTTLE_S = 600.0              # after a 130101, the robot is throttled for 10 minutes


def dingtalk_sign(secret: str, timestamp: str) -> str:
    """Base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")), not URL-encoded."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode("utf-8"),
                      hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass
class DingTalkRobot:
    """A registered robot: its security settings and what it received."""

    token: str
    secret: str | None = None
    keywords: tuple[str, ...] = ()
    messages: list[dict] = field(default_factory=list)   # accepted messages, parsed
    throttled_count: int = 0                             # how many 130101 answers were given
    throttled_until: float = 0.0                         # epoch seconds
    attempts: deque = field(default_factory=deque)       # request times in the rate window


class FakeDingTalk(_FakeServer):
    """DingTalk's custom group robot: `POST /robot/send?access_token=TOKEN`.

    Always HTTP 200 with `{"errcode": N, "errmsg": "..."}`. Checks, in order:

    1. token unknown or missing        → 300001 "token is not exist"
    2. signing (robot has a secret)    → 310000 "invalid timestamp" / "sign not match"
    3. body shape                      → 40035 "missing parameter"
    4. raw body over 20,000 bytes      → 460101 "message too long"
    5. keywords (robot has keywords)   → 310000 "keywords not in content"
    6. over 20 requests in 60 s        → 130101, then throttled for 10 minutes
    7. otherwise 0 "ok", and the message is appended to `robot.messages`.

    40035 is the fake's choice: CHANNELS.md gives no code for a malformed message.
    `system_busy = N` answers the next N requests with -1 "system busy" before any check.
    """

    path = "/robot/send"

    def __init__(self, clock: Callable[[], float] = time.time):
        super().__init__(clock)
        self.robots: dict[str, DingTalkRobot] = {}

    def add_robot(self, token: str, secret: str | None = None,
                  keywords: tuple[str, ...] = ()) -> str:
        """Register a robot; returns its webhook URL (without timestamp/sign)."""
        with self._lock:
            self.robots[token] = DingTalkRobot(token, secret, tuple(keywords))
        return f"{self.base_url}/robot/send?access_token={token}"

    def _check(self, query: dict[str, str], body: Any, raw: bytes) -> None:
        robot = self._robot(query)
        self._check_signature(robot, query)
        self._check_shape(body)
        if len(raw) > DINGTALK_MAX_BYTES:
            raise Reject(460101, "message too long")
        self._check_keywords(robot, body)
        self._check_rate(robot)
        robot.messages.append(body)

    def _robot(self, query: dict[str, str]) -> DingTalkRobot:
        """§2 errcode 300001: the access_token must name an existing robot."""
        robot = self.robots.get(query.get("access_token", ""))
        if robot is None:
            raise Reject(300001, "token is not exist")
        return robot

    def _check_signature(self, robot: DingTalkRobot, query: dict[str, str]) -> None:
        """§2 signing (加签): a timestamp within 1 hour, and the sign encoded exactly once."""
        if robot.secret is None:
            return
        timestamp = query.get("timestamp", "")
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise Reject(310000, "invalid timestamp")
        if abs(int(timestamp) - self.clock() * 1000) > DINGTALK_TIMESTAMP_SKEW_MS:
            raise Reject(310000, "invalid timestamp")
        expected = dingtalk_sign(robot.secret, timestamp)
        if not hmac.compare_digest(query.get("sign", ""), expected):
            raise Reject(310000, "sign not match")

    @staticmethod
    def _check_shape(body: Any) -> None:
        """§2 message types and mentions: a known msgtype with its fields; `at` well-formed."""
        if not isinstance(body, dict) or body.get("msgtype") not in DINGTALK_MSGTYPES:
            raise Reject(40035, "missing parameter")
        msgtype = body["msgtype"]
        message = body.get(msgtype)
        if not isinstance(message, dict):
            raise Reject(40035, "missing parameter")
        required = {"text": ("content",), "markdown": ("title", "text")}.get(msgtype, ())
        if not all(_non_empty_str(message.get(name)) for name in required):
            raise Reject(40035, "missing parameter")
        if "at" in body and not _valid_at(body["at"]):
            raise Reject(40035, "missing parameter")

    @staticmethod
    def _check_keywords(robot: DingTalkRobot, body: dict) -> None:
        """§2 custom keywords: the message must contain at least one of the robot's keywords."""
        if robot.keywords and not any(word in _dingtalk_text(body) for word in robot.keywords):
            raise Reject(310000, "keywords not in content")

    def _check_rate(self, robot: DingTalkRobot) -> None:
        """§2 errcode 130101: over 20 requests a minute, then throttled for 10 minutes."""
        now = self.clock()
        over_rate = _over_rate(robot.attempts, now)
        if over_rate and now >= robot.throttled_until:
            robot.throttled_until = now + DINGTALK_THROTTLE_S
        if now < robot.throttled_until:
            robot.throttled_count += 1
            raise Reject(130101, "send too fast, exceed 20 times per minute")


def _valid_at(at: Any) -> bool:
    """`at`: an object with optional atMobiles / atUserIds (lists of strings) and isAtAll (bool)."""
    return (isinstance(at, dict)
            and _is_list_of_str(at.get("atMobiles", []))
            and _is_list_of_str(at.get("atUserIds", []))
            and isinstance(at.get("isAtAll", False), bool))


def _dingtalk_text(body: dict) -> str:
    """The text keywords are looked for in: text.content, markdown title + text, else the
    whole message object (link, actionCard, feedCard: the fake's approximation)."""
    message = body[body["msgtype"]]
    if body["msgtype"] == "text":
        return message["content"]
    if body["msgtype"] == "markdown":
        return message["title"] + message["text"]
    return json.dumps(message, ensure_ascii=False)


# ================================================================================================
# WeCom (CHANNELS.md §3)
# ================================================================================================

WECOM_MSGTYPES = ("text", "markdown", "markdown_v2", "news", "image", "file", "template_card")
WECOM_MAX_BYTES = {"text": 2048, "markdown": 4096, "markdown_v2": 4096}   # content, UTF-8 bytes


@dataclass
class WeComRobot:
    """A registered robot (the key is its only credential) and what it received."""

    key: str
    messages: list[dict] = field(default_factory=list)   # accepted messages, parsed
    limited_count: int = 0                               # how many 45009 answers were given
    attempts: deque = field(default_factory=deque)       # request times in the rate window


class FakeWeCom(_FakeServer):
    """WeCom's group robot: `POST /cgi-bin/webhook/send?key=KEY`.

    Always HTTP 200 with `{"errcode": N, "errmsg": "..."}`. Checks, in order:

    1. key unknown or missing                  → 93000 "invalid webhook url"
    2. body not a JSON object                  → 44004 "empty content"
    3. msgtype not a known type                → 40008 "invalid message type"
    4. text / markdown / markdown_v2 content:
       missing or empty                        → 44004 "empty content"
       text over 2048 B, markdown over 4096 B  → 40058 "invalid parameter: content exceed max length"
       text mentions not lists of strings      → 40058 "invalid parameter"
       other types: `{msgtype}` not an object  → 44004; news with not 1–8 articles → 40058
    5. over 20 requests in any 60 s window     → 45009 "api freq out of limit" (no long throttle)
    6. otherwise 0 "ok", and the message is appended to `robot.messages`.

    `system_busy = N` answers the next N requests with -1 "system busy" before any check.
    """

    path = "/cgi-bin/webhook/send"

    def __init__(self, clock: Callable[[], float] = time.time):
        super().__init__(clock)
        self.robots: dict[str, WeComRobot] = {}

    def add_robot(self, key: str) -> str:
        """Register a robot; returns its webhook URL."""
        with self._lock:
            self.robots[key] = WeComRobot(key)
        return f"{self.base_url}/cgi-bin/webhook/send?key={key}"

    def _check(self, query: dict[str, str], body: Any, raw: bytes) -> None:
        robot = self.robots.get(query.get("key", ""))
        if robot is None:
            raise Reject(93000, "invalid webhook url")
        if not isinstance(body, dict):
            raise Reject(44004, "empty content")
        if body.get("msgtype") not in WECOM_MSGTYPES:
            raise Reject(40008, "invalid message type")
        self._check_message(body["msgtype"], body.get(body["msgtype"]))
        if _over_rate(robot.attempts, self.clock()):
            robot.limited_count += 1
            raise Reject(45009, "api freq out of limit")
        robot.messages.append(body)

    @staticmethod
    def _check_message(msgtype: str, message: Any) -> None:
        """§3 message types: content present and within its byte limit; mentions well-formed."""
        if not isinstance(message, dict):
            raise Reject(44004, "empty content")
        if msgtype == "news":
            articles = message.get("articles")
            if not (isinstance(articles, list) and 1 <= len(articles) <= 8):
                raise Reject(40058, "invalid parameter")
        if msgtype not in WECOM_MAX_BYTES:
            return
        content = message.get("content")
        if not _non_empty_str(content):
            raise Reject(44004, "empty content")
        if len(content.encode("utf-8")) > WECOM_MAX_BYTES[msgtype]:
            raise Reject(40058, "invalid parameter: content exceed max length")
        if msgtype == "text":
            for name in ("mentioned_list", "mentioned_mobile_list"):
                if not _is_list_of_str(message.get(name, [])):
                    raise Reject(40058, "invalid parameter")


# ================================================================================================
# Feishu / Lark (CHANNELS.md §3b)
# ================================================================================================

FEISHU_PATH = "/open-apis/bot/v2/hook/"
FEISHU_MSGTYPES = ("text", "post", "interactive", "image", "share_chat")
FEISHU_MAX_BYTES = 20 * 1024            # the whole request body
FEISHU_TIMESTAMP_SKEW_S = 3600          # the timestamp (seconds) must be within 1 hour
FEISHU_PER_MINUTE, FEISHU_PER_SECOND = 100, 5
FEISHU_CARD_ELEMENTS = ("div", "markdown", "hr")
FEISHU_HEADER_TEMPLATES = ("blue", "wathet", "turquoise", "green", "yellow", "orange", "red", "carmine",
                           "violet", "purple", "indigo", "grey", "default")


def feishu_sign(secret: str, timestamp: str) -> str:
    """Base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b"")): Feishu's signature, in the body."""
    digest = hmac.new(f"{timestamp}\n{secret}".encode("utf-8"), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass
class FeishuBot:
    """A registered bot: its security settings and what it received."""

    token: str
    secret: str | None = None
    keywords: tuple[str, ...] = ()
    allowed_ips: tuple[str, ...] = ()                     # empty: no IP allow-list
    legacy: bool = False                                 # answers as older bots: StatusCode / StatusMessage
    messages: list[dict] = field(default_factory=list)   # accepted messages, parsed
    limited_count: int = 0                               # how many 11232 answers were given
    minute: deque = field(default_factory=deque)         # request times in the 60 s window
    second: deque = field(default_factory=deque)         # request times in the 1 s window


class FakeFeishu(_FakeServer):
    """Feishu's custom bot: `POST /open-apis/bot/v2/hook/TOKEN` (Lark's is the same on another host).

    Always HTTP 200 with `{"code": N, "msg": "...", "data": {}}` (a bot added with `legacy=True`
    answers `{"StatusCode": N, "StatusMessage": "..."}`, as older bots do). Checks, in order:

    1. token unknown                                  → 19001 "incoming webhook access token invalid"
    2. IP allow-list (bot has one) without the caller → 19022 "ip not allowed"
    3. body over 20 KB, not a JSON object             → 9499 "Bad Request"
    4. signing (bot has a secret): `timestamp` (seconds, a string) within 1 hour and
       `sign` = feishu_sign(secret, timestamp), both in the body → 19021 "sign match fail or timestamp is not within one hour from current time"
    5. message shape: a known msg_type; text: `content.text`; post: `content.post.<lang>.content`
       lines of elements with a tag; interactive: `card.header.title.content` text, a known
       `card.header.template`, `card.elements` a non-empty list of div / markdown / hr, each
       markdown with `content`, each div with `text.content` → 9499 "Bad Request"
    6. keywords (bot has keywords): one must be in the message's text → 19024 "Key Words Not Found"
    7. over 100 requests in 60 s, or 5 in 1 s → 11232 "frequency limited psm[lark.oapi.app_platform_runtime]appID[…]"
    8. otherwise 0 "success", and the message is appended to `bot.messages`.

    `system_busy = N` answers the next N with HTTP 200 and code 11232 (the service's only
    transient code in §3b), before any check.
    """

    def __init__(self, clock: Callable[[], float] = time.time):
        super().__init__(clock)
        self.bots: dict[str, FeishuBot] = {}

    def add_bot(self, token: str, secret: str | None = None, keywords: tuple[str, ...] = (),
                allowed_ips: tuple[str, ...] = (), legacy: bool = False) -> str:
        """Register a bot; returns its webhook URL."""
        with self._lock:
            self.bots[token] = FeishuBot(token, secret, tuple(keywords), tuple(allowed_ips), legacy)
        return f"{self.base_url}{FEISHU_PATH}{token}"

    def __call__(self, environ, start_response):
        request = Request(environ)
        if not request.path.startswith(FEISHU_PATH):
            return Response("404 page not found", status=404)(environ, start_response)
        if request.method != "POST":
            return Response("method not allowed", status=405)(environ, start_response)
        raw = request.get_data()
        token = request.path[len(FEISHU_PATH):]
        record = RecordedRequest(query=_parse_query(environ.get("QUERY_STRING", "")), headers=dict(request.headers),
                                 raw=raw, body=_parse_json(raw))
        with self._lock:
            bot = self.bots.get(token)
            if self.system_busy > 0:
                self.system_busy -= 1
                record.errcode, record.errmsg = 11232, "frequency limited"
            else:
                try:
                    self._check_bot(bot, request.remote_addr or "", record.body, raw)
                except Reject as rejected:
                    record.errcode, record.errmsg = rejected.errcode, rejected.errmsg
            if record.errcode == 0:
                record.errmsg = "success"
            self.requests.append(record)
        if bot is not None and bot.legacy:
            answer = {"StatusCode": record.errcode, "StatusMessage": record.errmsg}
        else:
            answer = {"code": record.errcode, "msg": record.errmsg, "data": {}}
        return Response(json.dumps(answer), status=200, mimetype="application/json")(environ, start_response)

    def _check_bot(self, bot: FeishuBot | None, remote: str, body: Any, raw: bytes) -> None:
        if bot is None:
            raise Reject(19001, "param invalid: incoming webhook access token invalid")
        if bot.allowed_ips and remote not in bot.allowed_ips:
            raise Reject(19022, "ip not allowed")
        if len(raw) > FEISHU_MAX_BYTES or not isinstance(body, dict):
            raise Reject(9499, "Bad Request")
        self._check_signature(bot, body)
        self._check_shape(body)
        if bot.keywords and not any(word in _feishu_text(body) for word in bot.keywords):
            raise Reject(19024, "Key Words Not Found")
        now = self.clock()
        over_minute = _over_window(bot.minute, now, 60.0, FEISHU_PER_MINUTE)
        over_second = _over_window(bot.second, now, 1.0, FEISHU_PER_SECOND)
        if over_minute or over_second:
            bot.limited_count += 1
            raise Reject(11232, "frequency limited psm[lark.oapi.app_platform_runtime]appID[1]")
        bot.messages.append(body)

    def _check_signature(self, bot: FeishuBot, body: dict) -> None:
        """§3b signing: `timestamp` in seconds within 1 hour, `sign` over it, both in the body."""
        if bot.secret is None:
            return
        timestamp, given = body.get("timestamp"), body.get("sign")
        if not (isinstance(timestamp, str) and timestamp.isascii() and timestamp.isdigit() and isinstance(given, str)):
            raise Reject(19021, "sign match fail or timestamp is not within one hour from current time")
        if abs(int(timestamp) - self.clock()) > FEISHU_TIMESTAMP_SKEW_S:
            raise Reject(19021, "sign match fail or timestamp is not within one hour from current time")
        if not hmac.compare_digest(given, feishu_sign(bot.secret, timestamp)):
            raise Reject(19021, "sign match fail or timestamp is not within one hour from current time")

    @staticmethod
    def _check_shape(body: dict) -> None:
        """§3b message types; an interactive card's header and elements."""
        msg_type = body.get("msg_type")
        if msg_type not in FEISHU_MSGTYPES:
            raise Reject(9499, "Bad Request")
        if msg_type == "interactive":
            card = body.get("card")
            if not isinstance(card, dict):
                raise Reject(9499, "Bad Request")
            header = card.get("header", {})
            title = header.get("title") if isinstance(header, dict) else None
            if not (isinstance(title, dict) and _non_empty_str(title.get("content"))
                    and header.get("template", "default") in FEISHU_HEADER_TEMPLATES):
                raise Reject(9499, "Bad Request")
            elements = card.get("elements")
            if not (isinstance(elements, list) and elements and all(_valid_element(e) for e in elements)):
                raise Reject(9499, "Bad Request")
            return
        content = body.get("content")
        if not isinstance(content, dict):
            raise Reject(9499, "Bad Request")
        if msg_type == "text" and not _non_empty_str(content.get("text")):
            raise Reject(9499, "Bad Request")
        if msg_type == "post":
            post = content.get("post")
            if not (isinstance(post, dict) and post and all(
                    isinstance(lang, dict) and isinstance(lang.get("content"), list) for lang in post.values())):
                raise Reject(9499, "Bad Request")


def _valid_element(element: Any) -> bool:
    """A card element the fake knows: markdown with content, div with text.content, hr."""
    if not isinstance(element, dict) or element.get("tag") not in FEISHU_CARD_ELEMENTS:
        return False
    if element["tag"] == "markdown":
        return _non_empty_str(element.get("content"))
    if element["tag"] == "div":
        text = element.get("text")
        return isinstance(text, dict) and _non_empty_str(text.get("content"))
    return True


def _feishu_text(body: dict) -> str:
    """The text keywords are looked for in: a text's text, a card's title and element texts,
    else the whole content (the fake's approximation for the other types)."""
    if body["msg_type"] == "text":
        return body["content"]["text"]
    if body["msg_type"] == "interactive":
        card = body["card"]
        parts = [card["header"]["title"]["content"]]
        for element in card["elements"]:
            parts.append(element.get("content") or (element.get("text") or {}).get("content") or "")
        return "\n".join(parts)
    return json.dumps(body.get("content"), ensure_ascii=False)


def _over_window(times: deque, now: float, window: float, limit: int) -> bool:
    """Record a request at `now`; True when the last `window` seconds now hold more than `limit`."""
    times.append(now)
    while times and times[0] <= now - window:
        times.popleft()
    return len(times) > limit
