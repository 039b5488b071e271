"""The DingTalk robot settings form: the shared robot fields, the 加签 secret and the keyword."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, RadioField, SelectChoice, StringField
from wtforms.validators import Length, Optional

from notify.channels.dingtalk.transport import KEYWORD_PREFIX, KEYWORD_SUFFIX, DingTalkTransport
from notify.channels.robot_form import RobotForm, mention_fields


class DingTalkForm(RobotForm):
    transport = DingTalkTransport
    secret = StringField(_l("Signing secret (加签)"), render_kw={"autocomplete": "off", "spellcheck": "false",
                                                              "placeholder": "SEC…"})
    keyword = StringField(_l("Keyword"), validators=[Optional(), Length(max=50)])
    keyword_position = RadioField(_l("Where the keyword goes"), default=KEYWORD_PREFIX, choices=[
        SelectChoice(KEYWORD_PREFIX, _l("Before the message")), SelectChoice(KEYWORD_SUFFIX, _l("After the message"))])
    clear_secret = BooleanField(_l("Remove the saved secret (the robot does not use 加签)"))

    def load(self, channel) -> None:
        super().load(channel)
        self.keyword.data = channel.config.get("keyword", "")
        self.keyword_position.data = channel.config.get("keyword_position", KEYWORD_PREFIX)

    def config(self) -> dict:
        return dict(super().config(), keyword=(self.keyword.data or "").strip(),
                    keyword_position=self.keyword_position.data)

    def effective_secret(self) -> str | None:
        if self.clear_secret.data:
            return None
        typed = (self.secret.data or "").strip()
        return typed or (self.channel.secret if self.channel else None) or None


mention_fields(DingTalkForm, DingTalkTransport.mention_kinds)
