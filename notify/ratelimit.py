"""A limiter shared by every worker through Redis: at most N messages in any window of W seconds
to one robot (DingTalk and WeCom allow 20 a minute and punish the 21st).

Each message reserves a time slot. A slot is now when fewer than N slots lie in the last W
seconds; otherwise it is W seconds after the N-th latest slot, which may be in the future. Slots
are handed out in increasing order, so any window of W seconds holds at most N of them, whatever
the number of workers. A message whose slot is in the future is not sent: the drain puts it back
in the ready set for that time, and when it comes back it finds its reservation waiting (the
reservation is keyed by delivery and attempt), so it never queues twice.

The window is a little longer than the service's (SAFETY seconds): a request reaches the service
some milliseconds after its slot, and the service's clock is not ours.
"""
from __future__ import annotations

import hashlib

from notify import queue

SAFETY = 2.0

# KEYS[1]: the robot's sorted set of slots (member: reservation id, score: epoch seconds).
# ARGV: reservation id, limit N, window W. Uses the Redis server's clock, shared by all workers.
# Returns the seconds from now to the slot (0 or more) as a string.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if held then return tostring(math.max(0, tonumber(held) - now)) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local slot = now
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
    local nth = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
    slot = math.max(now, tonumber(nth[2]) + window)
end
redis.call('ZADD', KEYS[1], slot, ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(slot - now + window) + 1)
return tostring(slot - now)
"""


def robot_key(credential: str) -> str:
    """A Redis key for one robot, named by a hash of its credential (never the credential)."""
    return queue.key("rate:" + hashlib.sha256(credential.encode()).hexdigest()[:32])


def reserve(key: str, reservation: str, limit: int, window: float) -> float:
    """Seconds until `reservation` may be sent: 0 for now. Asking again for the same reservation
    gives the same slot. Measured on the Redis server's clock, so workers' clocks need not agree."""
    return float(queue.get_redis().eval(_RESERVE, 1, key, reservation, limit, window + SAFETY))
