"""What the product accepts: one JSON Schema (Draft 2020-12) per hook for its `data`, and the
checks every API body passes at the door.

Two layers, both run before anything is stored:

1. `parse_body` / `check_values`, for every API body and every event's data: UTF-8 JSON,
   nested at most `MAX_DEPTH` levels (counted on the text, before parsing: no recursion), and
   I-JSON's rules for values (RFC 7493): no NaN or Infinity, every number finite and within
   ±(2**53 − 1), no NUL character and no lone surrogate in any string or key.
2. `validate_data(hook, data)`: the hook's schema (`for_hook`), describing what the product
   reads to write a message: types, amounts, dates, lengths, quantities. Fields the schema does
   not name are the shop's own: they are allowed and travel to WebHooks unchanged.

So an event that is accepted can be rendered by every channel kind. The schemas are plain data
(`SCHEMAS`, `for_hook`); with the envelope every WebHook receives (`envelope_schema`) and an
example body per hook (`example`), they are published in docs/webhooks.md by
`python -m notify.schemas --write`, in the OpenAPI document (notify/openapi.py) and on the admin's
event catalogue page (blueprints/catalogue.py), all from here (tests/test_docs.py fails when the
docs drift). The validators are compiled once, at import.
"""
from __future__ import annotations

import copy
import json
import math
import re
import sys
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker

# -- the limits (documented in docs/api.md and docs/webhooks.md) -----------------------------------
MAX_DEPTH = 32  # levels of arrays and objects; the body itself is level 1
MAX_SAFE_INTEGER = 2**53 - 1  # RFC 7493: beyond it, receivers in JavaScript lose digits
MAX_AMOUNT = Decimal("9999999999.99")  # an order's amount: the ledger's NUMERIC(12, 2)
MAX_TOTAL = Decimal("999999999999999.99")  # a day's total in the report: many orders
MAX_QUANTITY = 100_000
MAX_LEVEL = 10**9  # inventory, keys, thresholds, a day's order count
FIRST_YEAR, LAST_YEAR = 1970, 2099  # dates and times outside these years are typos or attacks


class Invalid(ValueError):
    """Refused input: `field` names the part at fault (`data.order.amount`, `days[0].date`), or is
    None when the body as a whole is at fault; `code` is the API's error code."""

    def __init__(self, field: str | None, message: str, code: str = "invalid_field"):
        super().__init__(message)
        self.field, self.message, self.code = field, message, code


# -- layer 1: the body and its values ---------------------------------------------------------
class _NotJson:
    """What `json.loads` makes of a token that is not I-JSON (NaN, Infinity, a huge integer), so
    that `check_values` can name the field rather than the parser failing without one."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:  # in messages such as "unknown hook NaN"
        return self.text


def _parse_int(text: str):
    # Beyond 16 digits an integer cannot be safe; longer ones would also hit Python's limit on
    # int() of long strings (4,300 digits), which json.loads reports as a bare ValueError.
    return int(text) if len(text) <= 17 else _NotJson(text[:20] + ("…" if len(text) > 20 else ""))


# A JSON string: the only place where a bracket does not open or close a level.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = re.compile(r"[\[\]{}]")


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether `text` nests arrays and objects more than `limit` deep, found without parsing it
    (a parser recurses once per level). Malformed text may be counted loosely: the parser refuses
    it anyway."""
    if text.count("[") + text.count("{") <= limit:  # every typical body: no scan at all
        return False
    depth = 0
    for bracket in _BRACKETS.findall(_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def parse_body(raw: bytes, *, check: bool = True):
    """The body as JSON, whatever the Content-Type says. Raises `Invalid` (code `invalid_json`)
    unless it is UTF-8 JSON nested at most `MAX_DEPTH` deep; with `check`, also unless every
    value passes `check_values`. Without it, the caller must check what it keeps."""
    if not raw:
        raise Invalid(None, "the body is empty; send a JSON object", "invalid_json")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(None, f"the body is not valid UTF-8 (byte {exc.start})", "invalid_json") from None
    if too_deep(text):
        raise Invalid(None, f"the body nests arrays and objects more than {MAX_DEPTH} levels deep", "too_deep")
    try:
        body = json.loads(text, parse_constant=_NotJson, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise Invalid(None, f"the body is not valid JSON: {exc}", "invalid_json") from None
    except RecursionError:  # not reachable past too_deep(); kept so that no body can cause a 500
        raise Invalid(None, f"the body nests more than {MAX_DEPTH} levels deep", "too_deep") from None
    if check:
        check_values(body)
    return body


def _name(key: str) -> str:
    """A key as it may appear in an error's `field`: printable, short."""
    key = key.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return key if len(key) <= 64 else key[:64] + "…"


def printable(key: str) -> str:
    """`key` as it may appear in an error's `field` or message: no NUL, no lone surrogate, short."""
    return _name(key)


def _join(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{_name(key)}" if path else _name(key)


def _string_problem(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"contains a lone surrogate (U+{ord(value[exc.start]):04X}), which is not Unicode text"
    return None


def check_values(document, path: str = "") -> None:
    """Raise `Invalid` naming the first string, key or number in `document` that is not I-JSON:
    NUL characters, lone surrogates, NaN/Infinity, numbers beyond ±(2**53 − 1). Iterative, so
    any depth is safe; about a microsecond per value."""
    stack = [(path, document)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            problem = _string_problem(value)
            if problem:
                raise Invalid(where or None, f"{where or 'the body'} {problem}")
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = _string_problem(key)
                if problem:
                    raise Invalid(_join(where, key), f"a key in {where or 'the body'} {problem}")
                stack.append((_join(where, key), item))
        elif isinstance(value, list):
            stack.extend((_join(where, index), item) for index, item in enumerate(value))
        elif isinstance(value, bool) or value is None:
            pass
        elif isinstance(value, int):
            if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                raise Invalid(where or None, f"{where or 'the body'} is out of range: numbers must lie within "
                                             f"±{MAX_SAFE_INTEGER}; send large values as strings")
        elif isinstance(value, float):
            if not (math.isfinite(value) and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER):
                raise Invalid(where or None, f"{where or 'the body'} is out of range: numbers must be finite and "
                                             f"lie within ±{MAX_SAFE_INTEGER}")
        elif isinstance(value, _NotJson):
            if value.text in ("NaN", "Infinity", "-Infinity"):
                raise Invalid(where or None, f"{where or 'the body'} is {value.text}, which is not JSON: send a "
                                             f"number or a string")
            raise Invalid(where or None, f"{where or 'the body'} is out of range ({value.text}): numbers must lie "
                                         f"within ±{MAX_SAFE_INTEGER}; send large values as strings")


# -- layer 2: one schema per hook -------------------------------------------------------------
_ISO_TIME = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
             r"(Z|[+-][0-9]{2}:[0-9]{2})?$")
_ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _text(max_length: int, what: str, min_length: int = 1) -> dict:
    return {"type": "string", "minLength": min_length, "maxLength": max_length,
            "description": f"{what}: a text of {min_length} to {max_length} characters"}


def _level(what: str, minimum: int = 0, maximum: int = MAX_LEVEL) -> dict:
    return {"type": "integer", "minimum": minimum, "maximum": maximum,
            "description": f"{what}: a whole number from {minimum} to {maximum}"}


def _amount(maximum: Decimal, what: str) -> dict:
    digits = len(str(int(maximum)))
    # The bound for JSON numbers, written exactly (999999999999999.99 has no exact float).
    number_max = float(maximum) if repr(float(maximum)) == str(maximum) else int(maximum)
    return {"type": ["string", "number"], "pattern": rf"^(0|[1-9][0-9]{{0,{digits - 1}}})(\.[0-9]{{1,2}})?$",
            "minimum": 0, "maximum": number_max, "format": "decimal-2",
            "description": f"{what}: a decimal string such as \"128.00\" (or a JSON number), from 0 to "
                           f"{maximum}, at most two decimals"}


_CURRENCY = {"type": "string", "pattern": "^[A-Z]{3}$",
             "description": "an ISO 4217 currency code in capitals, such as \"CNY\""}
_TIME = {"type": ["string", "null"], "maxLength": 32, "pattern": _ISO_TIME, "format": "date-time-range",
         "description": f"an ISO 8601 time such as \"2026-11-27T10:31:12.000Z\" (UTC when no offset is "
                        f"given), in the years {FIRST_YEAR} to {LAST_YEAR}, or null"}
_DATE = {"type": "string", "pattern": _ISO_DATE, "format": "date-range",
         "description": f"a date such as \"2026-11-27\", in the years {FIRST_YEAR} to {LAST_YEAR}"}
_PRODUCT = {"type": "object", "description": "the product: its path and name",
            "properties": {"path": _text(64, "the product's path"), "name": _text(200, "the product's name")}}
_ORDER = {
    "type": "object",
    "description": "the order as the ledger shows it (docs/api.md)",
    "properties": {
        "order_no": _text(64, "the order number"),
        "status": _text(32, "the order's status"),
        "product": _PRODUCT,
        "quantity": _level("the quantity", 1, MAX_QUANTITY),
        "amount": _amount(MAX_AMOUNT, "the order's amount"),
        "currency": _CURRENCY,
        "buyer_email": _text(254, "the buyer's address", 0),
        **{name: _TIME for name in ("created_at", "paid_at", "cancelled_at", "refunded_at", "out_of_stock_at",
                                    "completed_at")},
    },
}
_ALARM_PROPERTIES = {"product": _PRODUCT, "threshold": _level("the alert threshold")}
_DAY = {
    "type": "object",
    "description": "one day of the report",
    "required": ["date"],
    "properties": {
        "date": _DATE,
        "order_count": _level("the day's count of paid orders"),
        "amount": _amount(MAX_TOTAL, "the day's total"),
        "currency": _CURRENCY,
        "amounts": {"type": "object", "description": "totals per currency, when orders in other currencies "
                                                     "were paid", "maxProperties": 300,
                    "propertyNames": {"pattern": "^[A-Z]{3}$"},
                    "additionalProperties": _amount(MAX_TOTAL, "a currency's total")},
    },
}


def _hook_schema(hook_name: str, title: str, required: str, properties: dict) -> dict:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://merchant-notify.invalid/schemas/{hook_name}.json",
        "title": f"{hook_name}: data",
        "description": f"{title}. Fields not named here are the shop's own: allowed, and sent to WebHooks "
                       f"unchanged.",
        "type": "object",
        "required": [required],
        "properties": properties,
    }


def _build() -> dict[str, dict]:
    from notify import hooks

    schemas = {}
    for hook in hooks.HOOKS:
        if hook.required_key == "order":
            properties = {"order": _ORDER}
        elif hook.name == "stock_alarm_hook":
            properties = {**_ALARM_PROPERTIES, "inventory": _level("the inventory left")}
        elif hook.name == "key_stock_alarm_hook":
            properties = {**_ALARM_PROPERTIES, "available_keys": _level("the keys left")}
        else:
            properties = {"timezone": _text(64, "the IANA time zone of the days"), "currency": _CURRENCY,
                          "days": {"type": "array", "maxItems": 31, "items": _DAY,
                                   "description": "the days reported, newest first: at most 31"},
                          "late": {"type": "boolean", "description": "true when the report was sent late"}}
        # Built at import, outside any request: the label is in English, the language of the docs.
        schemas[hook.name] = _hook_schema(hook.name, str(hook.label), hook.required_key, properties)
    return schemas


# Formats are checked by our own functions (the names are ours, so other validators treat them as
# annotations and the patterns and bounds still apply): JSON Schema has no "at most two decimals"
# that works on binary floating point, and no date range.
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("decimal-2")
def _two_decimals(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True  # strings: the pattern says it
    try:
        return Decimal(repr(value)).as_tuple().exponent >= -2 if isinstance(value, float) else True
    except InvalidOperation:
        return False


def _in_years(moment) -> bool:
    return FIRST_YEAR <= moment.year <= LAST_YEAR


def parse_time(value: str) -> datetime | None:
    """An ISO 8601 date or time as a naive UTC datetime (UTC when no offset is given), or None
    unless it is one, in the years FIRST_YEAR to LAST_YEAR (in UTC too)."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    # The year is checked before any arithmetic: year 1 with a positive offset would overflow.
    if not _in_years(moment):
        return None
    offset = moment.utcoffset()
    if offset is None:
        return moment
    if abs(offset) >= timedelta(hours=24):
        return None
    moment = moment.replace(tzinfo=None) - offset
    return moment if _in_years(moment) else None


@_FORMATS.checks("date-time-range")
def _time_in_range(value) -> bool:
    return not isinstance(value, str) or parse_time(value) is not None


@_FORMATS.checks("date-range")
def _date_in_range(value) -> bool:
    if not isinstance(value, str):
        return True
    try:
        return _in_years(date.fromisoformat(value))
    except ValueError:
        return False


SCHEMAS: dict[str, dict] = _build()
_VALIDATORS = {name: Draft202012Validator(schema, format_checker=_FORMATS) for name, schema in SCHEMAS.items()}
for _schema in SCHEMAS.values():
    Draft202012Validator.check_schema(_schema)


def for_hook(hook_name: str) -> dict:
    """The JSON Schema of `hook_name`'s `data` (a copy: change it freely); `KeyError` if unknown."""
    return copy.deepcopy(SCHEMAS[hook_name])


_TYPE_WORDS = {"object": "a JSON object", "array": "a list", "string": "a text", "integer": "a whole number",
               "number": "a number", "boolean": "true or false", "null": "null"}


def _message(hook_name: str, error, field: str) -> str:
    """A sentence for the first schema error, in the API's words."""
    keyword, schema = error.validator, error.schema
    if keyword == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "a field"
        return f"{hook_name} needs {field}.{missing}"
    if keyword == "type":
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        return f"{field} must be {' or '.join(_TYPE_WORDS[t] for t in types)}"
    if keyword == "maxItems":
        return f"{field} has more than {schema['maxItems']} items"
    if "description" in schema:
        return f"{field} must be {schema['description'].split(': ', 1)[-1]}"
    return f"{field}: {error.message[:200]}"


def validate_data(hook_name: str, data) -> None:
    """Raise `Invalid` (field `data…`) unless `data` matches the schema of `hook_name`, a known
    hook. Checks the schema only: run `check_values` too on values that did not come through
    `parse_body`."""
    error = next(_VALIDATORS[hook_name].iter_errors(data), None)
    if error is None:
        return
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{_name(part)}" for part in error.absolute_path)
    field = "data" + field
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        raise Invalid(f"{field}.{missing}" if missing else field, _message(hook_name, error, field))
    raise Invalid(field, _message(hook_name, error, field))


# -- the whole WebHook body: envelope and example ------------------------------------------------
# Built at import, outside any request: labels in English, the language of the docs and the
# OpenAPI document (the admin shows `hook.label` in the merchant's language instead).
LABELS: dict[str, str] = {}
GROUP_LABELS: dict[str, str] = {}


def _labels() -> None:
    from notify import hooks

    LABELS.update({hook.name: str(hook.label) for hook in hooks.HOOKS})
    GROUP_LABELS.update({group: str(label) for group, label in hooks.GROUP_LABELS.items()})


_labels()

# The example's id and time: fixed, so that the published examples do not change on every run.
EXAMPLE_ID = "evt_019ac5a1b2c3d4e5f6a7b8c9"
EXAMPLE_CREATED_AT = "2026-11-27T10:31:12.345Z"


def envelope_schema(hook_name: str, data_ref: dict | None = None) -> dict:
    """The JSON Schema of the whole body a WebHook receives for `hook_name` (models.Event.envelope):
    `{"id", "event", "created_at", "test", "data"}`, with `data` the hook's schema (`for_hook`), or
    `data_ref` (e.g. an OpenAPI `$ref` to it) when given."""
    data = data_ref if data_ref is not None else {k: v for k, v in for_hook(hook_name).items() if k != "$schema"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{hook_name}: the WebHook body",
        "type": "object",
        "required": ["id", "event", "created_at", "test", "data"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": "^evt_[0-9a-f]{1,40}$",
                   "description": "the event's id: the same in every delivery of this event"},
            "event": {"const": hook_name, "description": "the hook, also sent as X-Apsdai-Event"},
            "created_at": {"type": "string", "pattern": _ISO_TIME, "format": "date-time-range",
                           "description": "when the event was recorded, UTC, in milliseconds"},
            "test": {"type": "boolean", "description": "true when sent by a Test button"},
            "data": data,
        },
    }


def example(hook_name: str, *, test: bool = False) -> dict:
    """The whole WebHook body for `hook_name` with its sample `data` (notify/hooks.py): what the Test
    button sends (with `test` true), as docs/webhooks.md and the event catalogue page show it."""
    from notify import hooks

    return {"id": EXAMPLE_ID, "event": hook_name, "created_at": EXAMPLE_CREATED_AT, "test": test,
            "data": copy.deepcopy(hooks.get(hook_name).sample)}


def check_envelope(hook_name: str, body: dict) -> list[str]:
    """What is wrong with `body` as `hook_name`'s WebHook body (empty: nothing), with the formats the
    product checks; the tests hold every example to it."""
    validator = Draft202012Validator(envelope_schema(hook_name), format_checker=_FORMATS)
    return [f"{'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
            for error in validator.iter_errors(body)]


# -- the published copy -----------------------------------------------------------------------
DOCS_BEGIN = "<!-- schemas: begin (generated by `python -m notify.schemas --write`; do not edit) -->"
DOCS_END = "<!-- schemas: end -->"
DOCS_FILE = Path(__file__).resolve().parent.parent / "docs" / "webhooks.md"


def markdown() -> str:
    """The schemas section of docs/webhooks.md, between its markers."""
    parts = [DOCS_BEGIN, "", "#### Schema of the envelope", "",
             "The whole body, shown for `order_pay_hook`; for the other hooks `event` and `data` change.", "",
             "```json", json.dumps(envelope_schema("order_pay_hook", {"$ref": SCHEMAS["order_pay_hook"]["$id"]}), indent=2,
                                   ensure_ascii=False), "```", ""]
    for name, schema in SCHEMAS.items():
        parts += [f"#### Schema of `{name}`", "", "```json", json.dumps(schema, indent=2, ensure_ascii=False),
                  "```", ""]
    parts.append(DOCS_END)
    return "\n".join(parts)


EXAMPLES_BEGIN = "<!-- examples: begin (generated by `python -m notify.schemas --write`; do not edit) -->"
EXAMPLES_END = "<!-- examples: end -->"


def examples_markdown() -> str:
    """The examples section of docs/webhooks.md, between its markers: one whole body per hook."""
    from notify import hooks

    parts = [EXAMPLES_BEGIN, ""]
    for group, _label, group_hooks in hooks.grouped():
        parts += [f"### {GROUP_LABELS[group]} hooks", ""]
        for hook in group_hooks:
            parts += [f"#### `{hook.name}` — {LABELS[hook.name]}", "", "```json",
                      json.dumps(example(hook.name), indent=2, ensure_ascii=False), "```", ""]
    parts.append(EXAMPLES_END)
    return "\n".join(parts)


def _replace(text: str, begin: str, end: str, section: str) -> str:
    start, stop = text.index(begin), text.index(end) + len(end)
    return text[:start] + section + text[stop:]


def docs_with_schemas(text: str) -> str:
    """`text` (docs/webhooks.md) with its marked sections (the examples, the schemas) replaced by
    `examples_markdown()` and `markdown()`."""
    return _replace(_replace(text, EXAMPLES_BEGIN, EXAMPLES_END, examples_markdown()), DOCS_BEGIN, DOCS_END,
                    markdown())


def main(argv: list[str]) -> int:
    """`python -m notify.schemas`: print the schemas as JSON; `--write`: refresh docs/webhooks.md."""
    if argv[1:] == ["--write"]:
        DOCS_FILE.write_text(docs_with_schemas(DOCS_FILE.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"wrote the schemas into {DOCS_FILE}")
        return 0
    print(json.dumps(SCHEMAS, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
