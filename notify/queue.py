"""Redis and RQ: how work reaches the workers. The database is the source of truth; Redis only
carries work, and everything in it can be rebuilt from the database by the sweeper.

Deliveries that are due wait in one sorted set, the *ready set*: member `c<channel id>:<delivery
id>`, score the epoch second it is due. Workers run `notify.jobs.drain` jobs that take many members
at a time, so RQ's per-job bookkeeping (about 2.5 ms and 50 Redis commands) is paid per batch, not
per delivery. A retry is the same member added back with a later score. A sorted set cannot hold a
member twice, so re-adding a delivery that is already waiting (the sweeper does) is harmless.

A drain job is enqueued by `wake()`, at most one waiting at a time: every new delivery calls it,
and each drain clears the flag before it looks at the set, so no delivery is left without a drain.
"""
from __future__ import annotations

import logging
import time
import uuid
import weakref
from datetime import datetime, timezone
from pathlib import Path

import redis
from flask import current_app
from rq import Queue
from rq.serializers import JSONSerializer

log = logging.getLogger(__name__)

# RQ kills a drain job after this. A drain takes work for DRAIN_BUDGET seconds, then waits at most
# connect + read timeout for its last requests and DRAIN_MARGIN to record them: config.py refuses
# settings under which that does not fit.
JOB_TIMEOUT = 120
DRAIN_MARGIN = 20
# A failed job is kept a day so the operator can read its traceback (`rq info`, Redis).
FAILURE_TTL = 24 * 3600

# Pop due members, oldest first, atomically, skipping endpoints that have no room: at most
# ARGV[2] in all, looking at no more than the ARGV[3] oldest due members, at most ARGV[4] per
# endpoint unless ARGV[5…] (pairs "c<id>", n) says otherwise. An endpoint at its limit keeps its
# deliveries waiting here, in order, while others' are taken past them.
_POP_DUE = """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local limit = tonumber(ARGV[2])
local default = tonumber(ARGV[4])
local room = {}
for i = 5, #ARGV, 2 do room[ARGV[i]] = tonumber(ARGV[i + 1]) end
local taken = {}
for _, m in ipairs(members) do
    if #taken >= limit then break end
    local endpoint = string.match(m, '^(c%d+):')
    local left = room[endpoint] or default
    if left > 0 then
        room[endpoint] = left - 1
        taken[#taken + 1] = m
    else
        room[endpoint] = 0
    end
end
if #taken > 0 then redis.call('ZREM', KEYS[1], unpack(taken)) end
return taken
"""
# Work due this close to now is started now: RQ's scheduler only moves delayed jobs once a second.
NOW_WINDOW = 0.5
# How far past the first due member one pop looks for endpoints that have room.
POP_SCAN = 2000

def redis_url(app=None) -> str:
    app = app or current_app
    url = app.config.get("REDIS_URL")
    if url:
        return url
    from notify import embedded_redis

    return embedded_redis.ensure_running(Path(app.instance_path) / "redis")


def get_redis(app=None) -> redis.Redis:
    """The app's Redis client, created on first use (never at import time)."""
    app = app or current_app
    client = app.extensions.get("merchant_notify.redis")
    if client is None:
        client = redis.Redis.from_url(redis_url(app), socket_connect_timeout=2, socket_timeout=10,
                                      health_check_interval=30)
        app.extensions["merchant_notify.redis"] = client
    return client


# Each Lua script as a `Script` of each client: sent once, then run by its SHA (EVALSHA), loaded
# again by redis-py when Redis answers NOSCRIPT (after a restart). A drain runs its scripts
# hundreds of times a second; sending their text each time cost the worker CPU for nothing.
_SCRIPTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def run_script(text: str, keys: list, args: list, client: redis.Redis | None = None):
    """Run the Lua script `text` on the app's Redis (EVALSHA, as `Script` does)."""
    client = client or get_redis()
    scripts = _SCRIPTS.setdefault(client, {})
    script = scripts.get(text)
    if script is None:
        script = scripts[text] = client.register_script(text)
    return script(keys=keys, args=args)


def get_queue(app=None) -> Queue:
    app = app or current_app
    return Queue(app.config["RQ_QUEUE"], connection=get_redis(app), serializer=JSONSerializer,
                 default_timeout=JOB_TIMEOUT)


def key(name: str) -> str:
    """This installation's name for a Redis key (namespaced by RQ_QUEUE)."""
    return f"merchant-notify:{current_app.config['RQ_QUEUE']}:{name}"


def member(channel_id: int | None, delivery_id: str) -> str:
    return f"c{channel_id or 0}:{delivery_id}"


def parse_member(value: bytes | str) -> tuple[int, str]:
    text = value.decode() if isinstance(value, bytes) else value
    channel, _, delivery_id = text.partition(":")
    return int(channel[1:]), delivery_id


def schedule(items: list[tuple[int | None, str, float]], *, only_new: bool = False) -> int:
    """Put `(channel_id, delivery_id, due epoch seconds)` in the ready set and make sure a drain
    will run when the earliest is due. `only_new` keeps the score of members already there.
    Returns how many members were not in the set before."""
    if not items:
        return 0
    mapping = {member(channel_id, delivery_id): due for channel_id, delivery_id, due in items}
    earliest = min(mapping.values())
    if earliest > time.time() + NOW_WINDOW:
        added = get_redis().zadd(key("ready"), mapping, nx=only_new)
        wake(at=earliest)
        return added
    # The common case, a delivery due now, in one round trip: add it and raise the drain flag.
    pipe = get_redis().pipeline(transaction=False)
    pipe.zadd(key("ready"), mapping, nx=only_new)
    pipe.set(key("drain-queued"), "1", nx=True, ex=JOB_TIMEOUT)
    added, flag_was_free = pipe.execute()
    if flag_was_free:
        enqueue_drain()
    return added


def wake(at: float | None = None) -> None:
    """Enqueue a drain job now (unless one is already waiting), or at `at` (one per second slot);
    an `at` within NOW_WINDOW seconds counts as now."""
    connection = get_redis()
    if at is None or at <= time.time() + NOW_WINDOW:
        if connection.set(key("drain-queued"), "1", nx=True, ex=JOB_TIMEOUT):
            enqueue_drain()
        return
    slot = int(at)
    if connection.set(key(f"wake:{slot}"), "1", nx=True, ex=max(60, int(at - time.time()) + 60)):
        get_queue().enqueue_at(datetime.fromtimestamp(slot + 1, timezone.utc), "notify.jobs.drain",
                               job_id=f"drain-at-{slot}-{uuid.uuid4().hex[:8]}", result_ttl=0,
                               failure_ttl=FAILURE_TTL, job_timeout=JOB_TIMEOUT)


def enqueue_drain(queue_name: str | None = None) -> None:
    """A drain job on the shared queue, or on `queue_name` (a worker's own queue, where a job
    nobody took within JOB_TIMEOUT, its worker gone, expires)."""
    if queue_name is None:
        target, ttl = get_queue(), None
    else:
        target, ttl = Queue(queue_name, connection=get_redis(), serializer=JSONSerializer), JOB_TIMEOUT
    target.enqueue("notify.jobs.drain", job_id=f"drain-{uuid.uuid4().hex}", result_ttl=0, ttl=ttl,
                   failure_ttl=FAILURE_TTL, job_timeout=JOB_TIMEOUT)


def drain_started() -> None:
    """Called by a drain before it pops: from now on a new delivery enqueues another drain."""
    get_redis().delete(key("drain-queued"))


def pop_due(limit: int, per_endpoint: int, room: dict[int, int] | None = None,
            now: float | None = None) -> list[tuple[int, str]]:
    """Take up to `limit` due deliveries out of the ready set, at most `per_endpoint` for an endpoint
    unless `room` (channel id → n) says otherwise: `[(channel_id, delivery_id), …]`."""
    if limit <= 0:
        return []
    now = time.time() if now is None else now
    pairs = [value for channel_id, n in (room or {}).items() for value in (f"c{channel_id}", max(0, n))]
    members = run_script(_POP_DUE, [key("ready")], [repr(now), limit, POP_SCAN, per_endpoint, *pairs])
    return [parse_member(m) for m in members]


def next_due() -> float | None:
    """The epoch second the earliest waiting delivery is due, or None when nothing waits."""
    first = get_redis().zrange(key("ready"), 0, 0, withscores=True)
    return first[0][1] if first else None


def ready_count() -> int:
    """Deliveries waiting in Redis, due or not."""
    return get_redis().zcard(key("ready"))


def due_count(now: float | None = None) -> int:
    """Deliveries waiting in Redis that are due now."""
    return get_redis().zcount(key("ready"), "-inf", time.time() if now is None else now)
