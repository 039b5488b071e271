"""A channel's filters and quiet hours (免打扰), whatever its kind: stored in `channels.rules`.

The stored shape (every key optional; None or {} is "no rules"):

    {"min_amount": "100.00",            # order hooks: only orders at or above, in the shop's currency
     "products": ["vpnmonthly"],        # order and stock hooks: only these product paths
     "tests": false,                    # leave out events sent with "test": true (the API's, the CLI's)
     "quiet": {"from": "22:00", "to": "08:00",            # the merchant's time zone; may cross midnight
               "urgent": ["order_out_of_stock_hook", …]}}  # hooks sent at once even then

Two questions are asked of them, by `notify.dispatch` for every event and every subscribed channel
that has rules (channels without rules cost nothing):

- `left_out(rules, hook, data, is_test, currency)`: why this channel does not get the event (a
  `Reason`), or None. A left-out event creates no delivery for that channel; the event records
  the reason (`events.filtered`). An order in another currency than the shop's is not compared
  with the minimum and passes: the filter cannot judge it, and missing a sale is worse than one
  message too many. An amount that cannot be read is not "at or above". The daily report is never
  filtered by amount or product.
- `quiet_until(rules, hook, now, tz)`: when the quiet period that `now` falls in ends (naive UTC),
  or None when the event is sent at once (no quiet hours, outside them, or an urgent hook). The
  delivery is then parked until that moment and folded into a digest with the others
  (`deliveries.fold = 'quiet'`).

A Test (the channel's Test button, the catalogue's, the signature check) targets its channel
explicitly and is never filtered nor held: it exists to show that the channel works now.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from notify import hooks, reasons

DEFAULT_URGENT = ("order_out_of_stock_hook", "stock_alarm_hook", "key_stock_alarm_hook")
AMOUNT_HOOKS = frozenset(h.name for h in hooks.HOOKS if h.group == hooks.ORDER)
PRODUCT_HOOKS = frozenset(h.name for h in hooks.HOOKS if h.group in (hooks.ORDER, hooks.INVENTORY))
MAX_AMOUNT = Decimal("9999999999.99")  # the ledger's NUMERIC(12, 2)
MAX_PRODUCTS = 100

_AMOUNT = re.compile(r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?$")
_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_PATH = re.compile(r"^[A-Za-z0-9]{1,64}$")  # the ledger's product paths (shop.ledger.PATH_CHARS)


@dataclass(frozen=True)
class Rules:
    """The parsed rules of one channel, as dispatch asks them."""
    min_amount: Decimal | None = None
    products: frozenset[str] | None = None
    tests: bool = True
    quiet_from: time | None = None
    quiet_to: time | None = None
    urgent: frozenset[str] = frozenset(DEFAULT_URGENT)

    @property
    def has_quiet(self) -> bool:
        return self.quiet_from is not None and self.quiet_to is not None and self.quiet_from != self.quiet_to


# -- reading what is stored (never raises: a row written by hand or by another version) -----------------
_parsed: dict[str, Rules | None] = {}


def parse(stored) -> Rules | None:
    """The rules a stored `channels.rules` value says, or None when it says none. What cannot be
    read is ignored (an unreadable minimum is no minimum), so a bad row never stops dispatch."""
    if not isinstance(stored, dict) or not stored:
        return None
    # Dispatch asks for every event: the parse of a given text is kept (a handful of channels).
    cache_key = repr(sorted(stored.items(), key=lambda item: str(item[0])))
    if cache_key in _parsed:
        return _parsed[cache_key]
    found = _parse(stored)
    if len(_parsed) > 256:
        _parsed.clear()
    _parsed[cache_key] = found
    return found


def _parse(stored: dict) -> Rules | None:
    minimum = _decimal(stored.get("min_amount"))
    products = stored.get("products")
    products = (frozenset(p for p in products if isinstance(p, str))
                if isinstance(products, list) and products else None)
    tests = stored.get("tests") is not False
    quiet = stored.get("quiet") if isinstance(stored.get("quiet"), dict) else {}
    start, end = _time(quiet.get("from")), _time(quiet.get("to"))
    urgent = quiet.get("urgent")
    urgent = frozenset(h for h in urgent if isinstance(h, str)) if isinstance(urgent, list) else frozenset(DEFAULT_URGENT)
    rules = Rules(minimum, products, tests, start, end, urgent)
    if rules == Rules(urgent=rules.urgent) and not rules.has_quiet:
        return None
    return rules


def _decimal(value) -> Decimal | None:
    """`value` as a finite amount, or None (a bool, an object, "abc", NaN, Infinity…)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        return None
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


def _time(value) -> time | None:
    if isinstance(value, str) and _TIME.match(value):
        return time(int(value[:2]), int(value[3:]))
    return None


# -- the filters --------------------------------------------------------------------------------
def _get(data, *path):
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def left_out(rules: Rules | None, hook_name: str, data, *, is_test: bool, currency: str) -> reasons.Reason | None:
    """Why a channel with `rules` does not get this event, or None when it does. Never raises,
    whatever `data` holds; `currency` is the shop's."""
    if rules is None:
        return None
    if is_test and not rules.tests:
        return reasons.reason("filtered_test")
    if rules.min_amount is not None and hook_name in AMOUNT_HOOKS:
        raw = _get(data, "order", "amount")
        code = _get(data, "order", "currency")
        code = code.strip().upper() if isinstance(code, str) and code.strip() else currency
        if code == currency:
            amount = _decimal(raw)
            if amount is None:
                shown = raw if isinstance(raw, str) else ("" if raw is None else repr(raw))
                return reasons.reason("filtered_amount_unreadable", amount=shown[:40],
                                      minimum=str(rules.min_amount), currency=currency)
            if amount < rules.min_amount:
                return reasons.reason("filtered_amount", amount=str(amount), minimum=str(rules.min_amount),
                                      currency=currency)
    if rules.products is not None and hook_name in PRODUCT_HOOKS:
        path = _get(data, "order", "product", "path") if hook_name in AMOUNT_HOOKS else _get(data, "product", "path")
        if not isinstance(path, str) or not path:
            return reasons.reason("filtered_no_product")
        if path not in rules.products:
            return reasons.reason("filtered_product", product=path[:64], count=len(rules.products))
    return None


# -- quiet hours ----------------------------------------------------------------------------------
def in_quiet(rules: Rules | None, local: time) -> bool:
    """Whether the wall-clock time `local` is inside the quiet period (from included, to excluded)."""
    if rules is None or not rules.has_quiet:
        return False
    start, end = rules.quiet_from, rules.quiet_to
    if start < end:
        return start <= local < end
    return local >= start or local < end  # across midnight: 22:00-08:00


def quiet_until(rules: Rules | None, hook_name: str, now: datetime, tz_name: str) -> datetime | None:
    """The end of the quiet period `now` (naive UTC) is in, as naive UTC; None when the event is
    sent at once. The end is the first moment the merchant's clock shows the "to" time: on a day
    the clocks go forward past it (02:30 in a gap), the moment they jump; on a day they go back,
    its first occurrence."""
    if rules is None or not rules.has_quiet or hook_name in rules.urgent:
        return None
    zone = ZoneInfo(tz_name)
    local = now.replace(tzinfo=timezone.utc).astimezone(zone)
    wall = local.replace(tzinfo=None)
    if not in_quiet(rules, wall.time().replace(second=0, microsecond=0)):
        return None
    day = wall.date() if wall.time() < rules.quiet_to else wall.date() + timedelta(days=1)
    return first_moment_at(datetime.combine(day, rules.quiet_to), zone)


def first_moment_at(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant (naive UTC) at which the clock of `zone` shows `wall` or later."""
    def utc(moment: datetime) -> datetime:
        return moment.astimezone(timezone.utc).replace(tzinfo=None)

    def shown(moment_utc: datetime) -> datetime:
        return moment_utc.replace(tzinfo=timezone.utc).astimezone(zone).replace(tzinfo=None)

    earlier, later = sorted((utc(wall.replace(tzinfo=zone, fold=0)), utc(wall.replace(tzinfo=zone, fold=1))))
    if shown(earlier) == wall:
        return earlier  # it exists (twice on a day the clocks go back: the first)
    # In a gap: the answer lies between the two readings; find the jump to the second.
    low, high = earlier, later if shown(later) >= wall else earlier + timedelta(hours=3)
    if shown(low) >= wall:
        return low
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if shown(middle) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


# -- checking what the merchant typed (the form, the settings import) ------------------------------
FIELDS = ("min_amount", "products", "tests", "quiet_from", "quiet_to", "quiet_urgent")


def clean(raw) -> tuple[dict | None, dict[str, str]]:
    """(the rules to store, {field: message}) for `raw` in the stored shape (see the module's
    docstring). `field` is one of FIELDS; messages are in the current language. Empty values are
    no rule; a result with no rule at all is None."""
    if raw is None:
        return None, {}
    if not isinstance(raw, dict):
        return None, {"min_amount": str(_l("The rules must be an object."))}
    cleaned, errors = {}, {}
    minimum = raw.get("min_amount")
    if minimum not in (None, ""):
        text = str(minimum).strip() if isinstance(minimum, (str, int)) and not isinstance(minimum, bool) else None
        if text is None or not _AMOUNT.match(text) or Decimal(text) > MAX_AMOUNT:
            errors["min_amount"] = str(_l("Enter an amount of 0 or more with at most two decimals, such as 100 "
                                          "or 99.50."))
        else:
            cleaned["min_amount"] = f"{Decimal(text):.2f}"
    products = raw.get("products")
    if products not in (None, [], ""):
        if isinstance(products, str):
            products = split_paths(products)
        if not isinstance(products, list) or not all(isinstance(p, str) for p in products):
            errors["products"] = str(_l("Give the products as a list of product paths."))
        else:
            paths = list(dict.fromkeys(p.strip() for p in products if p.strip()))
            bad = [p for p in paths if not _PATH.match(p)]
            if bad:
                errors["products"] = str(_l("%(path)s is not a product path: a path has letters and digits only, "
                                            "at most 64.", path=bad[0][:70]))
            elif len(paths) > MAX_PRODUCTS:
                errors["products"] = str(_l("At most %(n)d products.", n=MAX_PRODUCTS))
            elif paths:
                cleaned["products"] = sorted(paths)
    tests = raw.get("tests", True)
    if not isinstance(tests, bool):
        errors["tests"] = str(_l("Must be true or false."))
    elif tests is False:
        cleaned["tests"] = False
    quiet = raw.get("quiet")
    if quiet not in (None, {}):
        if not isinstance(quiet, dict):
            errors["quiet_from"] = str(_l("The quiet hours must be an object with from and to."))
        else:
            quiet_cleaned = _clean_quiet(quiet, errors)
            if quiet_cleaned:
                cleaned["quiet"] = quiet_cleaned
    if errors:
        return None, errors
    return cleaned or None, {}


def _clean_quiet(quiet: dict, errors: dict) -> dict | None:
    start, end = (str(quiet.get(k) or "").strip() for k in ("from", "to"))
    if not start and not end:
        return None
    for name, value in (("quiet_from", start), ("quiet_to", end)):
        if not value:
            errors[name] = str(_l("Give both times, or neither (no quiet hours)."))
        elif not _TIME.match(value):
            errors[name] = str(_l("Use HH:MM, from 00:00 to 23:59."))
    if "quiet_from" not in errors and "quiet_to" not in errors and start == end:
        errors["quiet_to"] = str(_l("The end must differ from the start."))
    urgent = quiet.get("urgent", list(DEFAULT_URGENT))
    if not isinstance(urgent, list) or not all(isinstance(h, str) for h in urgent):
        errors["quiet_urgent"] = str(_l("Give the urgent events as a list of hook names."))
        urgent = []
    unknown = [h for h in urgent if h not in hooks.HOOKS_BY_NAME]
    if unknown:
        errors["quiet_urgent"] = str(_l("Unknown event: %(hook)s.", hook=unknown[0][:60]))
    return {"from": start, "to": end, "urgent": [h for h in hooks.HOOK_NAMES if h in urgent]}


def split_paths(text: str) -> list[str]:
    """Product paths as typed: separated by commas (also 、，), spaces or lines."""
    return [part for part in re.split(r"[\s,，、;；]+", text or "") if part]


# -- in words ------------------------------------------------------------------------------------------
def summary(stored, currency: str) -> str:
    """A short line for the channel's row: "≥ ¥100.00 · 2 products · no tests · quiet 22:00–08:00";
    empty without rules. In the current language."""
    from flask_babel import format_currency

    rules = parse(stored)
    if rules is None:
        return ""
    parts = []
    if rules.min_amount is not None:
        try:
            parts.append("≥ " + format_currency(rules.min_amount, currency))
        except (ArithmeticError, ValueError):  # a stored value no form would save (1e999999)
            parts.append(f"≥ {rules.min_amount} {currency}")
    if rules.products is not None:
        parts.append(ngettext("%(num)d product", "%(num)d products", len(rules.products)))
    if not rules.tests:
        parts.append(str(_l("no tests")))
    if rules.has_quiet:
        parts.append(str(_l("quiet %(start)s–%(end)s", start=rules.quiet_from.strftime("%H:%M"),
                            end=rules.quiet_to.strftime("%H:%M"))))
    return " · ".join(parts)
