"""A limiter shared by every worker through Redis: at most N messages in any window of W seconds
to one robot (DingTalk and WeCom allow 20 a minute and punish the 21st), for each of a kind's
windows (Feishu will have two: 100 a minute and 5 a second).

Each message reserves a time slot: the earliest moment at which every window around it holds
fewer than N slots, which may be in the future. A message whose slot is in the future is not
sent: the drain puts it back in the ready set for that time, and when it comes back it finds its
reservation waiting (the reservation is keyed by delivery and attempt), so it never queues twice.

Digest pacing (notify.digests), for kinds that fold: a delivery that may be folded gets a slot
*now* only while the first window holds fewer than a single budget (robots: half the limit) and
no digest is pending for that robot; otherwise it folds. The first one to find no digest pending
leads the next one: its slot is the earliest moment that fits every window with a few slots left
over (`digest_cap`), is at least `spacing` (window / limit: 3 s for robots) after the previous
slot, and leaves the window's remaining slots evenly spread until its oldest slot leaves it (after
10 singles at once, 8 digests spread over the minute rather than 8 in 24 s and then a 38-s wait,
which would make one digest of 600 events, too many to list). The others fold into it: they learn its slot and park until then. The pending digest is a
small hash in Redis (leader reservation, slot); it is cleared when the leader comes back at its
slot, so the next delivery leads the next digest. Alarms, which never fold, take an ordinary
slot (fewer than N in every window), so they go first and the digests' spare slots are theirs.
Should Redis lose the record, or the leader's worker die, parked deliveries come back by
themselves at the slot plus BACKSTOP (the drain schedules them so) and are paced again.

Everything is decided in one Lua script on the Redis server's clock, shared by all workers.
Windows are a little longer than the service's (SAFETY seconds): a request reaches the service
some milliseconds after its slot (a drain may send up to a second or two after it), and the
service's clock is not ours. (For a window of one second, as Feishu's 5 a second, that makes it 5
in 3 s: a shorter margin needs drains that send on time to the millisecond.)
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from notify import queue

SAFETY = 2.0
# A delivery folded into a pending digest is parked until the digest's slot plus this: if the
# digest never happens (Redis lost its data, the leader's worker died), it comes back by itself.
BACKSTOP = 30.0

# What a message asks for: FIXED (never folds: alarms, Tests, reports, redeliveries), FOLDABLE
# (may go alone, else folds), LEAD (must lead a digest: its quiet hours are over, or it is the
# oldest of those a digest could not list, which leads the next one: notify.digests.release).
FIXED, FOLDABLE, LEAD = "fixed", "fold", "lead"
# What it gets: SEND (alone, after `wait` seconds), FOLD (into the pending digest, due in `wait`),
# LEADER (leads the digest due in `wait`), DIGEST (leads a digest due now: send it).
SEND, FOLD, LEADER, DIGEST = "send", "fold", "lead", "digest"

# KEYS[1]: the robot's sorted set of slots (member: reservation id, score: epoch seconds).
# KEYS[2]: its pending digest, a hash {leader: reservation id, slot: epoch seconds}.
# ARGV: reservation, mode, budget, budget window, spacing, backstop, number of windows, then
# (limit, window, digest cap) per window. Returns {verdict, seconds from now to the slot}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local res, mode = ARGV[1], ARGV[2]
local budget, bwindow = tonumber(ARGV[3]), tonumber(ARGV[4])
local spacing, backstop = tonumber(ARGV[5]), tonumber(ARGV[6])
local nwin = tonumber(ARGV[7])
local limits, windows, caps = {}, {}, {}
local longest = bwindow
for i = 1, nwin do
    limits[i] = tonumber(ARGV[5 + 3 * i])
    windows[i] = tonumber(ARGV[6 + 3 * i])
    caps[i] = tonumber(ARGV[7 + 3 * i])
    if windows[i] > longest then longest = windows[i] end
end
local held = redis.call('ZSCORE', KEYS[1], res)
if held then
    held = tonumber(held)
    if redis.call('HGET', KEYS[2], 'leader') == res then
        if held <= now then
            redis.call('DEL', KEYS[2])
            return {'digest', '0'}
        end
        return {'lead', tostring(held - now)}
    end
    return {'send', tostring(math.max(0, held - now))}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
local flat = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local slots = {}
for i = 2, #flat, 2 do slots[#slots + 1] = tonumber(flat[i]) end

-- Whether a slot at c keeps every window around it within its cap (limits, or the digests' caps).
local function fits(c, digest)
    for i = 1, nwin do
        local cap, w = digest and caps[i] or limits[i], windows[i]
        local near, at = {}, nil
        for _, s in ipairs(slots) do
            if s > c - w and s < c + w then
                if at == nil and s > c then near[#near + 1] = c; at = #near end
                near[#near + 1] = s
            end
        end
        if at == nil then near[#near + 1] = c; at = #near end
        -- Any cap + 1 consecutive slots that include c and lie within w of each other: too many.
        for j = math.max(1, at - cap), at do
            if j + cap <= #near and near[j + cap] - near[j] < w then return false end
        end
    end
    return true
end

-- The earliest slot from `start` on that fits: validity only begins where a slot leaves a window.
local function earliest(start, digest)
    if fits(start, digest) then return start end
    local candidates = {}
    for _, s in ipairs(slots) do
        for i = 1, nwin do
            if s + windows[i] > start then candidates[#candidates + 1] = s + windows[i] end
        end
    end
    table.sort(candidates)
    for _, c in ipairs(candidates) do
        if fits(c, digest) then return c end
    end
    return candidates[#candidates]
end

local function take(c)
    redis.call('ZADD', KEYS[1], c, res)
    local last = math.max(c, slots[#slots] or c)
    redis.call('EXPIRE', KEYS[1], math.ceil(last - now + longest) + 1)
end

if mode == 'fixed' then
    local c = earliest(now, false)
    take(c)
    return {'send', tostring(c - now)}
end
local pending = redis.call('HMGET', KEYS[2], 'leader', 'slot')
if pending[1] then
    local slot = tonumber(pending[2])
    if now <= slot + backstop then return {'fold', tostring(slot - now)} end
    redis.call('DEL', KEYS[2])  -- its leader never came back: this one leads the next
end
if mode == 'fold' then
    local count = 0
    for _, s in ipairs(slots) do if s > now - bwindow then count = count + 1 end end
    if count < budget and fits(now, false) then
        take(now)
        return {'send', '0'}
    end
end
local start = now
local prev = slots[#slots]
if prev then
    if prev + spacing > start then start = prev + spacing end
    -- Spread the digests' free slots over the time until the oldest slot leaves each window, so
    -- a burst does not spend them at once and then wait a whole window (one digest of everything).
    for i = 1, nwin do
        local inside, oldest = 0, nil
        for _, s in ipairs(slots) do
            if s > prev - windows[i] then
                inside = inside + 1
                if oldest == nil then oldest = s end
            end
        end
        local free = caps[i] - inside
        if oldest and free >= 1 then
            local spread = prev + (oldest + windows[i] - prev) / free
            if spread > start then start = spread end
        end
    end
end
local c = earliest(start, true)
take(c)
if c <= now then return {'digest', '0'} end
redis.call('HSET', KEYS[2], 'leader', res, 'slot', tostring(c))
redis.call('EXPIRE', KEYS[2], math.ceil(c - now + backstop) + 60)
return {'lead', tostring(c - now)}
"""


@dataclass(frozen=True)
class Pacing:
    """How one kind is paced: its windows ((limit, seconds), …), and for kinds that fold the single
    budget (n messages in `budget_window` seconds) and the spacing of digests."""
    limits: tuple[tuple[int, float], ...] = ()
    budget: int = 0
    budget_window: float = 0.0
    spacing: float = 0.0

    @classmethod
    def of(cls, transport) -> "Pacing":
        limits = transport.limits()
        if not transport.folds:
            return cls(limits)
        if transport.fold_budget:
            budget, budget_window = transport.fold_budget
        else:
            budget, budget_window = max(1, limits[0][0] // 2), limits[0][1]
        spacing = transport.digest_spacing
        if spacing is None:
            spacing = limits[0][1] / limits[0][0] if limits else 0.0
        return cls(limits, budget, budget_window, spacing)

    def arguments(self) -> list:
        args = [self.budget, self.budget_window, self.spacing, BACKSTOP, len(self.limits)]
        for limit, window in self.limits:
            args += [limit, window + SAFETY, digest_cap(limit)]
        return args


def digest_cap(limit: int) -> int:
    """How many of a window's `limit` slots digests may take: a tenth (at least one) stays free
    for alarms, which never fold and must not wait behind a run of digests."""
    return max(1, limit - max(1, limit // 10))


@dataclass(frozen=True)
class Verdict:
    kind: str  # SEND, FOLD, LEADER or DIGEST
    wait: float  # seconds from now to the slot (FOLD: to the digest's slot, which may have passed)


def robot_key(credential: str) -> str:
    """A Redis key for one robot, named by a hash of its credential (never the credential)."""
    return queue.key("rate:" + hashlib.sha256(credential.encode()).hexdigest()[:32])


def reserve(key: str, reservation: str, pacing: Pacing, mode: str = FIXED) -> Verdict:
    """The slot of `reservation` (delivery id and attempt number) on the robot `key`, and whether
    it goes alone, folds or leads a digest (see the module's text). Asking again for the same
    reservation gives the same slot. Measured on the Redis server's clock, so workers' clocks need
    not agree."""
    kind, wait = queue.run_script(_RESERVE, [key, key + ":digest"], [reservation, mode, *pacing.arguments()])
    return Verdict(kind.decode() if isinstance(kind, bytes) else kind, float(wait))
