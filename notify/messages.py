"""What a person reads: the text of chat and email notifications, in the merchant's language.

`summarize()` turns an event into a `Summary` (a title, a state, labelled facts, the report's
days) with amounts and times formatted for the merchant's locale and time zone. The layouts live
with their channel kinds (`notify/channels/robot.md`, the robots' markdown; `wecom/text.txt`;
`email/email.txt` and `email/email.html`; the digests' `robot_digest.md`, …), as the template
loader names them (`channels/<kind>/…`). Every transport renders through `render()` (a digest
through `render_digest()`), so a hook reads the same everywhere.

Messages carry the shop's data, never its markup. Two steps, so no path can skip one: every value
taken from the data passes through `line()` (one line, bounded, no lone surrogates, mentions and
`scheme://` links defused) on its way into the `Summary`, and `render()` escapes everything a
template prints for that template's target (markdown look-alikes for `.md`, HTML escaping for
`.html`). Only the templates' own text makes links, mentions, headings and tags.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from flask import current_app
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _
from flask_babel import ngettext

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
    count: int = 2  # `order_count` as a number, for the plural form


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
        # One line whatever the shop's name holds: a line break in a header starts another header.
        return " ".join(f"[{self.shop}] {test}{self.title}".split())


# How long one value from the shop may be in a message (a product name, an order number, …).
MAX_VALUE = 200
# Amounts and counts with more digits than this before the point are not real amounts: they are
# shown as they came rather than formatted (formatting 1e999999 would write a million digits).
_MAX_DIGITS = 15

_SURROGATE = re.compile("[\ud800-\udfff]")
# Control characters (NUL, ESC, …) and the bidirectional overrides, which can make a value read
# backwards. Line breaks of every kind are handled by `str.split()`.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# An @ that begins a word reads as a mention in a chat (DingTalk's @mobile); the one inside an
# email address does not and is kept.
_MENTION = re.compile(r"(?<![\w.+-])@(?=[^\s@])")
# The colon of `scheme://`, which chat and mail clients turn into a link (wherever it starts: some
# find `http://` inside a word).
_URL_SCHEME = re.compile(":(?=//)")
_CURRENCY_CODE = re.compile("[A-Z]{3}")


def without_lone_surrogates(text: str) -> str:
    """`text` with each lone surrogate (not Unicode: UTF-8 cannot encode it) replaced by U+FFFD;
    a surrogate pair becomes the character it stands for."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def utf8(text: str) -> bytes:
    """`text` as UTF-8, lone surrogates replaced (see `without_lone_surrogates`)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return without_lone_surrogates(text).encode("utf-8")


def _scalar(value) -> str:
    """A JSON value as text: strings as they are, numbers and booleans as JSON writes them, and
    "?" for what has no one-line form (objects, lists, NaN, Infinity)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # more digits than Python converts (sys.set_int_max_str_digits)
            return "?"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "?"
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else "?"
    return "?"


def line(value, limit: int = MAX_VALUE) -> str:
    """One value from the shop or its buyers, safe to place in any message: one line (every kind
    of line break and control character becomes a space), at most `limit` characters (cut with
    "…"), no lone surrogates, no @ that starts a mention (shown as ＠) and no `scheme://` that a
    client would make a link (shown as `scheme：//`). Markup is escaped later, per target, by
    `render()`; the same text serves every channel."""
    text = _scalar(value)
    if not text:
        return ""
    if len(text) > limit * 4:
        text = text[:limit * 4]  # enough to fill `limit` after spaces collapse; bounds the work below
    if _SURROGATE.search(text):
        text = without_lone_surrogates(text)
    text = " ".join(_CONTROL.sub(" ", text).split())
    if len(text) > limit:
        text = text[:limit - 1].rstrip() + "…"
    if "@" in text:
        text = _MENTION.sub("＠", text)
    if "//" in text:
        text = _URL_SCHEME.sub("：", text)
    return text


def _object(value) -> dict:
    """`value` when it is a JSON object, else an empty one: stored events may hold anything."""
    return value if isinstance(value, dict) else {}


def _product(value) -> dict:
    """A product object; a bare string is taken as the product's name."""
    if isinstance(value, str):
        return {"name": value}
    return _object(value)


def _decimal(value) -> Decimal | None:
    """A finite number of a sane size from a JSON number or a decimal string, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        value = repr(value)
    elif isinstance(value, str):
        if len(value) > 64:
            return None
    elif not isinstance(value, (int, Decimal)):
        return None
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        return None
    if not number.is_finite() or (number and number.adjusted() >= _MAX_DIGITS):
        return None
    return number


class _Format:
    """Amounts, numbers and times for one locale and time zone; tolerant of any input (the data
    comes from the merchant's shop, and stored events may predate any check): what cannot be
    understood is shown as the one-line text it came as (`line()`), or "?"."""

    def __init__(self, locale: str, tz: str):
        self.locale, self.tz = locale, ZoneInfo(tz)

    def money(self, amount, currency) -> str:
        number = _decimal(amount)
        code = "CNY" if currency is None or currency == "" else (currency.upper() if isinstance(currency, str) else "")
        if number is not None and _CURRENCY_CODE.fullmatch(code):
            return format_currency(number, code, locale=self.locale)
        return " ".join(part for part in (line(amount) or "?", line(currency)) if part)

    def number(self, value) -> str:
        number = _decimal(value)
        if number is not None:
            return format_decimal(number, locale=self.locale)
        return line(value) or "?"

    def when(self, value) -> str:
        """`yyyy-MM-dd HH:mm:ss` in the merchant's time zone, from an ISO 8601 time (UTC when it
        has no offset). A time that the zone cannot reach (the first hours of year 1, the last of
        9999) is shown with its own offset."""
        if value is None or value == "":
            return ""
        if not isinstance(value, str) or len(value) > 64:
            return line(value)
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return line(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        try:
            return _clock(moment.astimezone(self.tz))
        except OverflowError:
            offset = moment.utcoffset()
            if not offset:
                return f"{_clock(moment)} UTC"
            sign, offset = ("-", -offset) if offset < timedelta(0) else ("+", offset)
            minutes = int(offset.total_seconds()) // 60
            return f"{_clock(moment)} UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"

    def day(self, value) -> str:
        if not isinstance(value, str) or len(value) > 64:
            return line(value)
        try:
            return format_date(datetime.strptime(value, "%Y-%m-%d").date(), "medium", locale=self.locale)
        except ValueError:
            return line(value)


def _clock(moment: datetime) -> str:
    # By hand: strftime writes year 1 as "1" on glibc, and Babel costs ten times more here.
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} "
            f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}")


def _count(value) -> int:
    """A count for choosing a plural form: 2 (plural) when it is not a sane whole number."""
    number = _decimal(value)
    return int(number) if number is not None and number == number.to_integral_value() else 2


def _order(summary: Summary, data: dict, fmt: _Format) -> None:
    order = _object(data.get("order"))
    product = _product(order.get("product"))
    number = line(order.get("order_no")) or "?"
    amount = fmt.money(order.get("amount"), order.get("currency"))
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
    name, path = line(product.get("name")), line(product.get("path"))
    facts = [
        (_("Order number"), number),
        (_("Product"), f"{name} ({path})" if name and path else name or path or "?"),
        (_("Quantity"), fmt.number(order.get("quantity", 1))),
        (_("Amount"), amount),
        (_("Buyer"), line(order.get("buyer_email"))),
        (_("Time"), fmt.when(order.get(_ORDER_TIMES[summary.hook]) or order.get("created_at"))),
    ]
    if summary.hook == "order_out_of_stock_hook":
        facts.append((_("What to do"), _("Add license keys or stock: the order completes when keys are added, "
                                         "or refund it.")))
    summary.facts = [(label, value) for label, value in facts if value]


def _alarm(summary: Summary, data: dict, fmt: _Format) -> None:
    product = _product(data.get("product"))
    name = line(product.get("name")) or line(product.get("path")) or "?"
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
    days = data.get("days")
    for day in (days if isinstance(days, list) else [])[:7]:
        if isinstance(day, dict):
            count = day.get("order_count", 0)
            summary.days.append(Day(fmt.day(day.get("date", "")) or "?", fmt.number(count),
                                    fmt.money(day.get("amount", "0"), day.get("currency", currency)), _count(count)))
    if data.get("late"):
        summary.facts.append((_("Note"), _("Sent late: the system was down at the scheduled time.")))


def summarize(hook_name: str, data, *, is_test: bool = False) -> Summary:
    """The event in words, in the current locale (see `merchant_locale()`), for one of the
    catalogue's hooks. Never raises for any JSON-like `data` (wrong types at any level, huge or
    non-finite numbers, lone surrogates, deep nesting, dates at the ends of the calendar): what
    cannot be understood is shown as "?" or as its one-line text. Every value from the data is
    passed through `line()`, or is formatted by the product (amounts, counts, times)."""
    settings = shop_settings.effective()
    tz = settings.timezone
    fmt = _Format(str(get_locale()), tz)
    hook = hooks.get(hook_name)
    summary = Summary(hook=hook_name, hook_label=str(hook.label), title="", state=NEUTRAL,
                      timezone=tz, is_test=is_test, shop=settings.shop_name)
    data = _object(data)
    if hook.group == hooks.ORDER:
        _order(summary, data, fmt)
    elif hook.group == hooks.INVENTORY:
        _alarm(summary, data, fmt)
    else:
        _report(summary, data, fmt)
    return summary


# Characters with a meaning in DingTalk's or WeCom's markdown, as look-alikes that have none. Neither
# service documents backslash escapes, and where they are not honoured `\[x\](y)` is still a link;
# a full-width bracket is never markup, whatever the client's renderer.
_MARKDOWN = str.maketrans({
    "[": "［", "]": "］",     # links [x](y), images ![x](y), references [x][1]
    "<": "＜", ">": "＞",     # HTML and <font>, autolinks <http://…>, WeCom's <@userid> mentions
    "*": "＊", "~": "～",     # emphasis, strikethrough
    "`": "｀", "\\": "＼",    # code; a backslash before the template's closing **
})
# An underscore opens or closes emphasis only at the edge of a word; `vpn_monthly` keeps its own.
_EMPHASIS_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def escape_markdown(value) -> str:
    """`value` as text that DingTalk and WeCom markdown show as it is: no link, image, mention,
    tag or emphasis can come out of it. Line breaks are `line()`'s business: `#` and `>` are
    markup only at the start of a line, where a value never is; `&` is left alone (an entity
    stands for text, and the product's own labels use the character)."""
    text = str(value).translate(_MARKDOWN)
    return _EMPHASIS_UNDERSCORE.sub("＿", text) if "_" in text else text


def _environment(template: str):
    app = current_app._get_current_object()
    markdown = template.endswith(".md")
    key = "merchant_notify.message_env.markdown" if markdown else "merchant_notify.message_env"
    env = app.extensions.get(key)
    if env is None:
        options = dict(trim_blocks=True, lstrip_blocks=True)
        if markdown:
            options["finalize"] = escape_markdown
        env = app.extensions[key] = app.jinja_env.overlay(**options)
    name = template if "/" in template else f"messages/{template}"
    return env.get_template(name)


def render(template: str, summary: Summary, **context) -> str:
    """Render `template` for this summary: a name from the template loader (`channels/<kind>/…`),
    or a bare file name in `templates/messages/`. Every value is escaped for the
    template's target by its extension: `.md` through `escape_markdown()` (each `{{ … }}`, so
    only the template's own text makes markup), `.html` by Jinja's HTML autoescaping, `.txt` as
    it is (the summary's values are already one line each). Message templates are laid out line
    by line, so block tags do not leave their own line breaks behind."""
    return _environment(template).render(s=summary, **context).strip()


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


# -- digests ------------------------------------------------------------------------------------
# One event of a digest, in words: the facts of its line and what its headline adds up.
@dataclass
class DigestLine:
    number: str
    product: str
    amount: str


@dataclass
class DigestGroup:
    """The events of one hook that a digest message carries: a headline with their count and sum,
    and the lines it lists (oldest first; `count` may be more: the rest are "and N more")."""
    hook: str
    hook_label: str
    state: str
    headline: str
    lines: list[DigestLine] = field(default_factory=list)
    count: int = 0

    @property
    def products(self) -> list[tuple[str, list[DigestLine]]]:
        """The listed lines by product, in the order each product first appears: a product is
        named once above its orders, which keeps a line to the order number and the amount."""
        found: dict[str, list[DigestLine]] = {}
        for item in self.lines:
            found.setdefault(item.product, []).append(item)
        return list(found.items())


@dataclass
class _Item:
    """One gathered event, put into words once however many fits are tried."""
    index: int  # its place in the events given to `digest()`
    hook: str
    line: DigestLine
    amount: Decimal | None  # None: not summed (unreadable, or a currency code that is not one)
    code: str
    created: datetime
    carry: bool  # carried by this message even when it is not listed (overdue, or the leader)


@dataclass
class Digest:
    """Waiting events sent as one message (notify.digests): a headline per hook, a line per
    listed event, and a link to the deliveries it carried (`link`).

    A digest is first made of everything gathered (`digest()`); the transport then fits it to
    its service's size limit (`take(n)`: the first n in listing order are listed). What the
    message carries is what it lists, plus the events that must go now even unlisted (`more`:
    "and N more", behind the link); the others are not carried (`following`: "N more follow in
    the next message") and go back to wait for the next digest. Headlines, the title, the count
    and the times describe what it carries."""
    id: str
    title: str
    groups: list[DigestGroup]
    count: int  # deliveries it carries
    first: str  # the time of the oldest event carried, and of the newest, in the merchant's time zone
    last: str
    link: str
    timezone: str = "UTC"
    shop: str = ""
    more: int = 0  # carried but not listed
    following: int = 0  # gathered, not carried: in the next message
    carried: tuple[int, ...] = ()  # indexes of the events carried, in the list given to `digest()`
    fitted: bool = False  # whether a transport has fitted it (`take`)
    items: list[_Item] = field(default_factory=list, repr=False)  # everything gathered, in listing order
    locale: str = "en"

    @property
    def subject(self) -> str:
        return " ".join(f"[{self.shop}] {self.title}".split())

    @property
    def gathered(self) -> int:
        return len(self.items)

    @property
    def listed_count(self) -> int:
        return sum(len(group.lines) for group in self.groups)

    def take(self, n: int) -> "Digest":
        """The message that lists the first `n` gathered events (in listing order: the leader,
        then oldest first): it carries those and every other that must go now (`_Item.carry`)."""
        return _compose(self, self.items, n)

    def listed(self, n: int | None = None) -> list[tuple[DigestGroup, list[DigestLine]]]:
        """The groups with the lines this message lists (all of them, or the first `n`)."""
        shown = []
        for group in self.groups:
            lines = group.lines if n is None else group.lines[:max(0, n - sum(len(x) for _, x in shown))]
            if lines:
                shown.append((group, lines))
        return shown


# The headline of each hook's part of a digest: how many, and what happened to them.
def _digest_counts(hook: str, n: int, num: str) -> str:
    texts = {
        "order_create_hook": ngettext("%(count)s new order", "%(count)s new orders", n, count=num),
        "order_pay_hook": ngettext("%(count)s order paid", "%(count)s orders paid", n, count=num),
        "order_cancel_hook": ngettext("%(count)s order cancelled", "%(count)s orders cancelled", n, count=num),
        "order_refund_hook": ngettext("%(count)s order refunded", "%(count)s orders refunded", n, count=num),
        "order_out_of_stock_hook": ngettext("%(count)s order paid but out of stock",
                                            "%(count)s orders paid but out of stock", n, count=num),
        "order_finish_hook": ngettext("%(count)s order completed", "%(count)s orders completed", n, count=num),
    }
    return texts[hook]


def digest(digest_id: str, events: list[tuple[str, object, datetime]], link: str, *, lead: int | None = None,
           overdue=()) -> Digest:
    """A `Digest` of order events `(hook, data, created_at)`, in the current locale (see
    `merchant_locale()`), listing all of them, oldest first; a transport fits it to its size
    limit (`Digest.take`). `lead` (an index into `events`) is listed first whatever its age (the
    leader, whose slot the message takes); the events at the indexes in `overdue` are carried even
    when they are not listed. Tolerant of any data, as `summarize()`: every value from it passes
    through `line()`. Amounts are added up per currency (a digest may hold orders in several:
    "¥4,560.00 + US$12.00"); an amount that cannot be read shows as "?" on its line and is left
    out of the sum."""
    settings = shop_settings.effective()
    fmt = _Format(str(get_locale()), settings.timezone)
    overdue = set(overdue)
    items = []
    for index, (hook_name, data, created) in enumerate(events):
        order = _object(_object(data).get("order"))
        product = _product(order.get("product"))
        currency = order.get("currency")
        code = "CNY" if currency is None or currency == "" else (currency.upper() if isinstance(currency, str) else "")
        amount = _decimal(order.get("amount"))
        items.append(_Item(index, hook_name,
                           DigestLine(line(order.get("order_no")) or "?",
                                      line(product.get("name")) or line(product.get("path")) or "?",
                                      fmt.money(order.get("amount"), currency)),
                           amount if amount is not None and _CURRENCY_CODE.fullmatch(code) else None, code,
                           created, index in overdue or index == lead))
    items.sort(key=lambda item: (item.index != lead, _sort_time(item.created), item.index))
    base = Digest(digest_id, "", [], 0, "", "", link, settings.timezone, settings.shop_name, locale=fmt.locale)
    whole = _compose(base, items, len(items))
    whole.fitted = False
    return whole


def _sort_time(moment) -> datetime:
    return moment if isinstance(moment, datetime) else datetime.min


def _compose(base: Digest, items: list[_Item], n: int) -> Digest:
    """The digest message listing items[:n] and carrying them and the other items that must go."""
    listed = items[:max(0, n)]
    unlisted = [item for item in items[len(listed):] if item.carry]
    carried = sorted(listed + unlisted, key=lambda item: (_sort_time(item.created), item.index))
    shown = sorted(listed, key=lambda item: (_sort_time(item.created), item.index))
    locale = base.locale
    groups: dict[str, DigestGroup] = {}
    sums: dict[str, dict[str, Decimal]] = {}
    for item in carried:
        group = groups.get(item.hook)
        if group is None:
            group = groups[item.hook] = DigestGroup(item.hook, str(hooks.get(item.hook).label),
                                                    _ORDER_STATES.get(item.hook, NEUTRAL), "")
            sums[item.hook] = {}
        group.count += 1
        if item.amount is not None:
            sums[item.hook][item.code] = sums[item.hook].get(item.code, Decimal(0)) + item.amount
    for item in shown:
        groups[item.hook].lines.append(item.line)
    for hook_name, group in groups.items():
        total = " + ".join(format_currency(value, code, locale=locale) for code, value in sorted(sums[hook_name].items()))
        counted = _digest_counts(hook_name, group.count, format_decimal(group.count, locale=locale))
        group.headline = _("%(what)s — %(total)s", what=counted, total=total) if total else counted
    ordered = list(groups.values())
    count = len(carried)
    title = ordered[0].headline if len(ordered) == 1 else ngettext(
        "%(count)s order notification", "%(count)s order notifications", count,
        count=format_decimal(count, locale=locale))
    fmt = _Format(locale, base.timezone)

    def when(moment) -> str:
        return fmt.when(moment.replace(tzinfo=timezone.utc).isoformat()) if isinstance(moment, datetime) else ""

    return Digest(base.id, title, ordered, count, when(carried[0].created) if carried else "",
                  when(carried[-1].created) if carried else "", base.link, base.timezone, base.shop,
                  more=len(unlisted), following=len(items) - count,
                  carried=tuple(sorted(item.index for item in carried)), fitted=True, items=items, locale=locale)


def render_digest(template: str, d: Digest, listed: int | None = None, **context) -> str:
    """Render `template` (as for `render()`) for a digest message: `d` as fitted, or the message
    that lists the first `listed` of what it gathered (`Digest.take`). Escaped as `render()`
    escapes (the digest's values are one line each already)."""
    if listed is not None:
        d = d.take(listed)
    locale = str(get_locale())
    return _environment(template).render(d=d, shown=d.listed(), more=d.more,
                                         more_text=format_decimal(d.more, locale=locale),
                                         following=d.following,
                                         following_text=format_decimal(d.following, locale=locale),
                                         **context).strip()


def fit_digest(d: Digest, size, max_bytes: int, max_lines: int | None = None) -> Digest:
    """The message of `d` that lists the most of what it gathered (at most `max_lines`) and whose
    size, `size(message)` in bytes, is within `max_bytes` (nothing listed when nothing fits)."""
    total = d.gathered if max_lines is None else min(d.gathered, max_lines)
    return d.take(fit_lines(lambda n: size(d.take(n)), total, max_bytes))


def fit_lines(size, total: int, max_bytes: int) -> int:
    """The most lines (0 to `total`) for which `size(n)`, the size of the message listing n lines,
    is within `max_bytes`: a binary search (a message's size grows with its lines)."""
    if size(total) <= max_bytes:
        return total
    low, high = 0, total  # size(low) fits (or nothing does), size(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        if size(middle) <= max_bytes:
            low = middle
        else:
            high = middle
    return low
