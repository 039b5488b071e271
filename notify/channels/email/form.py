"""The email settings form: the recipients (the mail server is under Settings › General)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import TextAreaField

from forms import ChannelForm
from notify.channels.email.transport import EmailTransport


class EmailForm(ChannelForm):
    transport = EmailTransport
    recipients = TextAreaField(_l("Recipients"), render_kw={"rows": 3, "placeholder": "owner@example.com, ops@example.com",
                                                           "autocomplete": "off"})

    def load(self, channel) -> None:
        super().load(channel)
        self.recipients.data = "\n".join(channel.config.get("recipients") or [])

    def config(self) -> dict:
        return {"recipients": self.recipients.data or ""}
