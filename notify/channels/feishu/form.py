"""The Feishu / Lark bot settings form: the shared robot fields (user ids to mention, no mobiles),
the signing secret (签名校验) and a keyword."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, StringField
from wtforms.validators import Length, Optional

from notify.channels.feishu.transport import FeishuTransport
from notify.channels.robot_form import RobotForm, mention_fields


class FeishuForm(RobotForm):
    transport = FeishuTransport
    secret = StringField(_l("Signing secret (签名校验)"), render_kw={"autocomplete": "off", "spellcheck": "false"})
    keyword = StringField(_l("Keyword"), validators=[Optional(), Length(max=50)])
    clear_secret = BooleanField(_l("Remove the saved secret (the bot does not use 签名校验)"))

    def load(self, channel) -> None:
        super().load(channel)
        self.keyword.data = channel.config.get("keyword", "")

    def config(self) -> dict:
        return dict(super().config(), keyword=(self.keyword.data or "").strip())

    def effective_secret(self) -> str | None:
        """A blank field keeps the saved secret, unless it is removed."""
        if self.clear_secret.data:
            return None
        typed = (self.secret.data or "").strip()
        return typed or (self.channel.secret if self.channel else None) or None


mention_fields(FeishuForm, FeishuTransport.mention_kinds, user_id_example="ou_7d8a6e6df7621556ce0d21922b676706, …")
