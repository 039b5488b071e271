"""What the deliveries page's filter selects: by result, channel, hook, the merchant's days, and
one search box that takes an order number, an event id (`evt_…`) or a delivery id (`dlv_…`), and
the deliveries of one digest message (`digest=dig_…`, the link in the digest).

Every figure the page shows about a filter (the list, its count, the preview of sending them all
again) is a query over the same `conditions()`, so they always agree. Each query reads an index
and is bounded: the list by its page, the count by `COUNT_CAP`, the bulk redelivery by its cap.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, literal, select

from extensions import db
from models import Attempt, Delivery, DeliveryStatus, Event
from models.deliveries import ORDER_NO_LENGTH
from notify import hooks

# Beyond this the page says "more than 10,000": counting further would read the whole index range
# (a quarter of a million deliveries in two weeks at the benchmark's size) on every page view.
COUNT_CAP = 10_000

_ID = re.compile(r"(evt|dlv)_[0-9a-f]{12,36}")
_DIGEST = re.compile(r"dig_[0-9a-f]{12,36}")


def parse_digest(text: str | None) -> str | None:
    """A digest id (`dig_…`, notify.digests) as the filter takes it, or None (no filter)."""
    text = (text or "").strip().lower()
    return text if _DIGEST.fullmatch(text) else None


@dataclass(frozen=True)
class Search:
    """What the search box was understood as: `kind` is "delivery", "event" or "order"."""
    kind: str
    value: str


def parse_search(text: str | None) -> Search | None:
    """An exact `dlv_…` or `evt_…` id is that id (case and surrounding spaces forgiven); anything
    else is an order number, compared exactly (as far as the stored 100 characters go). NUL, which
    no order number holds and PostgreSQL refuses in a parameter, is dropped."""
    text = (text or "").replace("\x00", "").strip()
    if not text:
        return None
    if _ID.fullmatch(text.lower()):
        return Search("delivery" if text.lower().startswith("dlv_") else "event", text.lower())
    return Search("order", text[:ORDER_NO_LENGTH])


def unindexed(column):
    """`column` as an expression that has the same value and that no index is on."""
    return func.coalesce(column, column)


@dataclass(frozen=True)
class DeliveryFilter:
    """The page's filter, already parsed: None is "any"; `since`/`until` are UTC moments."""
    status: str | None = None
    channel_id: int | None = None
    hook: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: Search | None = None
    # The deliveries one digest message carried (their attempts share its id).
    digest: str | None = None

    def conditions(self) -> list:
        """The WHERE clauses on `Delivery` (an unknown status or hook is no filter)."""
        where = []
        # With a search, the other filters are written so that no index matches them: SQLite plans
        # without statistics and, given an equality on the channel or the result too, prefers that
        # index (which also gives the order) and reads every delivery of the channel to find one
        # order's. A search selects a handful of rows, so its own index is always the one to read;
        # PostgreSQL's planner knows it from its statistics, and loses nothing.
        column = unindexed if self.search is not None else (lambda c: c)
        if self.status in DeliveryStatus.ALL:
            where.append(column(Delivery.status) == self.status)
        if self.channel_id:
            where.append(column(Delivery.channel_id) == self.channel_id)
        if self.hook in hooks.HOOKS_BY_NAME:
            where.append(column(Delivery.hook) == self.hook)
        if self.since:
            where.append(column(Delivery.created_at) >= self.since)
        if self.until:
            where.append(column(Delivery.created_at) < self.until)
        if self.digest is not None:
            where.append(Delivery.id.in_(select(Attempt.delivery_id).where(Attempt.digest_id == self.digest)
                                         .scalar_subquery()))
        if self.search is not None:
            if self.search.kind == "delivery":
                where.append(Delivery.id == self.search.value)
            elif self.search.kind == "event":
                where.append(Delivery.event_id == self.search.value)
            else:
                where.append(Delivery.event_id.in_(select(Event.id).where(Event.order_no == self.search.value)
                                                   .scalar_subquery()))
        return where

    def select(self, *columns):
        """`SELECT columns FROM deliveries WHERE conditions`."""
        return select(*columns).select_from(Delivery).where(*self.conditions())

    def count(self, cap: int | None = None) -> tuple[int, bool]:
        """`(n, more)`: how many deliveries the filter selects, up to `cap` (`COUNT_CAP`), and
        whether there are more."""
        cap = COUNT_CAP if cap is None else cap
        limited = self.select(literal(1)).limit(cap + 1).subquery()
        n = db.session.scalar(select(func.count()).select_from(limited))
        return min(n, cap), n > cap
