"""DingTalk custom group robot (钉钉自定义机器人), as in CHANNELS.md section 2: markdown messages,
the optional 加签 signature in the query, @mentions by mobile, and `errcode` as the verdict."""
from __future__ import annotations

from urllib.parse import quote_plus

from flask_babel import lazy_gettext as _l

from notify import hooks, messages, signing
from notify.reasons import reason
from notify.channels.base import PERMANENT, TRANSIENT
from notify.channels.robot import RobotTransport

MAX_BYTES = 20000
KEYWORD_PREFIX, KEYWORD_SUFFIX = "prefix", "suffix"


class DingTalkTransport(RobotTransport):
    kind = "dingtalk"
    label = _l("DingTalk")
    credential_param = "access_token"
    official_host = "oapi.dingtalk.com"
    example_url = "https://oapi.dingtalk.com/robot/send?access_token=…"
    max_body_bytes = MAX_BYTES
    mention_kinds = ("all", "mobiles")
    errors = {
        300001: (PERMANENT, "dingtalk_token", None),
        300005: (PERMANENT, "dingtalk_token", None),
        130101: (TRANSIENT, "dingtalk_throttled", 600.0),
        460101: (PERMANENT, "dingtalk_too_long", None),
        101002: (PERMANENT, "dingtalk_too_long", None),
        -1: (TRANSIENT, "dingtalk_busy", None),
    }
    # The robot was removed from its group (or never existed): disabled, as Feishu's 19001.
    gone_codes = frozenset({300001, 300005})

    def classify(self, code: int, message: str):
        if code != 310000:
            return super().classify(code, message)
        # One code for every security check: errmsg says which.
        text = message.lower()
        if "sign" in text:
            explanation = "dingtalk_sign"
        elif "keyword" in text:
            explanation = "dingtalk_keyword"
        elif "timestamp" in text:
            explanation = "dingtalk_timestamp"
        elif "ip" in text:
            explanation = "dingtalk_ip"
        else:
            explanation = "dingtalk_security"
        return PERMANENT, reason(explanation), None

    @classmethod
    def validate(cls, config: dict, secret: str | None) -> dict[str, str]:
        errors = super().validate(config, secret)
        secret = (secret or "").strip()
        if secret and not (secret.startswith("SEC") and secret.isalnum() and 10 <= len(secret) <= 200):
            errors["secret"] = str(_l("A DingTalk signing secret starts with SEC and has only letters and digits: "
                                      "copy it from the robot's security settings (加签)."))
        keyword = config.get("keyword") or ""
        if len(keyword) > 50 or any(ch in keyword for ch in "\r\n"):
            errors["keyword"] = str(_l("A keyword is one line of at most 50 characters."))
        if config.get("keyword_position", KEYWORD_PREFIX) not in (KEYWORD_PREFIX, KEYWORD_SUFFIX):
            errors["keyword_position"] = str(_l("Choose before or after the message."))
        return errors

    @classmethod
    def normalize(cls, config: dict) -> dict:
        return dict(super().normalize(config), keyword=(config.get("keyword") or "").strip(),
                    keyword_position=config.get("keyword_position") or KEYWORD_PREFIX)

    def request_url(self, timestamp_ms: int) -> str:
        url = self.channel.config.get("url", "")
        if not self.channel.secret:
            return url
        # Encoded exactly once, here; the URL is sent as it is.
        return f"{url}&timestamp={timestamp_ms}&sign={quote_plus(signing.sign_base64(self.channel.secret, timestamp_ms))}"

    def build(self, event) -> dict:
        summary = self.summary(event)
        mentions = self.mentions(event)
        with messages.merchant_locale():
            rendered = messages.render("channels/robot.md", summary)
        # Over DingTalk's size limit, the content is shortened (never the keyword or the mentions).
        return self.shrink(lambda content: self.message(summary.title, content, mentions),
                           rendered, self.max_body_bytes)

    def message(self, title: str, text: str, mentions: dict) -> dict:
        """The markdown message with the robot's keyword and the mentions added."""
        config = self.channel.config
        keyword = (config.get("keyword") or "").strip()
        if keyword:
            suffix = config.get("keyword_position") == KEYWORD_SUFFIX
            title = f"{title} {keyword}" if suffix else f"{keyword} {title}"
            text = f"{text}\n\n{keyword}" if suffix else f"{keyword}\n\n{text}"
        if mentions["mobiles"]:
            # DingTalk only notifies a mobile that also appears as @mobile in the text.
            text += "\n\n" + " ".join(f"@{m}" for m in mentions["mobiles"])
        return {"msgtype": "markdown", "markdown": {"title": title, "text": text},
                "at": {"atMobiles": mentions["mobiles"], "isAtAll": mentions["all"]}}

    def build_digest(self, digest) -> dict:
        mentions = self.mentions_for(self.channel.config, hooks.ORDER)
        with messages.merchant_locale():
            return self.message(digest.title, messages.render_digest("channels/robot_digest.md", digest), mentions)
