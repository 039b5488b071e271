"""Why a delivery failed, stored as a code with its parameters and put into words when shown.

A worker runs in one language; the merchant reads its reasons on pages in the browser's
language, and in emails and chats in the message language. So a reason is never stored as a
sentence: it is a `Reason` (a code from `TEXTS` and its parameters), written to a JSON column as
`{"code": "dns_failed", "params": {"host": "oapi.dingtalk.com"}}`, and rendered by whoever shows
it, in the language of the moment (`str(reason)`, `show()`). Beside it, the text column keeps a
rendered English copy, for logs, grep and anyone reading the database.

Parameters are data: host names, seconds, HTTP statuses, and what a service answered (a
receiver's body, an SMTP reply, DingTalk's errmsg), which is shown verbatim, never translated.
A parameter may itself be a reason (`{"code": …, "params": …}`), rendered in the same language:
a robot's errcode explanation inside "… (DingTalk errcode 310000: …)", the name of the service.

Rows written before codes existed hold only the text: `show(None, text)` gives it as stored. An
unknown code (a newer version wrote it, or one was retired) shows its English copy when there is
one, else a neutral sentence with the code: never an error page.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from flask_babel import gettext

log = logging.getLogger(__name__)


def N_(msgid: str) -> str:
    """Marks a text for extraction (pybabel's default keywords include `N_`) and returns it as
    is: the registry keeps the English msgid, translated when a reason is rendered."""
    return msgid


# code → English msgid with %(param)s placeholders, or a function of the (rendered) params.
TEXTS: dict[str, str | Callable[[dict, bool], str]] = {
    # -- the network (notify.http) --------------------------------------------------------------------
    "dns_failed": N_("DNS lookup failed for %(host)s: this server cannot reach the service. Check the host name "
                     "in the URL, and that this server has internet access and a working DNS resolver (its "
                     "/etc/resolv.conf, or the proxy it must use)."),
    "dns_timeout": N_("DNS lookup of %(host)s did not finish within %(seconds)s s: this server cannot reach the "
                      "service. Check that this server has internet access and a working DNS resolver."),
    "connection_refused": N_("%(host)s refused the connection: this server reached the machine, but nothing "
                             "accepts connections on that port. Check the port in the URL, that the receiver is "
                             "running, and that no firewall rejects this server."),
    "connect_timeout": N_("Timed out connecting to %(host)s after %(seconds)s s: this server cannot reach the "
                          "service. Check this server's internet access, and that no firewall or proxy blocks "
                          "outgoing connections to %(host)s."),
    "connect_failed": N_("Could not connect to %(host)s (%(error)s): this server cannot reach the service. Check "
                         "this server's internet access and network settings, and any firewall or proxy "
                         "between them."),
    "tls_failed": N_("TLS error talking to %(host)s (%(error)s). The secure connection could not be set up: "
                     "check that the URL's port speaks HTTPS, that the certificate is valid for %(host)s and not "
                     "expired, and that this server's clock is right. A proxy that intercepts TLS causes this too."),
    "read_timeout": N_("%(host)s accepted the connection but did not answer within %(seconds)s s. The receiver "
                       "is too slow or stuck: it should answer at once and do its work afterwards. Tried again "
                       "later."),
    "too_slow": N_("%(host)s did not finish answering within %(seconds)s s. The receiver is too slow: it should "
                   "answer at once and do its work afterwards."),
    "connection_closed": N_("%(host)s closed the connection before answering. The receiver, or a proxy in "
                            "between, dropped the request: check its logs."),
    "bad_url": N_("The URL is not valid (%(error)s): correct it in the channel's settings."),
    "network_error": N_("The request to %(host)s failed: %(error)s"),
    # -- the outbound guard (notify.guard) ------------------------------------------------------------
    "guard_never": N_("%(subject)s, %(what)s: deliveries never go there, whatever ALLOW_PRIVATE_TARGETS says."),
    "guard_private": N_("%(subject)s, %(what)s: deliveries go to public addresses only, not to loopback or private "
                        "ones. Set ALLOW_PRIVATE_TARGETS=1 to allow targets on your own network."),
    "host_is_ip": N_("%(host)s is %(ip)s"),
    "address_kind": N_("%(name)s (%(rfc)s)"),
    "address_carrying": N_("%(outer)s carrying %(ip)s: %(name)s (%(rfc)s)"),
    # -- group robots (notify.channels.robot; each kind's own codes are in its folder) --------------
    "robot_status": N_("%(service)s answered HTTP %(status)s."),
    "robot_no_robot": N_("%(service)s answered HTTP %(status)s: there is no robot at this URL. Copy the robot's "
                         "webhook URL again from the group's robot settings."),
    "robot_not_json": N_("%(service)s answered with something that is not its usual JSON. A proxy or captive "
                         "portal may be answering instead: check this server's internet access."),
    "robot_errcode": N_("%(explanation)s (%(service)s errcode %(errcode)s: %(errmsg)s)"),
    "robot_refused": N_("%(service)s refused the message; tried again later. If it keeps happening, look up the "
                        "errcode in the service's documentation."),
    # -- the drain (notify.jobs) ---------------------------------------------------------------------
    "rate_limit_unchecked": N_("The robot's rate limit could not be checked (Redis: %(error)s). Nothing was sent; "
                               "it is tried again later."),
    "internal_unsent": N_("An internal error stopped this attempt before anything was sent (%(error)s); it is tried "
                          "again later."),
    "cannot_prepare": N_("%(reason)s Nothing was sent, and retrying cannot help."),
    "data_unreadable": N_("This event's stored data cannot be read (%(error)s). Nothing was sent, and retrying "
                          "cannot help."),
    "message_unbuildable": N_("The message could not be built from this event's data (%(error)s). Nothing was sent, "
                              "and retrying cannot help: send a corrected event."),
    "internal_sending": N_("Internal error while sending (%(error)s); tried again later."),
    "details_not_stored": N_("The details of this attempt could not be stored."),
    "auto_disabled": N_("Disabled automatically: every delivery failed for %(hours)s hours. Fix the receiver, "
                        "enable it again, and recover what it missed."),
    "channel_deleted": N_("Not sent: the channel was deleted."),
    "channel_disabled": N_("Not sent: the channel was disabled."),
    # -- a channel's filters (notify.rules): why an event created no delivery for it ----------------------
    "filtered_test": N_("it is a test event, and this channel leaves test events out"),
    "filtered_no_product": N_("the event names no product, and this channel takes only some products"),
    "filtered_product": N_("product %(product)s is not one of this channel's products"),
}


def _lazy_msgid(text) -> str:
    """The English msgid of a flask_babel lazy string (what it was built from)."""
    return text._args[0] if getattr(text, "_args", None) else str(text)


def _service(params: dict, english: bool) -> str:
    """The name of a channel kind (`{"kind": "dingtalk"}`), as the page names it."""
    from notify.channels import METHODS

    for kind, label in METHODS:
        if kind == params.get("kind"):
            return _lazy_msgid(label) if english else str(label)
    return str(params.get("kind", "?"))


def _address_range(params: dict, english: bool) -> str:
    """The name of a range in the guard's table (`{"network": "127.0.0.0/8"}`), e.g. "loopback"."""
    from notify import guard

    entry = guard.entry_by_network(str(params.get("network", "")))
    if entry is None:
        return str(params.get("network", "?"))
    return _lazy_msgid(entry.name) if english else str(entry.name)


def _money(params: dict, name: str, english: bool) -> str:
    """An amount parameter with the `currency` parameter, as the page's language writes money
    ("¥50.00"); as stored when it is not an amount."""
    from decimal import Decimal, InvalidOperation

    from babel.numbers import format_currency
    from flask_babel import get_locale

    value, currency = params.get(name), params.get("currency")
    try:
        return format_currency(Decimal(str(value)), str(currency), locale="en" if english else (get_locale() or "en"))
    except (InvalidOperation, ValueError, TypeError, ArithmeticError):
        return str(value)


def _filtered_amount(params: dict, english: bool) -> str:
    template = N_("order amount %(amount)s is below %(minimum)s")
    shown = {"amount": _money(params, "amount", english), "minimum": _money(params, "minimum", english)}
    return template % shown if english else gettext(template, **shown)


def _filtered_amount_unreadable(params: dict, english: bool) -> str:
    template = N_("the order's amount (%(amount)s) cannot be read, so it is not at or above %(minimum)s")
    shown = {"amount": str(params.get("amount", "")), "minimum": _money(params, "minimum", english)}
    return template % shown if english else gettext(template, **shown)


TEXTS["service"] = _service
TEXTS["filtered_amount"] = _filtered_amount
TEXTS["filtered_amount_unreadable"] = _filtered_amount_unreadable
TEXTS["address_range"] = _address_range

UNKNOWN = N_("The reason was stored as %(code)s, which this version does not know.")


@dataclass(frozen=True)
class Reason:
    """A reason as data. `str()` renders it in the current locale (the page's, or the message
    language inside `notify.messages.merchant_locale()`); `english()` without gettext."""
    code: str
    params: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"code": self.code, "params": {k: _json(v) for k, v in self.params.items()}}

    def english(self) -> str:
        return _render(self.to_json(), english=True)

    def __str__(self) -> str:
        return _render(self.to_json(), english=False)

    # Reasons travel through code that once carried sentences (flash messages, `%` formatting,
    # f-strings in logs): there it formats as its words in the current language.
    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def reason(code: str, **params) -> Reason:
    """A reason; `code` must be in `TEXTS` (tests check every code renders in every language)."""
    return Reason(code, params)


def _json(value):
    if isinstance(value, Reason):
        return value.to_json()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _is_reason(value) -> bool:
    return isinstance(value, dict) and isinstance(value.get("code"), str)


def _render(data: dict, english: bool) -> str:
    code, params = data.get("code"), data.get("params") or {}
    if not isinstance(params, dict):
        params = {}
    shown = {key: _render(value, english) if _is_reason(value) else value for key, value in params.items()}
    text = TEXTS.get(code)
    if callable(text):
        return text(shown, english)
    if text is None:
        template, shown = UNKNOWN, {"code": code}
    else:
        template = text
    try:
        return template % shown if english else gettext(template, **shown)
    except (KeyError, ValueError, TypeError):
        # A stored row whose parameters do not fit this version's text: say what is known.
        log.warning("reason %r does not fit its parameters %r", code, sorted(shown))
        return f"{code}: " + ", ".join(f"{k}={v}" for k, v in shown.items())


def english(value) -> str | None:
    """The English copy of a reason or of a plain text (a sentence from older code, or a test)."""
    if value is None:
        return None
    return value.english() if isinstance(value, Reason) else str(value)


def as_json(value) -> dict | None:
    """What the JSON column stores for `value`: the code and params of a reason, else None (plain text)."""
    return value.to_json() if isinstance(value, Reason) else None


def show(stored: dict | None, text: str | None) -> str | None:
    """A stored reason in words, in the current locale: from its code when there is one, else the
    text as stored (rows older than codes). An unknown code falls back to the stored English copy."""
    if _is_reason(stored):
        if stored["code"] in TEXTS or not text:
            return _render(stored, english=False)
        return text
    return text


def find(stored: dict | None, text: str | None) -> "Shown | None":
    """`show()` as an object that renders when formatted: for an email or a chat, rendered in the
    language in force when the template runs (`merchant_locale()`)."""
    if not stored and not text:
        return None
    return Shown(stored, text)


@dataclass(frozen=True)
class Shown:
    stored: dict | None
    text: str | None

    def __str__(self) -> str:
        return show(self.stored, self.text) or ""
