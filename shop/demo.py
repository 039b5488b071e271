"""A demo shop, so a new merchant sees every hook fire: `flask demo seed` fills the ledger with a few
products and orders; `flask demo traffic` plays customers against the API over HTTP, as a real
shop would (creations, payments, some cancellations and refunds, keys running out and restocked).
"""
from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field

import requests

from extensions import db
from models import Product
from shop import ledger

PRODUCTS = [
    {"path": "vpnmonthly", "name": "VPN Monthly Plan", "price": "128.00", "currency": "CNY",
     "keys": {"enabled": True, "available": 6, "low_key_threshold": 3}},
    {"path": "ebookpython", "name": "Python 入门电子书", "price": "39.90", "currency": "CNY", "inventory": 12,
     "low_stock_threshold": 5},
    {"path": "consulting", "name": "One-hour consultation", "price": "499.00", "currency": "CNY"},
]
BUYERS = ["li.wei@example.com", "zhang.min@example.com", "wang.fang@example.com", "chen.jie@example.com",
          "alex@example.com"]


def seed() -> dict:
    """Create the demo products (unless they exist) and an order in each state. Commits."""
    created = 0
    for spec in PRODUCTS:
        if db.session.scalar(db.select(Product.id).where(Product.path == spec["path"])) is None:
            ledger.create_product(dict(spec))
            created += 1
    db.session.commit()
    orders = []
    for product, actions in (("consulting", ["pay", "complete"]), ("ebookpython", ["pay"]),
                             ("vpnmonthly", ["pay"]), ("consulting", ["cancel"]), ("ebookpython", ["pay", "refund"]),
                             ("consulting", [])):
        order = ledger.create_order({"product": product, "buyer_email": random.choice(BUYERS)})
        for action in actions:
            ledger.TRANSITIONS[action](order.order_no)
        db.session.commit()
        orders.append(order.order_no)
    return {"products": created, "orders": len(orders)}


@dataclass
class Traffic:
    """Customers of the demo shop, calling the API at `url` with `token`."""

    url: str
    token: str
    session: requests.Session = field(default_factory=requests.Session)
    waiting: list[str] = field(default_factory=list)  # created, not yet paid
    paid: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def call(self, what: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """One API call, counted as `what → status` for the summary."""
        response = self.session.request(method, f"{self.url}/api/v1{path}", json=body, timeout=10, headers={
            "Authorization": f"Bearer {self.token}", "Idempotency-Key": uuid.uuid4().hex})
        key = f"{what} → {response.status_code}"
        self.counts[key] = self.counts.get(key, 0) + 1
        return response.status_code, response.json()

    def ensure_products(self) -> None:
        for spec in PRODUCTS:
            if self.call("read product", "GET", f"/products/{spec['path']}")[0] == 404:
                self.call("create product", "POST", "/products", spec)

    def step(self) -> None:
        """One customer action, chosen the way a small shop's day goes."""
        roll = random.random()
        if roll < 0.45 or not self.waiting:
            product = random.choice(PRODUCTS)["path"]
            status, order = self.call("create order", "POST", "/orders", {
                "product": product, "quantity": 1, "buyer_email": random.choice(BUYERS)})
            if status == 201:
                self.waiting.append(order["order_no"])
        elif roll < 0.85:
            order_no = self.waiting.pop(0)
            status, order = self.call("pay", "POST", f"/orders/{order_no}/pay")
            if status == 200:
                self.paid.append(order_no)
                if order["product"]["path"] == "consulting":  # a service: delivered by hand
                    self.call("complete", "POST", f"/orders/{order_no}/complete")
            elif status == 409 and order["error"]["code"] == "insufficient_inventory":
                # Sold out: the merchant restocks the one product with a fixed inventory.
                self.call("restock", "PUT", "/products/ebookpython/inventory", {"inventory": 12})
                self.waiting.append(order_no)
        elif roll < 0.92:
            self.call("cancel", "POST", f"/orders/{self.waiting.pop()}/cancel")
        elif roll < 0.96 and self.paid:
            self.call("refund", "POST", f"/orders/{self.paid.pop(random.randrange(len(self.paid)))}/refund")
        else:
            self.call("add keys", "POST", "/products/vpnmonthly/keys", {"count": random.randint(2, 5)})

    def run(self, rate: float, duration: float) -> dict[str, int]:
        self.ensure_products()
        interval, deadline = 1.0 / rate, time.monotonic() + duration
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            self.step()
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        return self.counts
