"""The WebHook settings form: URL, authentication mode, secret, Standard Webhooks."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, RadioField, SelectChoice, StringField

from forms import ChannelForm
from notify.channels.webhook.transport import AUTH_PASSWORD, AUTH_SIGNATURE, WebhookTransport


class WebhookForm(ChannelForm):
    transport = WebhookTransport
    url = StringField(_l("Payload URL"), render_kw={"placeholder": "https://example.com/hooks/apsdai",
                                                    "inputmode": "url", "autocomplete": "off"})
    auth_mode = RadioField(_l("Authentication"), default=AUTH_SIGNATURE, choices=[
        SelectChoice(AUTH_SIGNATURE, _l("Signature: X-Apsdai-Token is an HMAC-SHA256 signature of the timestamp")),
        SelectChoice(AUTH_PASSWORD, _l("Password: X-Apsdai-Token is the password, sent as-is")),
    ])
    secret = StringField(_l("Secret"), render_kw={"autocomplete": "off", "spellcheck": "false"})
    standard_webhooks = BooleanField(_l("Also sign as Standard Webhooks (webhook-id, webhook-timestamp, "
                                        "webhook-signature)"))

    def load(self, channel) -> None:
        super().load(channel)
        self.url.data = channel.config.get("url")
        self.auth_mode.data = channel.config.get("auth_mode")
        self.standard_webhooks.data = bool(channel.config.get("standard_webhooks"))

    def config(self) -> dict:
        return {"url": (self.url.data or "").strip(), "auth_mode": self.auth_mode.data,
                "standard_webhooks": bool(self.standard_webhooks.data)}

    def effective_secret(self) -> str | None:
        """A blank secret on the edit form keeps the one already saved."""
        typed = (self.secret.data or "").strip()
        return typed or (self.channel.secret if self.channel else None)
