from __future__ import annotations

import secrets
import time
from datetime import datetime, timezone


def utcnow() -> datetime:
    """Naive UTC: every timestamp column stores UTC without an offset, on SQLite and PostgreSQL alike."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def local_to_utc(moment: datetime, tz_name: str) -> datetime:
    """A naive wall-clock time in `tz_name` (what the merchant types) as naive UTC (what is stored)."""
    from zoneinfo import ZoneInfo

    return moment.replace(tzinfo=ZoneInfo(tz_name)).astimezone(timezone.utc).replace(tzinfo=None)


def utc_to_local(moment: datetime, tz_name: str) -> datetime:
    """Naive UTC as a naive wall-clock time in `tz_name`."""
    from zoneinfo import ZoneInfo

    return moment.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(tz_name)).replace(tzinfo=None)


def new_id(prefix: str) -> str:
    """`evt_0192c3d4e5f6a1b2c3d4e5f6a7b8`: a millisecond time prefix keeps ids roughly sortable
    (so b-tree inserts stay at the end of the index); 64 random bits make them unguessable."""
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(8)}"
