"""What the admin pages show of a stored event and of the request a delivery makes, whatever the
stored data is.

Events were accepted by older versions with data this version would refuse (nested nearly a
thousand deep, numbers too long to decode, lone surrogates, strings where objects belong): a page
shows such an event as well as it can and says what it could not do, never fails because of it.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import Text, cast, select

from extensions import db
from models import Delivery, Event
from notify import signing
from notify.channels import DeliverySettings, transport_for

log = logging.getLogger(__name__)


@dataclass
class StoredEvent:
    id: str
    hook: str
    is_test: bool
    created_at: datetime
    payload: str  # the WebHook body, laid out for reading, non-ASCII as characters
    problem: str | None = None  # why the payload is shown as stored rather than laid out


def shown(text: str) -> str:
    """`text` as a page can send it: a lone surrogate (which UTF-8 cannot encode) as its `\\uXXXX`
    escape, NUL as the replacement character."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if text.isascii():
        return text
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def is_test(event_id: str) -> bool:
    """Whether the event is a Test (its data is not read: it may not decode)."""
    return bool(db.session.scalar(select(Event.is_test).where(Event.id == event_id)))


def load_event(event_id: str) -> StoredEvent | None:
    """The event with its payload as the WebHook body (`Event.envelope`), pretty-printed; when its
    data cannot be decoded or laid out, the stored JSON text as it is, with the reason."""
    row = db.session.execute(select(Event.id, Event.hook, Event.is_test, Event.created_at)
                             .where(Event.id == event_id)).one_or_none()
    if row is None:
        return None
    event = StoredEvent(row.id, shown(row.hook or ""), bool(row.is_test), row.created_at, payload="")
    try:
        data = db.session.execute(select(Event.data).where(Event.id == event_id)).scalar_one()
        envelope = Event(id=row.id, hook=row.hook, is_test=row.is_test, created_at=row.created_at,
                         data=data).envelope()
        try:
            event.payload = json.dumps(envelope, ensure_ascii=False, indent=2)
        except (RecursionError, ValueError):  # too deep to lay out: on one line, as the receiver gets it
            event.payload = json.dumps(envelope, ensure_ascii=False)
    except Exception as exc:  # whatever the data is, the page shows the rest
        log.warning("event %s: payload shown as stored (%s)", event_id, _error(exc))
        db.session.rollback()
        raw = db.session.execute(select(cast(Event.data, Text)).where(Event.id == event_id)).scalar_one()
        event.payload = raw or ""
        event.problem = _("The event's data is shown as stored: it cannot be laid out (%(error)s).",
                          error=_error(exc))
    event.payload = shown(event.payload)
    return event


def curl_for(delivery: Delivery, reveal: bool = False) -> tuple[str | None, str | None]:
    """A curl command that sends this delivery again, freshly signed (None for email), its
    credentials masked unless `reveal`; and why there is none when its request cannot be built
    from the event's data."""
    channel = delivery.channel
    if channel is None:
        return None, None
    try:
        transport = transport_for(channel.kind)(channel, DeliverySettings.from_config(current_app.config))
        request = transport.prepare(delivery.event, delivery, signing.now_ms())
        command = request.curl() if reveal else request.masked_curl()
    except Exception as exc:  # the same failure the worker records as the delivery's attempt
        log.warning("delivery %s: no curl command (%s)", delivery.id, _error(exc))
        db.session.rollback()
        return None, _("The request cannot be built from this event's data (%(error)s).", error=_error(exc))
    return (shown(command) if command else None), None
