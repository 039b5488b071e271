"""Feishu / Lark custom bot (飞书自定义机器人), as in CHANNELS.md section 3b: the token in the URL's
path is the credential, messages are interactive cards coloured by the event's state, the optional
signature (签名校验) and its timestamp go in the JSON body, and `code` is the verdict (HTTP 200
for failures too).

Signing differs from DingTalk's: the timestamp is in seconds, the HMAC key is
`timestamp + "\\n" + secret` and the message is empty, and the Base64 signature is not URL-encoded
(it travels in JSON, not in a query).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit

from flask_babel import lazy_gettext as _l

from notify import hooks, messages, signing
from notify.channels.base import PERMANENT, TRANSIENT
from notify.channels.robot import RobotTransport

# A request body of at most 20 KB (20,480 bytes): the message is kept within 20,000 bytes less
# room for the signature fields (`"timestamp":"…","sign":"…",` is 71 bytes).
MAX_BYTES = 20000
SIGNATURE_BYTES = 100
HOOK_PATH = "/open-apis/bot/v2/hook/"
# The header's colour (`card.header.template`) for each state of messages.Summary.
HEADER_COLOURS = {messages.GOOD: "green", messages.NEUTRAL: "blue", messages.WARNING: "orange"}


def sign(secret: str, timestamp_s: int) -> str:
    """Feishu's signature: Base64 of HMAC-SHA256 keyed with `timestamp + "\\n" + secret` over an
    empty message (CHANNELS.md §3b)."""
    key = f"{timestamp_s}\n{secret}".encode("utf-8")
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


class FeishuTransport(RobotTransport):
    kind = "feishu"
    label = _l("Feishu")
    credential_param = "hook token"
    official_host = "open.feishu.cn"
    official_hosts = ("open.feishu.cn", "open.larksuite.com")
    example_url = "https://open.feishu.cn/open-apis/bot/v2/hook/…"
    max_body_bytes = MAX_BYTES - SIGNATURE_BYTES  # 20 KB, less the room the signature takes
    # A custom bot mentions by user id (open_id ou_…, or user_id) or everyone; not by mobile.
    mention_kinds = ("all", "user_ids")
    # 100 a minute and 5 a second per bot, both kept by the shared limiter (notify.ratelimit).
    rate_limits = ((100, 60.0), (5, 1.0))
    answer_reason = "feishu_code"
    errors = {
        19021: (PERMANENT, "feishu_sign", None),
        19022: (PERMANENT, "feishu_ip", None),
        19024: (PERMANENT, "feishu_keyword", None),
        19001: (PERMANENT, "feishu_token", None),
        9499: (PERMANENT, "feishu_bad_request", None),
        # Feishu says neither which window was crossed nor for how long it refuses: a minute
        # clears the longest one (100 a minute), and it punishes no further (unlike DingTalk).
        11232: (TRANSIENT, "feishu_throttled", 60.0),
    }
    gone_codes = frozenset({19001})
    message_codes = frozenset({9499})

    # -- settings ----------------------------------------------------------------------------
    @classmethod
    def credential(cls, url: str) -> str:
        """The token: the path's segment after /open-apis/bot/v2/hook/ (nothing after it)."""
        path = urlsplit(url or "").path
        if HOOK_PATH not in path:
            return ""
        token = path.split(HOOK_PATH, 1)[1]
        return token if token and "/" not in token else ""

    @classmethod
    def mask_url(cls, url: str) -> str:
        token = cls.credential(url)
        return url.replace(HOOK_PATH + token, HOOK_PATH + signing.mask(token), 1) if token else url

    @classmethod
    def no_credential(cls) -> str:
        return str(_l("The URL has no bot token: copy the whole webhook URL from the bot's settings, e.g. "
                      "%(example)s", example=cls.example_url))

    @classmethod
    def validate(cls, config: dict, secret: str | None) -> dict[str, str]:
        errors = super().validate(config, secret)
        secret = (secret or "").strip()
        if secret and not (8 <= len(secret) <= 200 and secret.isascii() and secret.isalnum()):
            errors["secret"] = str(_l("A Feishu signing secret has only letters and digits: copy it from the bot's "
                                      "security settings (签名校验)."))
        keyword = config.get("keyword") or ""
        if len(keyword) > 50 or any(ch in keyword for ch in "\r\n"):
            errors["keyword"] = str(_l("A keyword is one line of at most 50 characters."))
        return errors

    @classmethod
    def normalize(cls, config: dict) -> dict:
        return dict(super().normalize(config), keyword=(config.get("keyword") or "").strip())

    # -- building messages -------------------------------------------------------------------
    def signed_fields(self, timestamp_ms: int) -> dict:
        """The body's `timestamp` (seconds, as a string) and `sign`, when the bot signs."""
        if not self.channel.secret:
            return {}
        timestamp_s = timestamp_ms // 1000
        return {"timestamp": str(timestamp_s), "sign": sign(self.channel.secret, timestamp_s)}

    def build(self, event) -> dict:
        summary = self.summary(event)
        mentions = self.mentions(event)
        with messages.merchant_locale():
            rendered = messages.render("channels/feishu/card.md", summary)
        return self.shrink(lambda content: self.card(summary.title, summary.state, content, mentions),
                           rendered, self.max_body_bytes)

    def build_digest(self, digest) -> dict:
        """One card for a fitted `notify.messages.Digest`: a headline per hook, its order lines,
        then "and N more" with the link. Orange when one of its hooks warns."""
        mentions = self.mentions_for(self.channel.config, hooks.ORDER)
        states = {group.state for group in digest.groups}
        state = messages.WARNING if messages.WARNING in states else (
            states.pop() if len(states) == 1 else messages.NEUTRAL)
        with messages.merchant_locale():
            return self.card(digest.title, state, messages.render_digest("channels/feishu/digest.md", digest),
                             mentions)

    def card(self, title: str, state: str, content: str, mentions: dict) -> dict:
        """An interactive card: the title in a header of the state's colour, then the content, the
        mentions and the keyword (never shortened: they go after the content)."""
        keyword = (self.channel.config.get("keyword") or "").strip()
        tail = ""
        if mentions["all"]:
            tail += "<at id=all></at>"
        tail += "".join(f"<at id={user_id}></at>" for user_id in mentions["user_ids"])
        if keyword:
            # As typed: Feishu looks for the keyword itself (the merchant's own setting, one line).
            tail += ("\n" if tail else "") + keyword
        text = f"{content}\n\n{tail}" if tail else content
        return {"msg_type": "interactive", "card": {
            "config": {"wide_screen_mode": True},
            "header": {"title": {"tag": "plain_text", "content": title},
                       "template": HEADER_COLOURS.get(state, "blue")},
            "elements": [{"tag": "markdown", "content": text}],
        }}

    # -- answers -----------------------------------------------------------------------------
    def answer(self, answer) -> tuple[int, str]:
        """`{"code": 0, "msg": "success", "data": {}}`, or older bots' `{"StatusCode": 0,
        "StatusMessage": "success"}`."""
        if "code" in answer:
            return int(answer["code"]), str(answer.get("msg", ""))
        return int(answer["StatusCode"]), str(answer.get("StatusMessage", ""))

