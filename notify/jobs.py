"""RQ jobs. Each reloads what it needs from the database and is safe to run twice.

`drain` is the delivery engine: it takes due deliveries from the ready set in batches, claims
them in the database with one conditional UPDATE (so a delivery taken twice is sent once), sends
them concurrently from a bounded thread pool with a cap per endpoint (a slow or dead receiver
cannot take every slot), and records the attempts in bulk.
"""
from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections import defaultdict, deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache, wraps

import redis
from flask import current_app
from rq.timeouts import JobTimeoutException
from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from extensions import db
from models import Attempt, Channel, Delivery, DeliveryStatus, Event
from models.base import utcnow
from notify import digests, metrics, queue, ratelimit, reasons, signing
from notify.reasons import Reason, reason
from notify.channels import (PERMANENT, SUCCESS, TRANSIENT, CannotPrepare, DeliverySettings, OutgoingRequest,
                               Outcome, transport_for)
from notify.channels.base import Transport

log = logging.getLogger(__name__)

# A worker may start a little before next_attempt_at when machines' clocks differ.
CLOCK_SKEW = timedelta(seconds=5)
# How long past its due time a delivery may wait before the sweeper looks for it (the default of
# SWEEP_GRACE_SECONDS).
SWEEP_GRACE = timedelta(seconds=30)
SWEEP_BATCH = 5000
MAX_RETRY_AFTER = 24 * 3600.0
# Attempts are written in bulk at least this often, and whenever this many are waiting.
FLUSH_SECONDS = 0.05
FLUSH_SIZE = 200
# A claim takes up to this many held deliveries even when fewer slots are free (`Drain.start_sends`).
CLAIM_AHEAD = 64
# A busy drain asks Redis for more at least this often, and sooner when an endpoint it sends to has
# room for a quarter of its cap (`Drain.refill`).
POP_INTERVAL = 0.02
# How long a drain trusts a channel it read (enabled, settings) before reading it again.
CHANNEL_FRESH = 1.0
# How often a busy drain checks whether more is due than it can hold, to wake another worker.
HELP_INTERVAL = 0.25
def in_app_context(func):
    """Run the job in its own app context, so each job gets a fresh database session that is
    removed when it ends, even in a long-lived non-forking worker."""
    @wraps(func)
    def wrapper(*args, **kwargs):
        with current_app.app_context():
            return func(*args, **kwargs)
    return wrapper


def retry_delay(attempt_number: int, schedule: list[float], retry_after: float | None = None) -> float:
    """Seconds to wait after failed attempt `attempt_number` (1-based): the schedule's step with
    ±20 % jitter, so a burst of failures does not come back as a burst; never less than the
    receiver's Retry-After."""
    base = schedule[min(attempt_number, len(schedule)) - 1] if schedule else 0.0
    delay = base * random.uniform(0.8, 1.2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


# Set when the worker is asked to stop (SIGTERM, Ctrl-C): the drain stops taking work, finishes
# what is in flight and gives the rest back.
STOP = threading.Event()



@cache
def _claim_statement():
    """`claim`'s UPDATE, built once: a drain claims a few dozen deliveries at a time, many times a
    second, and building the statement anew cost more than running it."""
    table = Delivery.__table__
    c = table.c
    claimable = or_(
        and_(c.status.in_([DeliveryStatus.PENDING, DeliveryStatus.RETRYING]),
             or_(c.next_attempt_at.is_(None), c.next_attempt_at <= bindparam("due_by"))),
        # A worker died while sending: its lease ran out, so the attempt is made again.
        and_(c.status == DeliveryStatus.SENDING, c.lease_until < bindparam("now")),
    )
    return (table.update()
            .where(c.id.in_(bindparam("ids", expanding=True)), claimable)
            .values(status=DeliveryStatus.SENDING, updated_at=bindparam("now"), claim_token=bindparam("token"),
                    lease_until=bindparam("lease_until"))
            .returning(c.id))


def claim(delivery_ids: list[str]) -> tuple[str, set[str]]:
    """Take the deliveries that are due and not held by anyone, for one attempt each. Commits.
    Returns this claim's token and the ids it holds: their results are written only while the
    deliveries still carry that token (`Drain.flush`), so a worker that outlived its lease, whose
    deliveries another worker has claimed since, cannot overwrite their newer results."""
    token = secrets.token_hex(8)
    if not delivery_ids:
        return token, set()
    now = utcnow()
    result = db.session.execute(_claim_statement(), {
        "ids": list(delivery_ids), "now": now, "due_by": now + CLOCK_SKEW, "token": token,
        "lease_until": now + timedelta(seconds=current_app.config["DELIVERY_LEASE_SECONDS"])})
    claimed = {row[0] for row in result}
    db.session.commit()
    return token, claimed


# Longest excerpt of an exception's text kept in a reason.
ERROR_EXCERPT = 300
# Where a delivery that was never sent says it was going (no request was built).
NOT_SENT = ""


def _storable(text: str | None) -> str | None:
    """Text the database takes and a page can show: PostgreSQL refuses NUL in text, and a lone
    surrogate cannot be encoded. Responses and errors are outside data too."""
    if not text:
        return text
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storable_headers(headers: dict | None) -> dict | None:
    if not headers:
        return headers
    # Nearly always storable text as it is: one check of all of it then, not one per name and value.
    if all(type(k) is str and type(v) is str for k, v in headers.items()):
        joined = "".join(headers) + "".join(headers.values())
        if "\x00" not in joined and (joined.isascii() or _encodes(joined)):
            return dict(headers)
    return {_storable(str(k)): _storable(str(v)) for k, v in headers.items()}


def _excerpt(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= ERROR_EXCERPT else text[:ERROR_EXCERPT] + "…"


def _storable_reason(data: dict | None) -> dict | None:
    """A reason's JSON with its parameters made storable (they hold outside text: replies, errmsg)."""
    if not data:
        return data
    params = {}
    for key, value in (data.get("params") or {}).items():
        if isinstance(value, dict):
            value = _storable_reason(value)
        elif isinstance(value, str):
            value = _storable(value)
        params[key] = value
    return {"code": data["code"], "params": params}


def unsent_outcome(exc: BaseException, *, loading: bool = False) -> Outcome:
    """What an error that stopped one delivery before anything was sent costs it: retried later
    when the cause is passing (Redis, the database, the network), final when it lies in the
    event's data (retrying would fail the same way). The channel is not to blame either way
    (`needs_attention` False). The reason is a code (notify.reasons), put into words when shown."""
    if isinstance(exc, redis.RedisError):
        return Outcome(kind=TRANSIENT, needs_attention=False, error=reason("rate_limit_unchecked", error=_excerpt(exc)))
    if isinstance(exc, (SQLAlchemyError, OSError)):
        return Outcome(kind=TRANSIENT, needs_attention=False, error=reason("internal_unsent", error=_excerpt(exc)))
    if isinstance(exc, CannotPrepare):  # the transport says why
        return Outcome(kind=PERMANENT, needs_attention=False, error=reason("cannot_prepare", reason=exc.reason))
    if loading:
        return Outcome(kind=PERMANENT, needs_attention=False, error=reason("data_unreadable", error=_excerpt(exc)))
    return Outcome(kind=PERMANENT, needs_attention=False, error=reason("message_unbuildable", error=_excerpt(exc)))


@dataclass
class InFlight:
    delivery_id: str
    channel_id: int | None
    channel_kind: str
    number: int
    max_attempts: int
    started_at: datetime
    request: OutgoingRequest
    claim_token: str
    sent: bool = True  # False: an error stopped it before anything went out
    # A digest (notify.digests): its id, and on the delivery whose request carries it, the other
    # deliveries it carries (each gets an attempt with the same outcome).
    digest_id: str | None = None
    members: list | None = None


@dataclass
class _Result:
    """One claimed delivery's result, as it is written: its new values, its attempt row if one was
    made, and what follows once it is written."""
    delivery_id: str
    claim_token: str
    row: dict
    attempt: dict | None = None
    item: InFlight | None = None
    outcome: Outcome | None = None
    retry: tuple | None = None  # (channel id, delivery id, due epoch seconds)
    finished: str | None = None  # the metrics label of a cancelled delivery


# One pool per worker process, reused by every drain: threads keep their keep-alive connections.
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()

# The RQ queue that only this worker process listens to, first (set by `flask worker`). A drain that
# reaches its hard limit with requests still out does not wait for them: it leaves them in
# `_carried` and enqueues the next drain on this queue, so the same process takes it at once,
# collects them and goes on taking new work meanwhile. Without a queue of its own (a drain run
# in-process, or by a plain `rq worker`) a drain at its hard limit waits for its requests.
OWN_QUEUE: str | None = None
_carried: tuple | None = None


def _sender_pool(size: int) -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="deliver")
        return _pool


@cache
def _held_statement(dialect: str):
    """`Drain._write`'s first statement: which of these deliveries this drain's claims still hold,
    locked until the commit. PostgreSQL: a row lock (SELECT … FOR UPDATE, without the new row
    version an UPDATE would write). SQLite has no row locks: a write takes the database's write
    lock, held until the commit."""
    c = Delivery.__table__.c
    ours = and_(c.id.in_(bindparam("ids", expanding=True)), c.claim_token.in_(bindparam("tokens", expanding=True)))
    if dialect == "postgresql":
        return select(c.id, c.claim_token).where(ours).with_for_update()
    return Delivery.__table__.update().where(ours).values(updated_at=bindparam("now")).returning(c.id, c.claim_token)


@cache
def _insert_attempts():
    return Attempt.__table__.insert()


@cache
def _update_statement():
    """UPDATE deliveries SET <each row's keys but "delivery"> WHERE id = :delivery, for an executemany."""
    table = Delivery.__table__
    return table.update().where(table.c.id == bindparam("delivery"))


# What a drain reads of a delivery and its event: their columns as plain records, not ORM objects.
# Loading a batch as ORM objects (identity map, instance state, attribute instrumentation) cost
# about a tenth of a worker's CPU per delivery; nothing in a drain writes through them.
_DELIVERY_COLUMNS = ("id", "event_id", "channel_id", "hook", "channel_kind", "target", "attempt_count",
                     "max_attempts", "fold", "created_at")
_EVENT_COLUMNS = ("id", "hook", "data", "is_test", "test_mentions", "created_at")


class LoadedEvent:
    """An event's columns, with the model's `envelope()`."""
    __slots__ = _EVENT_COLUMNS
    envelope = Event.envelope

    def __init__(self, values):
        for name, value in zip(_EVENT_COLUMNS, values):
            setattr(self, name, value)


class Loaded:
    """A claimed delivery's columns, its event (None when it has gone) and its channel (an ORM
    object, expunged; None when deleted), as `Drain._load` reads them."""
    __slots__ = _DELIVERY_COLUMNS + ("event", "channel")

    @classmethod
    def of(cls, row) -> "Loaded":
        delivery = cls()
        n = len(_DELIVERY_COLUMNS)
        for name, value in zip(_DELIVERY_COLUMNS, row[:n]):
            setattr(delivery, name, value)
        delivery.event = LoadedEvent(row[n:]) if row[n] is not None else None
        delivery.channel = None
        return delivery


@cache
def _load_statement():
    """`Drain._load`'s SELECT: the deliveries by id with their events' columns (an outer join: a
    delivery whose event row is missing is loaded, and fails alone when it is prepared)."""
    deliveries, events = Delivery.__table__, Event.__table__
    return (select(*[deliveries.c[n] for n in _DELIVERY_COLUMNS], *[events.c[n] for n in _EVENT_COLUMNS])
            .select_from(deliveries.outerjoin(events, deliveries.c.event_id == events.c.id))
            .where(deliveries.c.id.in_(bindparam("ids", expanding=True))))


class Drain:
    """One drain job's state: what is held in memory, what is in flight, what awaits writing."""

    def __init__(self, config):
        self.config = config
        self.settings = DeliverySettings.from_config(config)
        self.max_in_flight = config["DELIVERY_CONCURRENCY"]
        self.per_endpoint = min(config["DELIVERY_PER_ENDPOINT_CONCURRENCY"], self.max_in_flight)
        self.pool = _sender_pool(self.max_in_flight)
        self.app = current_app._get_current_object()
        self.dialect = db.session.get_bind().dialect.name
        # Channels as loaded (expunged ORM objects), by id, with the monotonic time they were read:
        # read again after CHANNEL_FRESH seconds (`_channels`).
        self.channels: dict[int, tuple[Channel, float]] = {}
        self.held: dict[int, deque[str]] = defaultdict(deque)  # channel id → popped, not yet claimed
        self.ready: deque[tuple[Loaded, str]] = deque()  # claimed and loaded (with the claim's token), not started
        self.in_flight: dict[Future, InFlight] = {}
        self.per_channel: dict[int, int] = defaultdict(int)
        self.done: list[tuple[InFlight, Outcome]] = []
        self.cancelled: list[tuple[str, str, str, Reason]] = []  # delivery id, claim token, channel kind, reason
        # Over a service's rate limit: (delivery id, claim token, channel id, attempts so far, seconds to wait,
        # `Delivery.fold`: None for its own slot, else why it is parked for a digest).
        self.deferred: list[tuple[str, str, int, int, float, str | None]] = []
        self.attention: dict[int, bool] = {}  # channel id → needs_attention as loaded
        # Deliveries of a batch (by its claim token) that a digest took along (notify.digests).
        self.digested: dict[str, set[str]] = {}
        self.failing: dict[int, bool] = {}  # channel id → whether a run of failures is under way
        self.last_flush = time.monotonic()
        self.next_pop = 0.0  # `refill`
        self.refill_at = max(1, self.per_endpoint // 4)
        self.sent = 0
        self._adopt_carried()

    # -- requests outliving a drain ---------------------------------------------------------------
    def carry_over(self) -> bool:
        """Leave the requests in flight to the next drain in this process, enqueued on its own
        queue; False (nothing changed) when there is no such queue or Redis refuses the job."""
        global _carried
        if OWN_QUEUE is None:
            return False
        try:
            queue.enqueue_drain(OWN_QUEUE)
        except redis.RedisError as exc:
            log.warning("could not hand on %d requests in flight (%s); waiting for them", len(self.in_flight), exc)
            return False
        _carried = (self.in_flight, self.per_channel, self.attention, self.failing)
        self.in_flight, self.per_channel = {}, defaultdict(int)
        return True

    def _adopt_carried(self) -> None:
        global _carried
        if _carried is not None:
            (self.in_flight, self.per_channel, self.attention, self.failing), _carried = _carried, None

    # -- taking work --------------------------------------------------------------------------
    def held_count(self) -> int:
        return sum(len(d) for d in self.held.values()) + len(self.ready)

    def refill(self) -> int:
        """Take due deliveries from Redis: enough for one more round of sends, per endpoint and in
        all. An endpoint at its cap gets none, so its backlog waits in Redis, not here."""
        limit = self.max_in_flight * 2 - len(self.in_flight) - self.held_count()
        ready = self._ready_per_channel()
        room = {channel_id: self.per_endpoint * 2 - self.per_channel[channel_id] - len(self.held[channel_id])
                - ready[channel_id] for channel_id in set(self.per_channel) | set(self.held) | set(ready)}
        now = time.monotonic()
        if limit <= 0 or (now < self.next_pop and not any(n >= self.refill_at for n in room.values())):
            # Every endpoint this drain sends to still holds most of a round: asking Redis after each
            # finished send would cost a pop per delivery (each scanning the backlog) for one member.
            # An endpoint this drain has not seen yet waits at most POP_INTERVAL.
            return 0
        self.next_pop = now + POP_INTERVAL
        popped = queue.pop_due(limit, self.per_endpoint * 2, room)
        for channel_id, delivery_id in popped:
            self.held[channel_id].append(delivery_id)
        return len(popped)

    def _ready_per_channel(self) -> dict[int, int]:
        counts: dict[int, int] = defaultdict(int)
        for delivery, _token in self.ready:
            counts[delivery.channel_id] += 1
        return counts

    def start_sends(self) -> None:
        """Claim and send held deliveries, within the total and per-endpoint caps. Whatever goes
        wrong with one delivery (its event's data cannot be read or turned into a message, the
        rate limiter fails) is recorded as that delivery's attempt; the others are sent.

        A claim takes more than the free slots when more is held (up to CLAIM_AHEAD, and at most one
        cap ahead per endpoint): claiming and loading cost about as much per batch as per delivery,
        and slots free a few at a time. What does not fit yet waits in `ready`, claimed and loaded,
        and is started first as slots free; an endpoint's next claim waits until its `ready` is
        empty. A drain that ends gives what is ready back (`give_back`)."""
        transports: dict[int, Transport] = {}
        if self.ready:
            self._start_ready(transports)
        free = self.max_in_flight - len(self.in_flight)
        if free <= 0 or not any(self.held.values()):
            return
        picked: list[str] = []
        ready = self._ready_per_channel()
        wanted = max(free, min(CLAIM_AHEAD, self.max_in_flight)) - len(self.ready)
        for channel_id, held in self.held.items():
            if ready[channel_id] or self.per_channel[channel_id] >= self.per_endpoint:
                # Its claimed deliveries take its next free slots (claim more later, in one go), or it
                # is at its cap (a slow endpoint's backlog stays unclaimed, where the sweeper finds it).
                continue
            room = min(self.per_endpoint * 2 - self.per_channel[channel_id], wanted - len(picked))
            while held and room > 0:
                picked.append(held.popleft())
                room -= 1
            if len(picked) >= wanted:
                break
        if not picked:
            return
        token, claimed = claim(picked)
        if not claimed:
            return
        deliveries = self._load(claimed, token)
        self.ready.extend((delivery, token) for delivery in deliveries)
        self._start_ready(transports)

    def _start_ready(self, transports: dict[int, Transport]) -> None:
        """Start the claimed deliveries that fit in the caps now, in the order they were claimed."""
        waiting: deque[tuple[Loaded, str]] = deque()
        while self.ready:
            delivery, token = self.ready.popleft()
            if len(self.in_flight) >= self.max_in_flight or (
                    delivery.channel_id is not None and self.per_channel[delivery.channel_id] >= self.per_endpoint):
                waiting.append((delivery, token))
                continue
            try:
                self._start(delivery, transports, token)
            except JobTimeoutException:
                raise
            except Exception as exc:
                log.exception("delivery %s could not be prepared; it alone pays for it", delivery.id)
                self._unsent(delivery.id, delivery.channel_id, delivery.channel_kind, delivery.target,
                             delivery.attempt_count + 1, delivery.max_attempts, token, unsent_outcome(exc))
        self.ready = waiting

    def _load(self, claimed: set[str], token: str) -> list[Loaded]:
        """The claimed deliveries with their events (one query, rows rather than ORM objects) and
        their channels (one query). When that fails (an event whose stored data cannot be decoded:
        nested too deeply, a number too long), each is loaded alone, and those that still fail are
        recorded as failed attempts."""
        try:
            loaded = [Loaded.of(row) for row in db.session.execute(_load_statement(), {"ids": list(claimed)})]
        except JobTimeoutException:
            raise
        except Exception:
            log.exception("could not load %d claimed deliveries at once; loading them one by one", len(claimed))
            db.session.rollback()
            loaded = self._load_each(claimed, token)
        channels = self._channels({delivery.channel_id for delivery in loaded if delivery.channel_id is not None})
        for delivery in loaded:
            delivery.channel = channels.get(delivery.channel_id)
        return loaded

    def _channels(self, ids: set[int]) -> dict[int, Channel]:
        """These channels (a deleted one is missing), read from the database unless this drain read
        them less than CHANNEL_FRESH seconds ago: a drain claims a few deliveries at a time, many
        times a second, and reading their channel each time cost more than the rest of the load.
        A channel disabled or changed meanwhile takes effect within that time, as if its last
        deliveries had been claimed a moment earlier."""
        now = time.monotonic()
        stale = {i for i in ids if i not in self.channels or now - self.channels[i][1] >= CHANNEL_FRESH}
        if stale:
            found = {channel.id: channel for channel in db.session.scalars(select(Channel).where(Channel.id.in_(stale)))}
            for channel_id in stale:
                channel = found.get(channel_id)
                if channel is None:
                    self.channels.pop(channel_id, None)
                    continue
                # Out of the session: a commit cannot expire it, and the session stays small.
                db.session.expunge(channel)
                self.channels[channel_id] = (channel, now)
                # As stored, this drain's own writes included (`_update_channels` keeps them since).
                self.attention[channel_id] = channel.needs_attention
                self.failing[channel_id] = channel.failing_since is not None
        return {i: self.channels[i][0] for i in ids if i in self.channels}

    def _load_each(self, claimed: set[str], token: str) -> list[Loaded]:
        loaded, broken = [], {}
        for delivery_id in sorted(claimed):
            try:
                loaded += [Loaded.of(row) for row in db.session.execute(_load_statement(), {"ids": [delivery_id]})]
            except JobTimeoutException:
                raise
            except Exception as exc:
                log.exception("delivery %s could not be loaded", delivery_id)
                db.session.rollback()
                broken[delivery_id] = exc
        if broken:
            # Its own columns, without the event: enough to record the attempt.
            rows = db.session.execute(select(Delivery.id, Delivery.channel_id, Delivery.channel_kind, Delivery.target,
                                             Delivery.attempt_count, Delivery.max_attempts)
                                      .where(Delivery.id.in_(broken))).all()
            for row in rows:
                self._unsent(row.id, row.channel_id, row.channel_kind, row.target, row.attempt_count + 1,
                             row.max_attempts, token, unsent_outcome(broken[row.id], loading=True))
        return loaded

    def _start(self, delivery: Loaded, transports: dict[int, Transport], token: str) -> None:
        """Build one delivery's request and hand it to a sender thread (or cancel or defer it)."""
        if delivery.id in self.digested.get(token, ()):
            return  # a digest of its batch carries it
        channel = delivery.channel
        if channel is None or (not channel.enabled and not delivery.event.is_test):
            self.cancelled.append((delivery.id, token, delivery.channel_kind,
                                   reason("channel_deleted" if channel is None else "channel_disabled")))
            return
        transport = transports.get(channel.id)
        if transport is None:
            transport = transports[channel.id] = transport_for(channel.kind)(channel, self.settings)
        if transport.paced:
            verdict = digests.pace(transport, delivery)
            if verdict.kind in (ratelimit.FOLD, ratelimit.LEADER):
                # Not an attempt: it waits for a digest, parked in the database (notify.digests).
                self.deferred.append(digests.parked(delivery, token, verdict))
                return
            if verdict.wait > 0:
                # Not an attempt: it waits for its slot, which is kept for it.
                self.deferred.append((delivery.id, token, channel.id, delivery.attempt_count, verdict.wait, None))
                return
            if verdict.kind == ratelimit.DIGEST and digests.start(self, delivery, transport, token):
                return
        item = InFlight(delivery.id, channel.id, channel.kind, delivery.attempt_count + 1,
                        delivery.max_attempts, utcnow(), transport.prepare(delivery.event, delivery, signing.now_ms()),
                        token)
        self.per_channel[channel.id] += 1
        self.in_flight[self.pool.submit(self._send, transport, item.request)] = item

    def _unsent(self, delivery_id: str, channel_id: int | None, channel_kind: str, target: str, number: int,
                max_attempts: int, token: str, outcome: Outcome) -> None:
        """Record an attempt at which nothing was sent, with the reason."""
        request = OutgoingRequest(NOT_SENT, target or "", {}, b"")
        self.done.append((InFlight(delivery_id, channel_id, channel_kind, number, max_attempts, utcnow(), request,
                                   token, sent=False), outcome))

    def _send(self, transport, request: OutgoingRequest) -> Outcome:
        """In a sender thread, with an app context when the kind needs one (`send_needs_app`). No
        language: a transport's failure is a reason (notify.reasons), put into words by whoever shows it."""
        if not transport.send_needs_app:
            return transport.send(request)
        with self.app.app_context():
            return transport.send(request)

    # -- results ------------------------------------------------------------------------------
    def collect(self, timeout: float) -> None:
        if not self.in_flight:
            return
        finished, _ = wait(list(self.in_flight), timeout=timeout, return_when=FIRST_COMPLETED)
        for future in finished:
            item = self.in_flight.pop(future)
            self.per_channel[item.channel_id] -= 1
            try:
                outcome = future.result()
            except Exception as exc:  # a bug in a transport must cost one attempt, not the batch
                log.exception("transport %s failed on %s", item.channel_kind, item.delivery_id)
                outcome = Outcome(kind=TRANSIENT, error=reason("internal_sending", error=_excerpt(exc)))
            self.done.append((item, outcome))

    def flush(self, force: bool = False) -> None:
        """Write the finished attempts and the deliveries' new states in bulk, then schedule retries.

        Only results whose claim is still held are written (see `_write`). Should the batch fail
        to be written (a value the database refuses), each result is written alone, and one that
        still fails is written without the request's and the response's details: a bad row costs
        its own details, never the others' results."""
        due = force or len(self.done) >= FLUSH_SIZE or time.monotonic() - self.last_flush >= FLUSH_SECONDS
        if not due or not (self.done or self.cancelled or self.deferred):
            return
        now = utcnow()
        results = self._results(now)
        self.sent += len(self.done)
        self.done, self.cancelled, self.deferred = [], [], []
        self.last_flush = time.monotonic()
        try:
            written = self._write(results, now)
            disabled = self._update_channels([r for r in results if (r.delivery_id, r.claim_token) in written], now)
            db.session.commit()
        except JobTimeoutException:
            raise
        except Exception:
            log.exception("could not record %d results at once; recording them one by one", len(results))
            db.session.rollback()
            written, disabled = self._write_each(results, now)
        retries, counted = [], []
        for result in results:
            if (result.delivery_id, result.claim_token) not in written:
                continue
            if result.retry:
                retries.append(result.retry)
            if result.finished:
                metrics.FINISHED.labels(result.finished, DeliveryStatus.CANCELLED).inc()
            elif result.item is not None:
                status = result.row.get("status")
                counted.append((result.item.channel_kind, result.outcome.kind, result.outcome.duration_ms,
                                None if status == DeliveryStatus.RETRYING else status))
        metrics.record_attempts(counted)
        if retries:
            try:
                queue.schedule(retries)
            except redis.RedisError as exc:
                log.warning("could not schedule %d retries (%s); the sweeper will", len(retries), exc)
        for channel_id in disabled:
            try:
                queue.get_queue().enqueue("notify.jobs.tell_disabled", channel_id, result_ttl=0,
                                          failure_ttl=queue.FAILURE_TTL)
            except redis.RedisError as exc:  # the page says it anyway
                log.warning("could not queue the email about disabled channel %s (%s)", channel_id, exc)

    def _results(self, now: datetime) -> list[_Result]:
        """What to write for every finished, cancelled and deferred delivery."""
        results = []
        for item, outcome in digests.expand(self.done):
            try:
                results.append(self._result(item, outcome, now))
            except JobTimeoutException:
                raise
            except Exception:  # a value that cannot even be turned into a row: keep the verdict alone
                log.exception("the result of delivery %s could not be prepared for writing", item.delivery_id)
                bare = Outcome(kind=outcome.kind if outcome.kind in (SUCCESS, PERMANENT) else TRANSIENT,
                               error=reason("details_not_stored"),
                               needs_attention=False)
                item = InFlight(item.delivery_id, item.channel_id, item.channel_kind, item.number, item.max_attempts,
                                item.started_at, OutgoingRequest(NOT_SENT, "", {}, b""), item.claim_token, sent=False)
                results.append(self._result(item, bare, now))
        for delivery_id, token, channel_kind, why in self.cancelled:
            results.append(_Result(delivery_id, token, dict(id=delivery_id, status=DeliveryStatus.CANCELLED,
                                                            last_error=why.english(), last_error_code=why.to_json(),
                                                            lease_until=None, claim_token=None, updated_at=now),
                                   finished=channel_kind))
        for delivery_id, token, channel_id, attempt_count, wait_for, fold in self.deferred:
            results.append(_Result(delivery_id, token, dict(
                id=delivery_id, lease_until=None, claim_token=None, updated_at=now, fold=fold,
                next_attempt_at=now + timedelta(seconds=wait_for),
                status=DeliveryStatus.RETRYING if attempt_count else DeliveryStatus.PENDING),
                retry=(channel_id, delivery_id, time.time() + wait_for)))
        return results

    def _result(self, item: InFlight, outcome: Outcome, now: datetime) -> _Result:
        """One attempt's row and its delivery's new values, with outside text made storable."""
        request = item.request
        # The English copy for logs and grep; the code and params are what pages put into words.
        error, error_code = _storable(reasons.english(outcome.error)), _storable_reason(reasons.as_json(outcome.error))
        attempt = dict(
            delivery_id=item.delivery_id, channel_id=item.channel_id, number=item.number,
            started_at=item.started_at, duration_ms=outcome.duration_ms, request_method=request.method,
            request_url=_storable(request.shown_url), request_headers=_storable_headers(request.masked_headers),
            request_body=_storable(request.body_text()), response_status=outcome.status,
            response_headers=_storable_headers(outcome.response_headers),
            response_body=_storable(outcome.response_body), outcome=outcome.kind, error=error, error_code=error_code,
            digest_id=item.digest_id)
        # An attempt was made: it no longer waits for a digest (a retry is paced, and may fold, again).
        row = dict(id=item.delivery_id, attempt_count=item.number, last_status_code=outcome.status,
                   last_error=error, last_error_code=error_code, lease_until=None, claim_token=None, updated_at=now,
                   next_attempt_at=None, fold=None)
        retry = None
        if outcome.kind == SUCCESS:
            row.update(status=DeliveryStatus.DELIVERED, delivered_at=now)
        elif outcome.kind == PERMANENT:
            row.update(status=DeliveryStatus.FAILED)
        elif item.number >= item.max_attempts:
            row.update(status=DeliveryStatus.DEAD)
        else:
            wait = retry_delay(item.number, self.config["DELIVERY_RETRY_SCHEDULE"], outcome.retry_after)
            retry_at = now + timedelta(seconds=wait)
            row.update(status=DeliveryStatus.RETRYING, next_attempt_at=retry_at)
            retry = (item.channel_id, item.delivery_id, retry_at.replace(tzinfo=timezone.utc).timestamp())
        return _Result(item.delivery_id, item.claim_token, row, attempt, item, outcome, retry)

    def _write(self, results: list[_Result], now: datetime) -> set[tuple[str, str]]:
        """Write the results whose claim is still held, in the current transaction; returns their
        (delivery id, claim token) pairs. The first statement finds the claims this drain still holds and locks those
        rows until the commit (a row lock on PostgreSQL, the write lock on SQLite), so no other
        worker can claim one between the check and the writes; a result whose claim was lost (its
        lease ran out and another worker claimed it) is dropped, attempt row and all."""
        if not results:
            return set()
        ids, tokens = {r.delivery_id for r in results}, {r.claim_token for r in results}
        found = db.session.execute(_held_statement(self.dialect), {"ids": list(ids), "tokens": list(tokens), "now": now})
        pairs = {(row[0], row[1]) for row in found}
        # A delivery this drain claimed twice (its first lease ran out) is held by the later claim only.
        results = [r for r in results if (r.delivery_id, r.claim_token) in pairs]
        dropped = ids - {r.delivery_id for r in results}
        if dropped:
            log.warning("dropped the results of %d deliveries claimed again since (their lease ran out): %s",
                        len(dropped), ", ".join(sorted(dropped)[:10]))
        # Core statements, not the ORM's bulk methods: the same SQL for a fraction of the CPU time.
        # Rows with different keys cannot share one executemany: group them by their key set.
        attempts: dict[tuple, list[dict]] = defaultdict(list)
        for result in results:
            if result.attempt is not None:
                attempts[tuple(result.attempt)].append(result.attempt)
        for rows in attempts.values():
            db.session.execute(_insert_attempts(), rows)
        by_keys: dict[tuple, list[dict]] = defaultdict(list)
        for result in results:
            row = dict(result.row)
            row["delivery"] = row.pop("id")
            by_keys[tuple(sorted(row))].append(row)
        for rows in by_keys.values():
            db.session.execute(_update_statement(), rows)
        return {(r.delivery_id, r.claim_token) for r in results}

    def _write_each(self, results: list[_Result], now: datetime) -> tuple[set[tuple[str, str]], list[int]]:
        """`_write`, one result per transaction, after the batch failed; then the channels."""
        written: set[tuple[str, str]] = set()
        for result in results:
            for version in (result, self._without_details(result)):
                try:
                    written |= self._write([version], now)
                    db.session.commit()
                    break
                except JobTimeoutException:
                    raise
                except Exception:
                    log.exception("could not record the result of delivery %s", result.delivery_id)
                    db.session.rollback()
            # Both failed: the delivery stays claimed until its lease runs out, then is sent again.
        try:
            disabled = self._update_channels([r for r in results if (r.delivery_id, r.claim_token) in written], now)
            db.session.commit()
        except JobTimeoutException:
            raise
        except Exception:
            log.exception("could not update the channels' state after recording results one by one")
            db.session.rollback()
            disabled = []
        return written, disabled

    def _without_details(self, result: _Result) -> _Result:
        """The result with only what cannot be refused: the attempt's outcome and the delivery's
        new status, with a note that the details (request, response, error) could not be stored."""
        if result.attempt is None:
            return _Result(result.delivery_id, result.claim_token, dict(result.row, last_error=None,
                                                                        last_error_code=None),
                           item=result.item, outcome=result.outcome, retry=result.retry, finished=result.finished)
        note = reason("details_not_stored")
        attempt = dict(result.attempt, request_headers={}, request_body="", response_headers=None,
                       response_body=None, request_url="", error=note.english(), error_code=note.to_json())
        return _Result(result.delivery_id, result.claim_token,
                       dict(result.row, last_error=note.english(), last_error_code=note.to_json()), attempt,
                       result.item, result.outcome, result.retry)

    def _update_channels(self, results: list[_Result], now: datetime) -> list[int]:
        """The channels' state after these results: attention set or cleared, gone endpoints
        disabled, runs of failures tracked. Returns the channels disabled for failing too long."""
        attention, gone = {}, set()
        for result in results:
            item, outcome = result.item, result.outcome
            if item is None or not item.sent:
                continue  # nothing was sent: this says nothing about the channel
            if outcome.kind == SUCCESS and self.attention.get(item.channel_id):
                attention[item.channel_id] = (False, None, None)
            elif outcome.kind == PERMANENT:
                if outcome.gone:
                    gone.add(item.channel_id)
                if outcome.needs_attention:
                    attention[item.channel_id] = (True, result.row["last_error"], result.row["last_error_code"])
        for channel_id, (flag, text, code) in attention.items():
            db.session.execute(update(Channel).where(Channel.id == channel_id)
                               .values(needs_attention=flag, attention_reason=text, attention_code=code))
            self.attention[channel_id] = flag
        if gone:
            db.session.execute(update(Channel).where(Channel.id.in_(gone)).values(enabled=False))
        return self._track_failing_channels(
            [(r.item, r.outcome) for r in results if r.item is not None and r.item.sent], now)

    def _track_failing_channels(self, done: list[tuple[InFlight, Outcome]], now: datetime) -> list[int]:
        """Note when each channel's run of failures began, end it at a success, and disable the
        channels failing for CHANNEL_DISABLE_AFTER_HOURS. Returns the channels it disabled.
        A refusal of one delivery on purpose (needs_attention False) is an answer: not a failure."""
        last: dict[int, bool] = {}
        for item, outcome in done:
            last[item.channel_id] = outcome.ok or not outcome.needs_attention
        recovered = [c for c, ok in last.items() if ok and self.failing.get(c)]
        failing = [c for c, ok in last.items() if not ok]
        if recovered:
            db.session.execute(update(Channel).where(Channel.id.in_(recovered)).values(failing_since=None))
        started = [c for c in failing if not self.failing.get(c)]
        if started:
            db.session.execute(update(Channel).where(Channel.id.in_(started), Channel.failing_since.is_(None))
                               .values(failing_since=now))
        for channel_id, ok in last.items():
            self.failing[channel_id] = not ok
        if not failing:
            return []
        limit = timedelta(hours=self.config["CHANNEL_DISABLE_AFTER_HOURS"])
        why = reason("auto_disabled", hours=f"{self.config['CHANNEL_DISABLE_AFTER_HOURS']:g}")
        return list(db.session.scalars(
            update(Channel).where(Channel.id.in_(failing), Channel.enabled.is_(True), Channel.failing_since <= now - limit)
            .values(enabled=False, needs_attention=True, attention_reason=why.english(), attention_code=why.to_json())
            .returning(Channel.id)))

    def give_back(self) -> None:
        """Return held deliveries to Redis (the job's budget ran out): the unclaimed ones as they
        are, the claimed ones not started yet (`ready`) with their claim released, due now."""
        items = [(channel_id, delivery_id, time.time()) for channel_id, held in self.held.items()
                 for delivery_id in held]
        self.held.clear()
        if self.ready:
            self.deferred += [(delivery.id, token, delivery.channel_id, delivery.attempt_count, 0.0,
                               delivery.fold)
                              for delivery, token in self.ready]
            self.ready.clear()
            self.flush(force=True)
        queue.schedule(items)


@in_app_context
def drain() -> str:
    """Deliver what is due until nothing is, or until the budget (DRAIN_BUDGET seconds) is spent
    and nothing is in flight; then make sure a drain will run when the next delivery is due."""
    config = current_app.config
    queue.drain_started()
    work = Drain(config)
    started = time.monotonic()
    # The budget ends a drain at the first moment nothing is in flight, so that other jobs get
    # their turn; a drain never stops taking work while requests are out (a hanging endpoint would
    # otherwise stall everyone for its read timeout). At the hard limit, which keeps the job well
    # inside RQ's timeout, it hands its requests in flight on to the next drain in this process
    # (`Drain.carry_over`); when the worker is asked to stop, it waits for them.
    soft = started + config["DRAIN_BUDGET"]
    hard = started + max(config["DRAIN_BUDGET"], queue.JOB_TIMEOUT - queue.DRAIN_MARGIN
                         - config["DELIVERY_CONNECT_TIMEOUT"] - config["DELIVERY_READ_TIMEOUT"])
    carry_tried = False
    ask_for_help_at = started
    while True:
        now = time.monotonic()
        taking = not (STOP.is_set() or now >= hard or (now >= soft and not work.in_flight))
        if taking:
            popped = work.refill()
            work.start_sends()
            # More is due than this drain can hold: let another worker help. Asked a few times a
            # second, not at every turn: each question to Redis waits for the GIL to come back.
            if popped and now >= ask_for_help_at:
                ask_for_help_at = now + HELP_INTERVAL
                if queue.due_count():
                    queue.wake()
        if now >= hard and work.in_flight and not carry_tried and not STOP.is_set():
            carry_tried = True
            work.flush(force=True)
            if work.carry_over():
                break
        if not work.in_flight:
            work.flush(force=True)
            # Past the budget, what is still held goes back to Redis below, for the next drain.
            if not taking:
                break
            if work.held_count():
                continue
            upcoming = queue.next_due()
            wait_for = None if upcoming is None else upcoming - time.time()
            if wait_for is None or wait_for > 1.0:
                break
            time.sleep(max(0.0, wait_for))  # a retry due within a second: wait for it here
            continue
        work.collect(timeout=0 if len(work.done) >= FLUSH_SIZE else 0.005)
        work.flush()
    if work.held_count():
        work.give_back()
    upcoming = queue.next_due()
    if upcoming is not None:
        queue.wake(at=upcoming)
    return f"sent {work.sent}"


def collect_carried() -> None:
    """Wait for and record the requests a drain handed on, if any: for a worker that stops before
    the next drain ran (`flask worker` calls it on its way out)."""
    if _carried is not None:
        drain()


@in_app_context
def tell_disabled(channel_id: int) -> str:
    """Email the merchant that a channel was disabled, through every enabled email channel but
    that one (the notifications page says it too)."""
    from notify.channels import last_attempts, tell_merchant

    channel = db.session.get(Channel, channel_id)
    if channel is None:
        return "channel deleted"
    last = last_attempts([channel_id]).get(channel_id)
    # Put into words when the email is written, in the message language.
    told = tell_merchant("channel_disabled.txt", exclude=channel_id, channel=channel,
                         last_error=reasons.find(last.error_code, last.error) if last else None)
    if not told:
        return "no email channel to tell"
    return f"told {told} recipients"


@in_app_context
def sweep() -> int:
    """Put back in the ready set every active delivery that is overdue (Redis lost its data, a
    worker was killed, an enqueue failed while Redis was down). Returns how many were overdue.
    Running it twice at once is harmless: a delivery is claimed before it is sent."""
    now = utcnow()
    rows = db.session.execute(
        db.select(Delivery.id, Delivery.channel_id)
        .where(or_(
            and_(Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.RETRYING]),
                 Delivery.next_attempt_at <= now - timedelta(seconds=current_app.config["SWEEP_GRACE_SECONDS"])),
            and_(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until < now),
        ))
        .order_by(Delivery.next_attempt_at)
        .limit(SWEEP_BATCH)
    ).all()
    db.session.rollback()
    added = queue.schedule([(channel_id, delivery_id, time.time()) for delivery_id, channel_id in rows],
                           only_new=True)
    if added:
        log.info("sweeper put back %d overdue deliveries", added)
    if queue.due_count():
        queue.wake()  # due work and perhaps no drain (a wake-up was lost with Redis): make sure one runs
    return added
