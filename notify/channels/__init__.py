"""Channel kinds: one transport class each, looked up by `Channel.kind`.

Adding a channel kind means adding a transport here; the dispatch path and the jobs do not change.
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

from notify.transports.base import (PERMANENT, SUCCESS, TRANSIENT, CannotPrepare, DeliverySettings, OutgoingRequest,
                                    Outcome, Transport)
from notify.transports.dingtalk import DingTalkTransport
from notify.transports.email import EmailTransport
from notify.transports.webhook import WebhookTransport
from notify.transports.wecom import WeComTransport

REGISTRY: dict[str, type[Transport]] = {
    transport.kind: transport for transport in (EmailTransport, DingTalkTransport, WeComTransport, WebhookTransport)
}

# The four methods of the seed's page, in its order.
METHODS = (
    ("email", _l("Email")),
    ("dingtalk", _l("DingTalk")),
    ("wecom", _l("WeCom")),
    ("webhook", _l("WebHook")),
)


def transport_for(kind: str) -> type[Transport]:
    try:
        return REGISTRY[kind]
    except KeyError:
        raise LookupError(f"no transport for channel kind {kind!r}") from None


__all__ = ["METHODS", "PERMANENT", "REGISTRY", "SUCCESS", "TRANSIENT", "CannotPrepare", "DeliverySettings", "OutgoingRequest",
           "Outcome", "Transport", "transport_for"]
