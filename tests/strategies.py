"""Hypothesis strategies for request bodies, well-formed and malformed, for the events and ledger
APIs. Shared by tests/test_fuzz_api.py and scripts/fuzz_api.py (the large run).

Each strategy gives what a client could send: `bytes` bodies (random JSON, hostile strings, deep
nesting, raw bytes, NaN and huge numbers as a lax encoder writes them) and query strings.
"""
from __future__ import annotations

import json
from datetime import date, datetime
from urllib.parse import quote

from hypothesis import strategies as st

from notify import hooks

# Strings that broke something somewhere once: control characters, lone surrogates, markup the
# messages must not interpret, dates at the ends of the calendar, numbers as text.
HOSTILE_TEXT = st.sampled_from([
    "", " ", "\x00", "a\x00b", "\ud800", "\udfff", "x\ud83d", "\u2028", "\r\n", "\t", "\x1b[31m", "\ufeff",
    "x" * 300, "界" * 250, "😀" * 70, "<script>alert(1)</script>", "**bold** [link](http://x)", "\n# heading\n",
    "@all", "<@everyone>", "{{ 7 * 7 }}", "%s%n", "${jndi:x}", "' OR 1=1 --", "NaN", "Infinity", "-0", "1e999",
    "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59Z", "2026-02-30", "2026-11-27T25:00:00Z",
    "2026-11-27T10:31:12.000Z", "2026-11-27", "128.00", "-1", "1.234", "9999999999.99", "10000000000.00",
    "CNY", "cny", "XXX", "buyer@example.com", "a@b", "../../etc/passwd", "vpn", "AP1",
])
TEXT = st.one_of(HOSTILE_TEXT, st.text(max_size=40))
NUMBERS = st.one_of(
    st.integers(min_value=-10, max_value=10**6),
    st.sampled_from([0, 1, -1, 2**31, 2**53 - 1, 2**53, 2**63, -(2**63) - 1, 10**20, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.1, 0.29, 128.5, 1e-7, 1e300, 9999999999.99, -0.0]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON_VALUES = st.recursive(SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=5), st.dictionaries(TEXT, children, max_size=5)), max_leaves=12)


def _maybe(value):
    """A value or, sometimes, anything at all in its place."""
    return st.one_of(value, value, value, JSON_VALUES)


TIMES = st.one_of(st.datetimes().map(lambda d: d.isoformat(timespec="milliseconds") + "Z"),
                  st.sampled_from(["2026-11-27T10:31:12.000Z", "2026-11-27T10:31:12+08:00", "2026-11-27T10:31:12",
                                   "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
                                   "1970-01-01T00:00:00+01:00", "2099-12-31T23:59:59-01:00"]), TEXT)
AMOUNTS = st.one_of(st.decimals(min_value=0, max_value=10**11, places=2, allow_nan=False).map(str),
                    st.decimals(allow_nan=True, allow_infinity=True).map(str), NUMBERS, TEXT)
PRODUCTS = st.fixed_dictionaries({}, optional={"path": _maybe(TEXT), "name": _maybe(TEXT)})
ORDERS = st.fixed_dictionaries({}, optional={
    "order_no": _maybe(TEXT), "status": _maybe(TEXT), "product": _maybe(PRODUCTS),
    "quantity": _maybe(st.integers(min_value=-2, max_value=200_000)), "amount": _maybe(AMOUNTS),
    "currency": _maybe(st.sampled_from(["CNY", "USD", "EUR", "JPY", "cny", "XXX", "ZZZ", "€"])),
    "buyer_email": _maybe(TEXT), "created_at": _maybe(TIMES), "paid_at": _maybe(TIMES),
    "refunded_at": _maybe(TIMES), "completed_at": _maybe(TIMES), "note": JSON_VALUES,
})
LEVELS = _maybe(st.integers(min_value=-5, max_value=2 * 10**9))
DAYS = st.lists(_maybe(st.fixed_dictionaries({"date": _maybe(st.one_of(st.dates().map(str), TEXT))}, optional={
    "order_count": LEVELS, "amount": _maybe(AMOUNTS), "currency": _maybe(TEXT),
    "amounts": _maybe(st.dictionaries(st.sampled_from(["USD", "EUR", "usd", "\x00"]), AMOUNTS, max_size=3))})),
    max_size=40)


def hook_data(hook_name: str):
    """`data` shaped roughly like the hook's, each field sometimes wrong."""
    hook = hooks.get(hook_name)
    if hook.required_key == "order":
        return st.fixed_dictionaries({}, optional={"order": _maybe(ORDERS), "extra": JSON_VALUES})
    if hook.required_key == "product":
        level = "inventory" if hook_name == "stock_alarm_hook" else "available_keys"
        return st.fixed_dictionaries({}, optional={"product": _maybe(PRODUCTS), level: LEVELS, "threshold": LEVELS})
    return st.fixed_dictionaries({}, optional={"days": _maybe(DAYS), "currency": _maybe(TEXT),
                                               "timezone": _maybe(TEXT), "late": _maybe(st.booleans())})


HOOK_NAMES = st.one_of(st.sampled_from(hooks.HOOK_NAMES), st.sampled_from(hooks.HOOK_NAMES), TEXT, JSON_VALUES)
EVENTS = HOOK_NAMES.flatmap(lambda name: st.fixed_dictionaries(
    {"event": st.just(name),
     "data": hook_data(name) if isinstance(name, str) and name in hooks.HOOKS_BY_NAME else JSON_VALUES},
    optional={"extra": JSON_VALUES}))


def encode(value) -> bytes:
    """JSON as a lax encoder writes it: NaN and Infinity as bare words, lone surrogates as escapes."""
    return json.dumps(value, allow_nan=True).encode("utf-8")


def _nested(depth: int, kind: str) -> bytes:
    opening, closing = ("[", "]") if kind == "list" else ('{"a":', "}")
    return (opening * depth + "1" + closing * depth).encode()


DEEP = st.builds(_nested, st.sampled_from([31, 32, 33, 100, 999, 1001, 5000, 20000]), st.sampled_from(["list", "dict"]))
MALFORMED = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b"{", b"[1,]", b'{"a":1,}', b"\xef\xbb\xbf{}", b"{}" * 3, b"\xed\xa0\x80",
                     b'{"event": "order_pay_hook", "data": {"order": {"amount": NaN}}}',
                     b'{"event": "order_pay_hook", "data": {"order": {"amount": 1' + b"0" * 5000 + b"}}}",
                     b'{"event": "order_pay_hook", "data": {"order": {"order_no": "A\\u0000"}}}',
                     b'{"event": "order_pay_hook", "data": {"order": {"\\ud800": 1}}}']),
    DEEP,
)


# -- the ledger ----------------------------------------------------------------------------------
PRODUCT_BODIES = st.fixed_dictionaries({}, optional={
    "path": _maybe(st.sampled_from(["vpn", "ebook", "p1", "a" * 64, "a" * 65, "", "v/p", "v\x00"])),
    "name": _maybe(TEXT), "price": _maybe(AMOUNTS), "currency": _maybe(st.sampled_from(["CNY", "USD", "cny", "XYZ"])),
    "inventory": st.one_of(st.none(), LEVELS), "low_stock_threshold": LEVELS, "stock_alert": _maybe(st.booleans()),
    "keys": _maybe(st.fixed_dictionaries({}, optional={"enabled": _maybe(st.booleans()), "available": LEVELS,
                                                       "low_key_threshold": LEVELS}))})
ORDER_BODIES = st.fixed_dictionaries({}, optional={
    "product": _maybe(st.sampled_from(["vpn", "ebook", "nope", "v\x00"])),
    "order_no": _maybe(st.one_of(TEXT, st.sampled_from(["AP1", "AP2", "a/b"]))),
    "quantity": _maybe(st.integers(min_value=-2, max_value=200_000)), "amount": _maybe(AMOUNTS),
    "currency": _maybe(st.sampled_from(["CNY", "USD", "xx"])), "buyer_email": _maybe(TEXT)})
SEGMENTS = st.one_of(st.sampled_from(["vpn", "ebook", "AP1", "AP2", "nope", "%00", "a%00b", "%ED%A0%80", "x" * 300]),
                     st.text(alphabet=st.characters(codec="utf-8"), max_size=20).map(lambda t: quote(t, safe="")))
PARAMETER_VALUES = st.one_of(TEXT, st.sampled_from(["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59Z", str(2**63),
                                                    str(2**64), "-1", "0", "1_0", "٣", "2026-11-27", "1e3"]))
QUERIES = st.dictionaries(st.sampled_from(["since", "until", "before", "limit", "status", "product", "x", "\x00"]),
                          PARAMETER_VALUES, max_size=4).map(
    lambda args: "&".join(f"{quote(k.encode('utf-8', 'surrogatepass'), safe='')}="
                          f"{quote(v.encode('utf-8', 'surrogatepass'), safe='')}" for k, v in args.items()))


def _body(strategy):
    return st.one_of(strategy.map(encode), strategy.map(encode), strategy.map(encode), JSON_VALUES.map(encode),
                     MALFORMED)


@st.composite
def ledger_requests(draw):
    """`(method, path, body or None, query)` for the ledger API."""
    segment = draw(SEGMENTS)
    choice = draw(st.sampled_from(["create_product", "patch_product", "inventory", "keys", "create_order",
                                   "transition", "get_order", "get_product", "list_orders", "list_products"]))
    if choice == "create_product":
        return "POST", "/products", draw(_body(PRODUCT_BODIES)), ""
    if choice == "patch_product":
        return "PATCH", f"/products/{segment}", draw(_body(PRODUCT_BODIES)), ""
    if choice == "inventory":
        return "PUT", f"/products/{segment}/inventory", draw(_body(st.fixed_dictionaries({"inventory": LEVELS}))), ""
    if choice == "keys":
        return "POST", f"/products/{segment}/keys", draw(_body(st.fixed_dictionaries({"count": LEVELS}))), ""
    if choice == "create_order":
        return "POST", "/orders", draw(_body(ORDER_BODIES)), ""
    if choice == "transition":
        action = draw(st.sampled_from(["pay", "cancel", "refund", "complete", "nope"]))
        return "POST", f"/orders/{segment}/{action}", draw(st.one_of(st.none(), _body(JSON_VALUES))), ""
    if choice == "get_order":
        return "GET", f"/orders/{segment}", None, ""
    if choice == "get_product":
        return "GET", f"/products/{segment}", None, ""
    if choice == "list_products":
        return "GET", "/products", None, draw(QUERIES)
    return "GET", "/orders", None, draw(QUERIES)


# Products and orders that the generated requests refer to, so that some of them get far.
SEED_PRODUCTS = [
    {"path": "vpn", "name": "VPN Monthly Plan", "price": "128.00", "currency": "CNY",
     "keys": {"enabled": True, "available": 3, "low_key_threshold": 1}},
    {"path": "ebook", "name": "电子书", "price": "9.90", "currency": "USD", "inventory": 5, "low_stock_threshold": 2},
]
SEED_ORDERS = [{"product": "vpn", "order_no": "AP1"}, {"product": "ebook", "order_no": "AP2", "quantity": 2}]


def is_error_shape(body) -> bool:
    """The API's JSON error: `{"error": {"code": …, "message": …, ["field": …]}}`."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return False
    error = body["error"]
    return (isinstance(error.get("code"), str) and isinstance(error.get("message"), str)
            and isinstance(error.get("field", ""), str))


# -- events the API should accept: valid in every field the product reads, hostile in content -----
def _safe_text(min_size: int, max_size: int):
    """Text with no NUL and no lone surrogate (the only characters refused everywhere), markup and
    control characters included: what a message must show without breaking."""
    alphabet = st.characters(codec="utf-8", exclude_characters="\x00")
    samples = [t for t in ["**bold**", "<b>x</b>", "@all", "\n\n# h\n", "\x1b[31m", "界" * 20, "😀", "|a|b|", "`x`",
                           "> quote", "[l](http://x)", "\r\n", "%s", "{{ x }}"] if min_size <= len(t) <= max_size]
    return st.one_of(st.text(alphabet=alphabet, min_size=min_size, max_size=max_size),
                     st.sampled_from(samples) if samples else st.nothing(),
                     st.just("x" * max_size))


SAFE_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1),
              st.floats(min_value=-1e15, max_value=1e15), _safe_text(0, 30)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_safe_text(0, 10), children,
                                                                               max_size=4)), max_leaves=10)
VALID_TIMES = st.builds(
    lambda moment, offset: moment.isoformat(timespec="milliseconds") + offset,
    st.datetimes(min_value=datetime(1970, 1, 2),
                 max_value=datetime(2099, 12, 30)),
    st.sampled_from(["Z", "", "+08:00", "-05:00", "+14:00"]))
VALID_AMOUNTS = st.one_of(
    st.decimals(min_value=0, max_value="9999999999.99", places=2, allow_nan=False).map(str),
    st.integers(min_value=0, max_value=9999999999), st.sampled_from([0.1, 0.29, 128.5, 9999999999.99]))
VALID_CURRENCIES = st.sampled_from(["CNY", "USD", "EUR", "JPY", "GBP", "XXX", "ZZZ"])
VALID_PRODUCTS = st.fixed_dictionaries({}, optional={"path": _safe_text(1, 64), "name": _safe_text(1, 200)})
VALID_ORDERS = st.fixed_dictionaries({}, optional={
    "order_no": _safe_text(1, 64), "status": _safe_text(1, 32), "product": VALID_PRODUCTS,
    "quantity": st.integers(min_value=1, max_value=100_000), "amount": VALID_AMOUNTS, "currency": VALID_CURRENCIES,
    "buyer_email": _safe_text(0, 254), "created_at": VALID_TIMES, "paid_at": st.one_of(st.none(), VALID_TIMES),
    "cancelled_at": VALID_TIMES, "refunded_at": VALID_TIMES, "out_of_stock_at": VALID_TIMES,
    "completed_at": VALID_TIMES, "note": SAFE_JSON})
VALID_LEVELS = st.integers(min_value=0, max_value=10**9)
VALID_DAYS = st.lists(st.fixed_dictionaries(
    {"date": st.dates(min_value=date(1970, 1, 1),
                      max_value=date(2099, 12, 31)).map(str)},
    optional={"order_count": VALID_LEVELS, "amount": VALID_AMOUNTS, "currency": VALID_CURRENCIES,
              "amounts": st.dictionaries(VALID_CURRENCIES, VALID_AMOUNTS, max_size=3)}), max_size=31)


def valid_hook_data(hook_name: str):
    hook = hooks.get(hook_name)
    if hook.required_key == "order":
        return st.fixed_dictionaries({"order": VALID_ORDERS}, optional={"shop_extra": SAFE_JSON})
    if hook.required_key == "product":
        level = "inventory" if hook_name == "stock_alarm_hook" else "available_keys"
        return st.fixed_dictionaries({"product": VALID_PRODUCTS},
                                     optional={level: VALID_LEVELS, "threshold": VALID_LEVELS, "shop_extra": SAFE_JSON})
    return st.fixed_dictionaries({"days": VALID_DAYS}, optional={
        "currency": VALID_CURRENCIES, "timezone": _safe_text(1, 64), "late": st.booleans(), "shop_extra": SAFE_JSON})


VALID_EVENTS = st.sampled_from(hooks.HOOK_NAMES).flatmap(
    lambda name: st.fixed_dictionaries({"event": st.just(name), "data": valid_hook_data(name)}))


def event_bodies():
    """Bodies for POST /api/v1/events: mostly shaped like events, some anything at all."""
    return st.one_of(EVENTS.map(encode), VALID_EVENTS.map(encode), JSON_VALUES.map(encode), MALFORMED)
