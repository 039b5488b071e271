"""What a person reads: the text of chat and email notifications, in the merchant's language.

`summarize()` turns an event into a `Summary` (a title, a state, labelled facts, the report's
days) with amounts and times formatted for the merchant's locale and time zone. The layouts live in
`templates/messages/`: `chat.md` (DingTalk and WeCom markdown), `chat.txt` (WeCom text, for
mentions by mobile), `email.txt` and `email.html`. Every transport renders through `render()`, so
a hook reads the same everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal
from flask import current_app
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _

from notify import hooks, shop_settings

# The colour of a message's state: WeCom's font colours, and a class in the email.
GOOD, NEUTRAL, WARNING = "info", "comment", "warning"

_ORDER_STATES = {
    "order_create_hook": NEUTRAL, "order_pay_hook": GOOD, "order_cancel_hook": NEUTRAL,
    "order_refund_hook": WARNING, "order_out_of_stock_hook": WARNING, "order_finish_hook": GOOD,
}
# The order field that holds the time of the transition each hook reports.
_ORDER_TIMES = {
    "order_create_hook": "created_at", "order_pay_hook": "paid_at", "order_cancel_hook": "cancelled_at",
    "order_refund_hook": "refunded_at", "order_out_of_stock_hook": "paid_at", "order_finish_hook": "completed_at",
}


@dataclass
class Day:
    date: str
    order_count: str
    amount: str


@dataclass
class Summary:
    hook: str
    hook_label: str
    title: str  # one line: the chat preview, the email subject after the shop's name
    state: str  # GOOD, NEUTRAL or WARNING: the colour of `hook_label` where colour is available
    facts: list[tuple[str, str]] = field(default_factory=list)
    days: list[Day] = field(default_factory=list)
    timezone: str = "UTC"
    is_test: bool = False
    shop: str = ""

    @property
    def subject(self) -> str:
        test = _("[TEST] ") if self.is_test else ""
        return f"[{self.shop}] {test}{self.title}"


class _Format:
    """Amounts, numbers and times for one locale and time zone; tolerant of odd input (the data
    comes from the merchant's shop): what cannot be parsed is shown as it came."""

    def __init__(self, locale: str, tz: str):
        self.locale, self.tz = locale, ZoneInfo(tz)

    def money(self, amount, currency) -> str:
        try:
            return format_currency(Decimal(str(amount)), str(currency or "CNY"), locale=self.locale)
        except (InvalidOperation, ValueError, TypeError):
            return f"{amount} {currency or ''}".strip()

    def number(self, value) -> str:
        try:
            return format_decimal(Decimal(str(value)), locale=self.locale)
        except (InvalidOperation, ValueError, TypeError):
            return str(value)

    def when(self, value) -> str:
        if not value:
            return ""
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return str(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return format_datetime(moment, "yyyy-MM-dd HH:mm:ss", tzinfo=self.tz, locale=self.locale)

    def day(self, value) -> str:
        try:
            return format_date(datetime.strptime(str(value), "%Y-%m-%d").date(), "medium", locale=self.locale)
        except ValueError:
            return str(value)


def _text(value) -> str:
    """One line of merchant data: no line breaks (they would break the layout), bounded length."""
    return " ".join(str(value).split())[:200]


def _order(summary: Summary, data: dict, fmt: _Format) -> None:
    order = data.get("order") or {}
    product = order.get("product") or {}
    number = _text(order.get("order_no", "?"))
    amount = fmt.money(order.get("amount", ""), order.get("currency"))
    titles = {
        "order_create_hook": _("New order %(no)s — %(amount)s", no=number, amount=amount),
        "order_pay_hook": _("Order %(no)s paid — %(amount)s", no=number, amount=amount),
        "order_cancel_hook": _("Order %(no)s cancelled — %(amount)s", no=number, amount=amount),
        "order_refund_hook": _("Order %(no)s refunded — %(amount)s", no=number, amount=amount),
        "order_out_of_stock_hook": _("Order %(no)s paid but out of stock — %(amount)s", no=number, amount=amount),
        "order_finish_hook": _("Order %(no)s completed — %(amount)s", no=number, amount=amount),
    }
    summary.title = titles[summary.hook]
    summary.state = _ORDER_STATES[summary.hook]
    name = _text(product.get("name") or product.get("path") or "?")
    facts = [
        (_("Order number"), number),
        (_("Product"), f"{name} ({_text(product['path'])})" if product.get("path") and product.get("name") else name),
        (_("Quantity"), fmt.number(order.get("quantity", 1))),
        (_("Amount"), amount),
        (_("Buyer"), _text(order.get("buyer_email", ""))),
        (_("Time"), fmt.when(order.get(_ORDER_TIMES[summary.hook]) or order.get("created_at"))),
    ]
    if summary.hook == "order_out_of_stock_hook":
        facts.append((_("What to do"), _("Add license keys or stock: the order completes when keys are added, "
                                         "or refund it.")))
    summary.facts = [(label, value) for label, value in facts if value]


def _alarm(summary: Summary, data: dict, fmt: _Format) -> None:
    product = data.get("product") or {}
    name = _text(product.get("name") or product.get("path") or "?")
    summary.state = WARNING
    if summary.hook == "stock_alarm_hook":
        level = fmt.number(data.get("inventory", "?"))
        summary.title = _("Low stock: %(product)s has %(n)s left", product=name, n=level)
        level_label = _("Inventory left")
    else:
        level = fmt.number(data.get("available_keys", "?"))
        summary.title = _("Low key stock: %(product)s has %(n)s keys left", product=name, n=level)
        level_label = _("Keys available")
    summary.facts = [(_("Product"), name), (level_label, level),
                     (_("Alert threshold"), fmt.number(data.get("threshold", "?")))]


def _report(summary: Summary, data: dict, fmt: _Format) -> None:
    currency = data.get("currency")
    summary.state = GOOD
    summary.title = _("Orders of the last 2 days")
    for day in (data.get("days") or [])[:7]:
        if isinstance(day, dict):
            summary.days.append(Day(fmt.day(day.get("date", "")), fmt.number(day.get("order_count", 0)),
                                    fmt.money(day.get("amount", "0"), day.get("currency", currency))))
    if data.get("late"):
        summary.facts.append((_("Note"), _("Sent late: the system was down at the scheduled time.")))


def summarize(hook_name: str, data: dict, *, is_test: bool = False) -> Summary:
    """The event in words, in the current locale (see `merchant_locale()`)."""
    settings = shop_settings.effective()
    tz = settings.timezone
    fmt = _Format(str(get_locale()), tz)
    hook = hooks.get(hook_name)
    summary = Summary(hook=hook_name, hook_label=str(hook.label), title="", state=NEUTRAL,
                      timezone=tz, is_test=is_test, shop=settings.shop_name)
    if hook.group == hooks.ORDER:
        _order(summary, data, fmt)
    elif hook.group == hooks.INVENTORY:
        _alarm(summary, data, fmt)
    else:
        _report(summary, data, fmt)
    return summary


def render(template: str, summary: Summary, **context) -> str:
    """Render `templates/messages/<template>` for this summary. Message templates are laid out
    line by line, so block tags do not leave their own line breaks behind."""
    app = current_app._get_current_object()
    env = app.extensions.get("merchant_notify.message_env")
    if env is None:
        env = app.extensions["merchant_notify.message_env"] = app.jinja_env.overlay(trim_blocks=True,
                                                                                   lstrip_blocks=True)
    return env.get_template(f"messages/{template}").render(s=summary, **context).strip()


def merchant_locale():
    """A context manager: texts written inside it are in the merchant's language (Settings › General,
    else MERCHANT_LANGUAGE), whatever the language of the browser that caused them."""
    return force_locale(shop_settings.effective().language)


def truncate_utf8(text: str, max_bytes: int, note: str = "") -> str:
    """`text` cut to at most `max_bytes` UTF-8 bytes on a character boundary, ending with `note`
    when something was cut."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    tail = note.encode("utf-8")
    keep = raw[:max(0, max_bytes - len(tail))].decode("utf-8", errors="ignore")
    return keep + note
