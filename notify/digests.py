"""Digests: order events waiting for a rate-limited channel, folded into one message.

A flash sale sends a robot (20 messages a minute) far more events than it can take one by one.
`pace()` asks the limiter (notify.ratelimit) what a delivery gets: a slot of its own, a place in
the pending digest (FOLD), the lead of the next digest (LEADER), or, for a leader whose slot has
come, the digest itself (DIGEST). A delivery that folds or leads is *parked* in the database by
the drain: `fold` says why ("rate"; "lead" for the leader; "quiet" for quiet hours, set by
notify.rules), `next_attempt_at` when it comes back by itself (a folded one: the digest's slot
plus BACKSTOP; the leader: its slot). Nothing about a parked delivery lives only in Redis.

When the leader comes back at its slot, `start()` claims the other parked deliveries of its
channel whose digest is due (oldest first, up to CAP, with a claim token like `jobs.claim`),
loads their events, fits one message to the service's size limit (`Transport.fit_digest`: the
leader, then the oldest, as many lines as fit) and sends it once (`Transport.prepare_digest`).
A digest carries what it lists, and only that, with one exception: a delivery that has waited
longer than DIGEST_LAG_BOUND seconds (60) is carried even when it does not fit, counted in "and
N more" behind the link, so under a sustained overload no order waits much longer than the bound
plus a slot. The others gathered are given back (`release()`), parked for the next digest, which
the oldest of them leads at the robot's next free slot (the limiter's LEAD mode), new events or
not; the message says how many follow. Each delivery it carried gets its own attempt with the
same outcome and `digest_id` (`expand()`), and its status by the usual rules: delivered, retried
on its own schedule (and foldable again), or failed. The leader's attempt stores the request as
sent; the others store its URL and headers and point to it through the digest id, so a digest
of 500 is stored once, not 500 times.

A delivery whose event cannot be loaded is left out and gets its own failed attempt (the drain's
poison isolation); a digest of one is sent as the ordinary message.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from datetime import timedelta

import redis
from flask import current_app
from sqlalchemy import and_, func, or_, select, update

from extensions import db
from models import Attempt, Delivery, DeliveryStatus
from models.base import new_id, utcnow
from notify import hooks, jobs, messages, metrics, queue, ratelimit, signing
from notify.ratelimit import BACKSTOP, Pacing
from notify.channels.base import OutgoingRequest

log = logging.getLogger(__name__)

# `Delivery.fold`: folded into the robot's pending digest; leading it (or, due now, to lead the
# next one: the oldest a digest gave back); parked for quiet hours (notify.rules); sent alone on
# the merchant's request (a redelivery), never folded.
RATE, LEAD, QUIET, ALONE = "rate", "lead", "quiet", "alone"
# Most deliveries one digest carries: bounds a drain's memory (each event is loaded). Those left
# over stay parked and go with the next digest.
CAP = 1000
ORDER_HOOKS = tuple(hook.name for hook in hooks.HOOKS if hook.group == hooks.ORDER)


def foldable(delivery: Delivery, transport) -> bool:
    """Whether this delivery may be folded into a digest: an order event to a kind that folds;
    not an alarm or a report (they go alone, and first), not a Test, not a redelivery the
    merchant asked for (it sends that one event)."""
    event = delivery.event
    return (transport.folds and delivery.fold != ALONE and not event.is_test
            and event.hook in hooks.HOOKS_BY_NAME and hooks.get(event.hook).group == hooks.ORDER)


def pace(transport, delivery: Delivery) -> ratelimit.Verdict:
    """The limiter's verdict for this delivery's next attempt (see notify.ratelimit)."""
    pacing = Pacing.of(transport)
    if not foldable(delivery, transport):
        mode = ratelimit.FIXED
    else:
        # At the end of its quiet hours a parked delivery leads a digest, pressure or not; so does
        # the oldest one a digest could not carry (`release`), and a leader whose slot Redis lost.
        mode = ratelimit.LEAD if delivery.fold in (QUIET, LEAD) else ratelimit.FOLDABLE
    return ratelimit.reserve(ratelimit.robot_key(transport.rate_key()),
                             f"{delivery.id}:{delivery.attempt_count + 1}", pacing, mode)


def parked(delivery: Delivery, token: str, verdict: ratelimit.Verdict) -> tuple:
    """The drain's deferred entry for a delivery that folds (back by itself at the digest's slot
    plus BACKSTOP) or leads (back at its slot)."""
    if verdict.kind == ratelimit.FOLD:
        return (delivery.id, token, delivery.channel_id, delivery.attempt_count,
                max(0.0, verdict.wait) + BACKSTOP, RATE)
    return delivery.id, token, delivery.channel_id, delivery.attempt_count, verdict.wait, LEAD


def _due(now):
    """Parked deliveries whose digest's time has come: folded for a slot that has passed (their
    `next_attempt_at` is that slot plus BACKSTOP), or parked for quiet hours that are over."""
    skew = jobs.CLOCK_SKEW
    return or_(and_(Delivery.fold == RATE, Delivery.next_attempt_at <= now + skew + timedelta(seconds=BACKSTOP)),
               and_(Delivery.fold == QUIET, Delivery.next_attempt_at <= now + skew))


def _gatherable(now, batch_token: str):
    """Parked and due, and not held by anyone; or held by the drain's own batch, not yet started
    (many parked deliveries come due at once when quiet hours end: the first leads, and takes the
    others of its batch along rather than leaving them to lead digests of their own)."""
    # Order events only: an alarm parked for quiet hours goes alone, as it always does. `fold IS
    # NOT NULL` is implied by what follows; said at the top it lets SQLite use the partial index
    # ix_deliveries_parked (PostgreSQL proves it either way).
    return and_(Delivery.fold.isnot(None), Delivery.hook.in_(ORDER_HOOKS), or_(
        and_(Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.RETRYING]), _due(now)),
        and_(Delivery.status == DeliveryStatus.SENDING, Delivery.claim_token == batch_token,
             Delivery.fold.in_([RATE, QUIET]))))


def gather(channel_id: int, leader_id: str, batch_token: str) -> tuple[str, set[str]]:
    """Claim the deliveries of this channel waiting for the digest due now, oldest first, at most
    CAP: one conditional UPDATE, as `jobs.claim` (a delivery another worker took meanwhile is not
    taken). Commits. Returns the claim's token and the ids it holds, which are also taken out of
    the ready set (they would come back at their backstop for nothing)."""
    token = secrets.token_hex(8)
    now = utcnow()
    waiting = (select(Delivery.id)
               .where(Delivery.channel_id == channel_id, Delivery.id != leader_id, _gatherable(now, batch_token))
               .order_by(Delivery.created_at, Delivery.id).limit(CAP))
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(waiting.scalar_subquery()), _gatherable(now, batch_token))
        .values(status=DeliveryStatus.SENDING, updated_at=now, claim_token=token,
                lease_until=now + timedelta(seconds=current_app.config["DELIVERY_LEASE_SECONDS"]))
        .returning(Delivery.id)
        .execution_options(synchronize_session=False))
    claimed = {row[0] for row in result}
    db.session.commit()
    if claimed:
        try:
            queue.get_redis().zrem(queue.key("ready"), *[queue.member(channel_id, i) for i in claimed])
        except redis.RedisError as exc:  # harmless: a claimed delivery popped later is not claimable
            log.warning("could not take %d digested deliveries out of the ready set (%s)", len(claimed), exc)
    return token, claimed


def start(drain, leader: Delivery, transport, token: str) -> bool:
    """Send the digest `leader` leads, from `Drain._start`: gather what waits, build one request,
    hand it to a sender thread. False when nothing else waits (the leader then goes alone).

    The message carries what it lists (the leader first, then oldest first, as many as fit the
    service's size limit) and what waited longer than DIGEST_LAG_BOUND seconds, counted as "and
    N more" behind the link when it is not listed (so no order waits much longer than the bound
    and a slot, however long the overload lasts). The others gathered are given back, parked for
    the next digest (`release`). Whatever goes wrong with one delivery's event costs that delivery
    alone (its own failed attempt, as in the drain); should the digest's request itself fail to
    build, every delivery gathered gets that attempt, so none stays claimed."""
    gathered_token, claimed = gather(leader.channel_id, leader.id, token)
    if not claimed:
        return False
    # Those of its own batch are not started again (kept for this batch only: its claim token).
    drain.digested = {token: drain.digested.get(token, set()) | claimed}
    members = [(leader, token)] + [(d, gathered_token) for d in drain._load(claimed, gathered_token)]
    if len(members) == 1:
        return False  # the others could not be loaded (each has its attempt): it goes alone
    members.sort(key=lambda pair: (pair[0].created_at, pair[0].id))
    digest_id = new_id("dig")
    link = f"{current_app.config['PUBLIC_URL'].rstrip('/')}/deliveries/?digest={digest_id}"
    try:
        with messages.merchant_locale():
            try:
                digest = _digest(digest_id, members, leader, link)
            except Exception:
                # Find the events that cannot be put into words; each pays for itself alone.
                healthy = []
                for delivery, held in members:
                    try:
                        messages.digest(digest_id, [_entry(delivery)], link)
                        healthy.append((delivery, held))
                    except Exception as exc:
                        log.exception("delivery %s cannot go in a digest; it alone pays for it", delivery.id)
                        _unsent(drain, delivery, held, exc)
                members = healthy
                if not members:
                    return True
                digest = _digest(digest_id, members, leader, link)
        digest = transport.fit_digest(digest)
        request = transport.prepare_digest(digest, signing.now_ms())
    except jobs.JobTimeoutException:
        raise
    except Exception as exc:
        log.exception("digest %s could not be built; its %d deliveries pay for it", digest_id, len(members))
        for delivery, held in members:
            _unsent(drain, delivery, held, exc)
        return True
    carried = set(digest.carried)
    release(drain, [pair for n, pair in enumerate(members) if n not in carried])
    members = [pair for n, pair in enumerate(members) if n in carried]
    # The leader is always carried (listed first): its slot is the message's.
    members.sort(key=lambda pair: pair[0].id != leader.id)
    # The others' attempts point to the first one's, which holds the message as sent.
    pointer = OutgoingRequest(request.method, request.url, request.headers, b"", request.masked_headers,
                              masked_url=request.masked_url)
    started, kind = utcnow(), leader.channel.kind
    items = [jobs.InFlight(d.id, d.channel_id, kind, d.attempt_count + 1, d.max_attempts, started,
                           request if n == 0 else pointer, held, digest_id=digest_id)
             for n, (d, held) in enumerate(members)]
    carrier = items[0]
    carrier.members = items[1:]
    drain.per_channel[leader.channel_id] += 1
    drain.in_flight[drain.pool.submit(drain._send, transport, request)] = carrier
    metrics.DIGESTS.labels(kind).inc()
    metrics.FOLDED.labels(kind).inc(len(items))
    return True


def _digest(digest_id: str, members: list, leader: Delivery, link: str) -> messages.Digest:
    """Everything gathered, to be fitted: the leader listed first, and those parked for longer
    than DIGEST_LAG_BOUND seconds carried whether or not they are listed."""
    bound = timedelta(seconds=current_app.config["DIGEST_LAG_BOUND"])
    now = utcnow()
    lead = next((n for n, (d, _) in enumerate(members) if d.id == leader.id), None)
    overdue = {n for n, (d, _) in enumerate(members) if d.created_at is not None and now - d.created_at > bound}
    return messages.digest(digest_id, [_entry(d) for d, _ in members], link, lead=lead, overdue=overdue)


def release(drain, left: list) -> None:
    """Give back the deliveries a digest gathered but did not carry, parked for the next digest
    (`fold = rate`, due at once; back by themselves after BACKSTOP should no digest take them).
    The oldest of them leads the next digest (`fold = lead`, due now: paced in the limiter's
    LEAD mode), so it goes at the robot's next free slot even when nothing new arrives; the others
    fold into it. Not an attempt: nothing was sent for them."""
    left = sorted(left, key=lambda pair: (pair[0].created_at, pair[0].id))
    for n, (delivery, held) in enumerate(left):
        drain.deferred.append((delivery.id, held, delivery.channel_id, delivery.attempt_count,
                               0.0 if n == 0 else BACKSTOP, LEAD if n == 0 else RATE))


def _entry(delivery: Delivery) -> tuple:
    event = delivery.event
    return event.hook, event.data, event.created_at


def _unsent(drain, delivery: Delivery, token: str, exc: Exception) -> None:
    drain._unsent(delivery.id, delivery.channel_id, delivery.channel_kind, delivery.target,
                  delivery.attempt_count + 1, delivery.max_attempts, token, jobs.unsent_outcome(exc))


def expand(done: list) -> list:
    """The drain's finished sends with each digest's outcome copied to every delivery it carried."""
    if not any(item.members for item, _ in done):
        return done
    expanded = []
    for item, outcome in done:
        expanded.append((item, outcome))
        for member in item.members or ():
            expanded.append((member, replace(outcome)))
    return expanded


@dataclass(frozen=True)
class Carried:
    """What a delivery's page says of the digest its latest attempt went in."""
    id: str
    count: int  # deliveries it carried
    first_delivery: str  # the one whose attempt holds the message as sent


def carried_by(delivery: Delivery) -> Carried | None:
    """The digest that carried this delivery's latest attempt, or None (it went alone). Two
    indexed queries (attempts by digest id)."""
    digest_id = db.session.scalar(select(Attempt.digest_id).where(Attempt.delivery_id == delivery.id)
                                  .order_by(Attempt.number.desc()).limit(1))
    if not digest_id:
        return None
    count, first = db.session.execute(
        select(func.count(), func.min(Attempt.id)).where(Attempt.digest_id == digest_id)).one()
    first_delivery = db.session.scalar(select(Attempt.delivery_id).where(Attempt.id == first))
    return Carried(digest_id, count, first_delivery)
