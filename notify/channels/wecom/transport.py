"""WeCom group robot (企业微信群机器人), as in CHANNELS.md section 3: the `key` in the URL is the
credential, messages are markdown with WeCom's colour tags, and `errcode` is the verdict.

Mentions: WeCom's markdown can mention user ids (`<@userid>`) but neither mobiles nor @all. When
a group of events must mention a mobile or everyone, its messages are sent as a `text` message
(the same content without colours), which carries `mentioned_list` and `mentioned_mobile_list`:
one message, one request, one place in the rate limit (docs/decisions.md).
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

from notify import hooks, messages
from notify.channels.base import PERMANENT, TRANSIENT
from notify.channels.robot import RobotTransport

MARKDOWN_MAX_BYTES = 4096
TEXT_MAX_BYTES = 2048


class WeComTransport(RobotTransport):
    kind = "wecom"
    label = _l("WeCom")
    credential_param = "key"
    official_host = "qyapi.weixin.qq.com"
    example_url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…"
    mention_kinds = ("all", "mobiles", "user_ids")
    errors = {
        93000: (PERMANENT, "wecom_key", None),
        40008: (PERMANENT, "wecom_msgtype", None),
        40058: (PERMANENT, "wecom_param", None),
        44004: (PERMANENT, "wecom_empty", None),
        45009: (TRANSIENT, "wecom_throttled", 60.0),
        -1: (TRANSIENT, "wecom_busy", None),
    }
    # The key was removed (the robot taken out of its group) or never existed: disabled, as Feishu's 19001.
    gone_codes = frozenset({93000})

    def build(self, event) -> dict:
        summary = self.summary(event)
        mentions = self.mentions(event)
        if mentions["all"] or mentions["mobiles"]:
            with messages.merchant_locale():
                content = messages.render("channels/wecom/text.txt", summary)
            listed = mentions["user_ids"] + (["@all"] if mentions["all"] else [])
            return {"msgtype": "text", "text": {"content": self.fit(content, TEXT_MAX_BYTES),
                                                "mentioned_list": listed,
                                                "mentioned_mobile_list": mentions["mobiles"]}}
        with messages.merchant_locale():
            content = messages.render("channels/wecom/chat.md", summary)
        tail = "".join(f"\n<@{user_id}>" for user_id in mentions["user_ids"])
        return {"msgtype": "markdown",
                "markdown": {"content": self.fit(content, MARKDOWN_MAX_BYTES - len(tail.encode("utf-8"))) + tail}}

    def _digest_form(self) -> tuple[str, int, dict]:
        """The digest's template, its room in bytes and the mentions: markdown within 4,096 bytes
        (less the user ids' mentions after it), or text within 2,048 when the order group mentions
        a mobile or everyone."""
        mentions = self.mentions_for(self.channel.config, hooks.ORDER)
        if mentions["all"] or mentions["mobiles"]:
            return "channels/wecom/digest.txt", TEXT_MAX_BYTES, mentions
        tail = "".join(f"\n<@{user_id}>" for user_id in mentions["user_ids"])
        return "channels/wecom/digest.md", MARKDOWN_MAX_BYTES - len(tail.encode("utf-8")), mentions

    def fit_digest(self, digest):
        """As many lines as fit the message's room (`_digest_form`)."""
        template, room, _mentions = self._digest_form()
        with messages.merchant_locale():
            return messages.fit_digest(digest, lambda d: len(messages.render_digest(template, d).encode("utf-8")),
                                       room)

    def build_digest(self, digest) -> dict:
        """As `build`, for a fitted digest: markdown, or text when someone is mentioned by mobile or
        everyone is."""
        template, room, mentions = self._digest_form()
        with messages.merchant_locale():
            content = self.fit(messages.render_digest(template, digest), room)
        if template.endswith(".txt"):
            return {"msgtype": "text", "text": {
                "content": content,
                "mentioned_list": mentions["user_ids"] + (["@all"] if mentions["all"] else []),
                "mentioned_mobile_list": mentions["mobiles"]}}
        tail = "".join(f"\n<@{user_id}>" for user_id in mentions["user_ids"])
        return {"msgtype": "markdown", "markdown": {"content": content + tail}}
