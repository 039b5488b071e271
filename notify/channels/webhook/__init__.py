"""WebHook: the APSDAI contract (signed JSON POSTs to the merchant's own systems). Its own pages
(reveal and rotate the secret, the signature check, the receiver demo) are in the notifications
blueprint; its templates add the signature check and the rotation to the settings page."""
from __future__ import annotations

from notify.channels.base import Kind
from notify.channels.webhook.reasons import TEXTS
from notify.channels.webhook.form import WebhookForm
from notify.channels.webhook.transport import WebhookTransport

KIND = Kind(transport=WebhookTransport, form=WebhookForm, path="webhooks", reasons=TEXTS)
