"""The relay's server-side Lua scripts (Redis >= 6.2: ``LPOP key count``), and ``Script``, which
runs one by its SHA and loads it when Redis does not know it.

Each script does, in one command, what the reference server does with several; the keys and
values it writes are the reference's own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Final

from oasst_shared.relay._errors import RelayError, RelayResponseError
from oasst_shared.relay._link import Arg, Link, Reply, bulk

__all__ = ["DRAIN", "ENQUEUE", "PUBLISH", "REGISTER", "Script", "sha1"]

# KEYS: the message queues of one flush. ARGV: expire seconds (0: none), max length (0: none),
# then for each key: its frame count n and its n frames. Pushes each key's frames in order
# (as many as fit under the max length: a suffix that does not fit is not pushed), sets the
# key's expiry once, and returns for each key how many of its frames were pushed, or, where
# Redis refused the key's push (WRONGTYPE, OOM), the error's text: nothing of that key was
# pushed (the refusal comes at its first RPUSH, and OOM is only ever refused at the script's
# first write), and the other keys are pushed all the same (redis.pcall: a script error would
# leave the keys before it pushed and the caller unable to tell which).
# One RPUSH per key (its reply is the new length); only a push that overflows the max length
# pays a second call, an RPOP of the suffix that did not fit (within the script: no reader ever
# sees it). Then the doorbells (_doorbell): each pushed key whose stream a relay reader registered
# (relay:reader:{message_id}, the key without its "message:" prefix) is pushed onto that reader's
# relay:bell:{reader id}, one RPUSH per reader per flush (names computed here: a single Redis).
PUBLISH: Final = """
local expire = tonumber(ARGV[1])
local maxlen = tonumber(ARGV[2])
local i = 3
local res = {}
local bells = {}
local readers = {}
for k = 1, #KEYS do
  local key = KEYS[k]
  local n = tonumber(ARGV[i])
  i = i + 1
  local len = 0
  local err = nil
  local j = i
  local last = i + n - 1
  while j <= last and not err do
    local e = j + 4999
    if e > last then e = last end
    local r = redis.pcall('RPUSH', key, unpack(ARGV, j, e))
    if type(r) == 'table' and r.err then err = r.err else len = r end
    j = e + 1
  end
  if err then
    res[k] = err
  else
    local take = n
    if maxlen > 0 and len > maxlen then
      local over = len - maxlen
      if over > n then over = n end
      redis.call('RPOP', key, over)
      take = n - over
    end
    if take > 0 and expire > 0 then redis.call('EXPIRE', key, expire) end
    if take > 0 then
      local reader = redis.pcall('GET', 'relay:reader:' .. string.sub(key, 9))
      if type(reader) == 'string' then
        local keys = bells[reader]
        if not keys then
          keys = {}
          bells[reader] = keys
          readers[#readers + 1] = reader
        end
        keys[#keys + 1] = key
      end
    end
    res[k] = take
  end
  i = i + n
end
for r = 1, #readers do
  local bell = 'relay:bell:' .. readers[r]
  local keys = bells[readers[r]]
  for j = 1, #keys, 4000 do
    local e = j + 3999
    if e > #keys then e = #keys end
    redis.pcall('RPUSH', bell, unpack(keys, j, e))
  end
  if expire > 0 then redis.pcall('EXPIRE', bell, expire) end
end
return res
"""

# KEYS[1]: the reader's backup list; KEYS[2..]: message queues, the first ARGV[2] of them "hot"
# (expected to hold frames), the rest to scan. ARGV[1]: the most frames to pop per key; ARGV[3]:
# this round's id; ARGV[4]: the backup's expiry in seconds. Pops every hot key (LPOP key count);
# scans the others 32 at a time with one EXISTS each and pops only in a group that has a
# non-empty key, stopping at the group's count. A Lua redis.call costs several times a key
# lookup, so an idle key costs a fraction of an LPOP. Returns a flat array [index1, frames1,
# index2, frames2, ...] for the keys that had frames (1-based index among the message queues),
# in key order. A key that is not a list (WRONGTYPE) gives [-index, error message] instead and
# the others are drained all the same: a script error would not undo the pops made before it
# (Redis scripts do not roll back), so one bad key must not abort the round.
# The backup: the round starts by replacing the previous round's (its reply was read, or this
# round would not have been sent) with this round's id, then keeps [round id, key, count,
# frames..., key, count, frames...] of what it pops. If this round's reply is lost on the way,
# the reader reads the backup back after reconnecting and delivers those frames, so a lost reply
# loses nothing. The backup is trimmed to the id, never deleted: on a Redis Cluster whose slot is
# migrating, a write to a missing key inside a script fails (after the pops), while a missing
# declared key makes the node refuse the whole call (ASK/TRYAGAIN) before it runs. Its first
# write is an EXPIRE, which Redis < 7 never refuses for memory: a script is refused out of memory
# only at its first write, so a full Redis still gives up what it holds.
DRAIN: Final = """
local n = tonumber(ARGV[1])
local nhot = tonumber(ARGV[2])
local backup = KEYS[1]
if redis.call('EXPIRE', backup, tonumber(ARGV[4])) == 1 then
  redis.call('LTRIM', backup, 0, 0)
  redis.call('LSET', backup, 0, ARGV[3])
else
  redis.call('RPUSH', backup, ARGV[3])
  redis.call('EXPIRE', backup, tonumber(ARGV[4]))
end
local total = #KEYS - 1
local out = {}
local saved = false
local function pop(k)
  local key = KEYS[k + 1]
  local v = redis.pcall('LPOP', key, n)
  if type(v) == 'table' and v.err then
    out[#out + 1] = -k
    out[#out + 1] = v.err
    return true
  end
  if v then
    out[#out + 1] = k
    out[#out + 1] = v
    saved = true
    redis.call('RPUSH', backup, key, #v, unpack(v))
    return true
  end
  return false
end
for k = 1, nhot do
  pop(k)
end
local i = nhot + 1
while i <= total do
  local e = i + 31
  if e > total then e = total end
  local c = redis.call('EXISTS', unpack(KEYS, i + 1, e + 1))
  local k = i
  while c > 0 and k <= e do
    if pop(k) then c = c - 1 end
    k = k + 1
  end
  i = e + 1
end
if saved then redis.call('EXPIRE', backup, tonumber(ARGV[4])) end
return out
"""

# KEYS: work:{hash}, ctr_enq:work:{hash}, pos:{message_id}. ARGV: message_id, max size (0: none),
# pos expiry seconds. The reference's RedisQueue.enqueue with its counter, in one atomic step:
# returns the enqueue counter (the message's queue position), or -1 when the queue is full.
# The same writes as the reference's RPUSH, INCR, SET, in an order where any refusal comes
# before the first write (LLEN: the queue is a list; INCR: the counter is an integer; RPUSH
# then succeeds on that list, and OOM is only refused at a script's first write): an error
# reply means nothing was written.
ENQUEUE: Final = """
local maxsize = tonumber(ARGV[2])
local len = redis.call('LLEN', KEYS[1])
if maxsize > 0 and len >= maxsize then return -1 end
local ctr = redis.call('INCR', KEYS[2])
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('SET', KEYS[3], ctr, 'EX', tonumber(ARGV[3]))
return ctr
"""


# KEYS: registrations (relay:reader:{message_id}), the first ARGV[3] to set, the rest to delete
# if they are still this reader's. ARGV: the reader's id, the registrations' expiry in seconds,
# how many to set. pcall: a refused registration (OOM) only costs the doorbell, never a round.
REGISTER: Final = """
local me = ARGV[1]
local ttl = tonumber(ARGV[2])
local nset = tonumber(ARGV[3])
for i = 1, nset do
  redis.pcall('SET', KEYS[i], me, 'EX', ttl)
end
for i = nset + 1, #KEYS do
  if redis.pcall('GET', KEYS[i]) == me then redis.pcall('DEL', KEYS[i]) end
end
return nset
"""


def sha1(script: str) -> str:
    """The SHA1 Redis names a script by (``EVALSHA``)."""
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


class Script:
    """One script: its source, its SHA, and its calls, which load it on ``NOSCRIPT`` (Redis
    answers that without running anything, so the call is simply made again)."""

    __slots__ = ("head", "sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = sha1(source)
        self.head = bulk(b"EVALSHA") + bulk(self.sha.encode())
        """``EVALSHA <sha>`` packed, for a caller that packs the rest of the command itself."""

    def command(self) -> list[Arg]:
        """A new argument list ``["EVALSHA", sha]``: append the key count, keys and arguments."""
        return ["EVALSHA", self.sha]

    async def run(
        self,
        link: Link,
        args: list[Arg],
        *,
        op: str,
        key: str | None,
        idempotent: bool,
        on_unknown: Callable[[BaseException], RelayError] | None = None,
    ) -> Reply:
        """``link.call(args)`` (``args`` from ``command``); on ``NOSCRIPT``, ``SCRIPT LOAD`` and
        again; on ``NOSCRIPT`` again (a cluster node the key is migrating to, asked once: not the
        link's own), the source itself (``EVAL``)."""
        try:
            return await link.call(args, op=op, key=key, idempotent=idempotent, on_unknown=on_unknown)
        except RelayResponseError as exc:
            if exc.code != "NOSCRIPT":
                raise
        await link.call(["SCRIPT", "LOAD", self.source], op="SCRIPT LOAD", key=key, idempotent=True)
        try:
            return await link.call(args, op=op, key=key, idempotent=idempotent, on_unknown=on_unknown)
        except RelayResponseError as exc:
            if exc.code != "NOSCRIPT":
                raise
        evaluated = ["EVAL", self.source, *args[2:]]
        return await link.call(evaluated, op=op, key=key, idempotent=idempotent, on_unknown=on_unknown)
