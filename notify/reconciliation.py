"""Reconciliation for integrators: which events happened, and where each of their deliveries stands.

`GET /api/v1/events` (blueprints/api.py) is `list_events(parse_query(args))`: events oldest first,
optionally since a moment, of one hook, or having a delivery in one status (`failed`, `dead`, …),
each with the state of its deliveries, a page at a time behind an opaque cursor. Two queries per
page whatever its size: the events, then their deliveries.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select

from extensions import db
from models import Delivery, DeliveryStatus, Event
from notify import hooks, schemas

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
PARAMETERS = ("since", "hook", "status", "limit", "cursor")


@dataclass(frozen=True)
class Query:
    since: datetime | None = None
    hook: str | None = None
    status: str | None = None
    limit: int = DEFAULT_LIMIT
    after: tuple[datetime, str] | None = None  # the last event of the previous page


def _bad(name: str, message: str, code: str = "invalid_parameter") -> schemas.Invalid:
    return schemas.Invalid(name, message, code)


def parse_query(args) -> Query:
    """The query string (a werkzeug MultiDict) as a `Query`; `schemas.Invalid` naming the first
    parameter that is unknown, repeated, longer than the cursor's 200 characters or malformed, as
    the ledger's list calls do (code `unknown_parameter` or `invalid_parameter`)."""
    for name in args:
        if name not in PARAMETERS:
            shown = schemas.printable(name)
            raise _bad(shown, f"unknown parameter {shown!r}; this call takes {', '.join(PARAMETERS)}",
                       "unknown_parameter")
        values = args.getlist(name)
        if len(values) > 1:
            raise _bad(name, f"{name} is given {len(values)} times; give it once")
        if len(values[0]) > (200 if name == "cursor" else 64) or "\x00" in values[0]:
            raise _bad(name, f"{name} must be a text of at most {200 if name == 'cursor' else 64} characters")
    since = args.get("since") or None
    if since is not None:
        since = schemas.parse_time(since)
        if since is None:
            raise _bad("since", f"since must be a date or time such as 2026-11-27 or 2026-11-27T10:00:00Z, in the "
                                f"years {schemas.FIRST_YEAR} to {schemas.LAST_YEAR}")
    hook = args.get("hook") or None
    if hook is not None and hook not in hooks.HOOKS_BY_NAME:
        raise _bad("hook", f"hook must be one of {', '.join(hooks.HOOK_NAMES)}")
    status = args.get("status") or None
    if status is not None and status not in DeliveryStatus.ALL:
        raise _bad("status", f"status must be one of {', '.join(DeliveryStatus.ALL)}")
    limit = args.get("limit") or None
    if limit is None:
        limit = DEFAULT_LIMIT
    elif limit.isascii() and limit.isdigit() and 1 <= int(limit) <= MAX_LIMIT:
        limit = int(limit)
    else:
        raise _bad("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    cursor = args.get("cursor") or None
    return Query(since=since, hook=hook, status=status, limit=limit,
                 after=decode_cursor(cursor) if cursor is not None else None)


# The cursor: the last event's (created_at, id), as base64url JSON. Opaque to clients, so its
# shape may change; checked on the way in, since a client can send anything.
def encode_cursor(event_created_at: datetime, event_id: str) -> str:
    raw = json.dumps([event_created_at.isoformat(), event_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, event_id = json.loads(raw.decode("utf-8"))
        moment = datetime.fromisoformat(moment)
        if (moment.tzinfo is not None or not isinstance(event_id, str) or not event_id.isascii()
                or not event_id.isprintable() or len(event_id) > 40):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise _bad("cursor", "cursor must be the next_cursor of a previous page, unchanged") from None
    return moment, event_id


def delivery_dict(delivery) -> dict:
    """A delivery's state as the API shows it; `target` is stored masked (no secret, no robot token)."""
    return {
        "id": delivery.id, "event_id": delivery.event_id, "hook": delivery.hook, "channel_kind": delivery.channel_kind,
        "target": delivery.target, "status": delivery.status, "attempts": delivery.attempt_count,
        "max_attempts": delivery.max_attempts, "last_status_code": delivery.last_status_code,
        "updated_at": _iso(delivery.updated_at),
    }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


_DELIVERY_COLUMNS = (Delivery.id, Delivery.event_id, Delivery.hook, Delivery.channel_kind, Delivery.target,
                     Delivery.status, Delivery.attempt_count, Delivery.max_attempts, Delivery.last_status_code,
                     Delivery.updated_at)


def filtered_list(stored) -> list[dict]:
    """`events.filtered` as the API shows it: which channels' filters left the event out, each
    with its reason as a code and an English sentence (`message`)."""
    from notify import reasons

    shown = []
    for entry in stored if isinstance(stored, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("reason"), dict):
            shown.append({"channel_id": entry.get("channel_id"), "reason": entry["reason"],
                          "message": reasons.Reason(str(entry["reason"].get("code")),
                                                    entry["reason"].get("params") or {}).english()})
    return shown


def list_events(query: Query) -> dict:
    """One page: `{"events": [envelope + "source" + "deliveries"], "next_cursor": str | None}`,
    events oldest first (so a client catching up reads forward and stores the cursor)."""
    statement = select(Event).order_by(Event.created_at, Event.id)
    if query.since is not None:
        statement = statement.where(Event.created_at >= query.since)
    if query.hook is not None:
        statement = statement.where(Event.hook == query.hook)
    if query.status is not None:
        statement = statement.where(exists().where(Delivery.event_id == Event.id, Delivery.status == query.status))
    if query.after is not None:
        moment, event_id = query.after
        statement = statement.where((Event.created_at > moment) | ((Event.created_at == moment) & (Event.id > event_id)))
    events = db.session.scalars(statement.limit(query.limit + 1)).all()
    page = events[:query.limit]
    by_event: dict[str, list[dict]] = {event.id: [] for event in page}
    if page:
        rows = db.session.execute(select(*_DELIVERY_COLUMNS).where(Delivery.event_id.in_(list(by_event)))
                                  .order_by(Delivery.created_at, Delivery.id)).all()
        for row in rows:
            by_event[row.event_id].append(delivery_dict(row))
    return {
        "events": [{**event.envelope(), "source": event.source, "deliveries": by_event[event.id],
                    "filtered": filtered_list(event.filtered)} for event in page],
        "next_cursor": encode_cursor(page[-1].created_at, page[-1].id) if len(events) > query.limit else None,
    }
