"""The event catalogue: the nine hooks of the APSDAI notifications page.

Hook names are the contract (they travel in `X-Apsdai-Event`) and never change. Each hook has a
group, a label for the admin, the top-level key its `data` must carry, and a realistic sample
payload used by the Test button and documented in `docs/webhooks.md`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l

ORDER, INVENTORY, STATISTICS = "order", "inventory", "statistics"

GROUP_LABELS = {
    ORDER: _l("Order"),
    INVENTORY: _l("Inventory"),
    STATISTICS: _l("Statistics"),
}


@dataclass(frozen=True)
class Hook:
    name: str
    group: str
    label: object  # a lazy string; rendered in the merchant's language
    required_key: str
    sample: dict = field(repr=False)


_PRODUCT = {"path": "vpnmonthly", "name": "VPN Monthly Plan"}


def _order(status: str, **times: str) -> dict:
    order = {
        "order_no": "AP202611271830001234",
        "status": status,
        "product": dict(_PRODUCT),
        "quantity": 1,
        "amount": "128.00",
        "currency": "CNY",
        "buyer_email": "buyer@example.com",
        "created_at": "2026-11-27T10:30:00.000Z",
    }
    order.update(times)
    return {"order": order}


HOOKS: tuple[Hook, ...] = (
    Hook("order_create_hook", ORDER, _l("Order Created"), "order", _order("created")),
    Hook("order_pay_hook", ORDER, _l("Order Paid"), "order",
         _order("paid", paid_at="2026-11-27T10:31:12.000Z")),
    Hook("order_cancel_hook", ORDER, _l("Order Cancelled"), "order",
         _order("cancelled", cancelled_at="2026-11-27T10:45:00.000Z")),
    Hook("order_refund_hook", ORDER, _l("Order Refunded"), "order",
         _order("refunded", paid_at="2026-11-27T10:31:12.000Z", refunded_at="2026-11-27T12:02:40.000Z")),
    Hook("order_out_of_stock_hook", ORDER, _l("Order Out of Stock"), "order",
         _order("out_of_stock", paid_at="2026-11-27T10:31:12.000Z", out_of_stock_at="2026-11-27T10:31:12.000Z")),
    Hook("order_finish_hook", ORDER, _l("Order Completed"), "order",
         _order("completed", paid_at="2026-11-27T10:31:12.000Z", completed_at="2026-11-27T10:31:13.000Z")),
    Hook("stock_alarm_hook", INVENTORY, _l("Low Stock Alert"), "product",
         {"product": dict(_PRODUCT), "inventory": 3, "threshold": 5}),
    Hook("key_stock_alarm_hook", INVENTORY, _l("Low Key Stock Alert"), "product",
         {"product": dict(_PRODUCT), "available_keys": 2, "threshold": 10}),
    Hook("order_count_amount_hook", STATISTICS, _l("Last 2 Days Order Count & Amount"), "days",
         {"timezone": "Asia/Shanghai", "currency": "CNY", "days": [
             {"date": "2026-11-27", "order_count": 18, "amount": "2304.00"},
             {"date": "2026-11-26", "order_count": 15, "amount": "1920.00"},
         ]}),
)

HOOKS_BY_NAME: dict[str, Hook] = {hook.name: hook for hook in HOOKS}
HOOK_NAMES: tuple[str, ...] = tuple(HOOKS_BY_NAME)


def grouped() -> list[tuple[str, object, list[Hook]]]:
    """`[(group, group label, [hooks…]), …]` in the order of the seed's page."""
    return [(group, label, [h for h in HOOKS if h.group == group]) for group, label in GROUP_LABELS.items()]


def get(name: str) -> Hook:
    """The hook called `name`; `KeyError` for a name not in the catalogue."""
    return HOOKS_BY_NAME[name]
