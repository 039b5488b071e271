"""Email: one message to the channel's recipients through the mail server of Settings › General."""
from __future__ import annotations

from notify.channels.base import Kind
from notify.channels.email.reasons import TEXTS
from notify.channels.email.form import EmailForm
from notify.channels.email.transport import EmailTransport, server_description


def _method_context(channels: list, last: dict) -> dict:
    """Whether the mail server answered the last time it was used, by any email channel."""
    attempts = [last[c.id] for c in channels if c.id in last]
    return {"mail_server": server_description(),
            "mail_last": max(attempts, key=lambda a: a.started_at, default=None)}


def _form_context() -> dict:
    return {"mail_server": server_description()}


KIND = Kind(transport=EmailTransport, form=EmailForm, path="email", method_context=_method_context,
            form_context=_form_context, reasons=TEXTS)
