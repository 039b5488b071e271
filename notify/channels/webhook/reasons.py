"""Why a delivery to WebHooks failed: this kind's reason codes (notify/reasons.py), joined
to the table by the registry (notify/channels/__init__.py)."""
from __future__ import annotations

from notify.reasons import N_

TEXTS = {
    "webhook_gone": N_("The receiver answered 410 Gone: the endpoint no longer exists. The WebHook was disabled."),
    "webhook_refused": N_("The receiver answered %(status)s: it refuses this delivery, which is not retried."),
    "webhook_redirect": N_("The receiver answered with a redirect (HTTP %(status)s to %(location)s). Redirects are "
                           "not followed: configure the final URL."),
    "webhook_status": N_("The receiver answered HTTP %(status)s."),
    "webhook_unauthorized": N_("The receiver answered HTTP %(status)s: it did not accept the request's token. Check "
                               "that the receiver has this WebHook's secret and the same mode (signature or "
                               "password)."),
    "data_not_json": N_("The event's data holds a number that JSON cannot carry (NaN, Infinity, or more digits than "
                        "can be written): a WebHook cannot send it."),
}
