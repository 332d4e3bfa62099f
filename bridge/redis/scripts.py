"""Lua scripts that make the bridge's Redis writes atomic.

Why Lua and not MULTI: the dedupe check decides whether anything is written,
so check and write must run as one step on the server. Writes are ordered so
that a failure part-way (Redis does not roll a script back) never leaves a
claimed idempotency key with no job behind it: the job goes in first, the
claim last.

Key layout, under ``<global_keyprefix>bridge:``:

* ``guard:<job id>``      string, the queue name; expires after the dedupe TTL
* ``delayed:<queue>``     sorted set of delayed job ids, scored by due time (ms)
* ``delayed-jobs``        hash: job id -> JSON array of the Redis commands to run when due
* ``delayed-queues``      set of queues that have delayed jobs (what promoters scan)
* ``delayed-keys``        hash: job id -> its idempotency key, for a delayed job that has one
                          (only the dashboard reads it: a job id does not give its key back)
* ``queued:<job id>``     for a tracked job (a repeat's run): the commands that queued it,
                          so it can be withdrawn from its list before a worker takes it
* ``rate:<minute>``       hash: jobs ``added``, ``done`` and ``failed`` in that minute
                          (minutes since the epoch); expires after two hours. The add script
                          counts ``added`` (one HINCRBY per call, not per job, in the
                          producer's minute); workers count the others (:mod:`bridge.redis.rates`)

Times come from the server's clock (``TIME``), so producers and workers with
skewed clocks agree on when a job is due.
"""

from __future__ import annotations

from bridge.core.lua import NOW_MS, SOONER_DUE

__all__ = ["ADD", "CANCEL_DELAYED", "PROMOTE", "RATE_TTL_MS", "WITHDRAW"]

#: How long a ``rate:<minute>`` bucket lives: the dashboard charts the last hour.
RATE_TTL_MS = 2 * 3600 * 1000

# Runs kombu's publish commands: the triples of list[first..last] (last: the list's end).
# Only the three commands kombu's redis transport emits are accepted.
_RUN_COMMANDS = (
    """
local function check_commands(list, first, last)
  for i = first, last or #list, 3 do
    local c = list[i]
    if c ~= 'lpush' and c ~= 'pexpire' and c ~= 'publish' then
      return redis.error_reply('bridge: refused command ' .. tostring(c))
    end
  end
  return false
end
local function run_commands(list, first, last)
  local err = check_commands(list, first, last)
  if err then return err end
  for i = first, last or #list, 3 do
    redis.call(list[i], list[i + 1], list[i + 2])
  end
  return false
end
"""
    + NOW_MS
)

#: ARGV: key prefix; the producer's minute (minutes since the epoch), where ``added`` is
#:       counted (the producer's clock, not TIME: one command less on every add; a skewed
#:       clock only files its adds under a neighbouring minute of the chart); then each job
#:       as consecutive words: job id, queue, guard ttl ms (0: no key), delay ms, track ttl ms
#:       (0: untracked), idempotency key (sent for a delayed job only, else ""), n (how many
#:       command words follow), then n words: command, key, value, ...
#: Each job is claimed and sent, or found standing, as in one step; a duplicate
#: later in the same call sees the claim of an earlier one.
#: The jobs travel as plain arguments rather than one JSON document: the producer packs
#: them with no escaping of the (JSON) messages, and the script decodes nothing.
#: The keys are built here from the prefix (a call names thousands of keys); this is
#: one reason the bridge does not support Redis Cluster.
#: Returns a JSON array, flat: per job, 1 and its due time (0 when not delayed) if
#: sent, or 0 and the standing job's queue if it was a duplicate. (One string reply
#: reads faster than a nested array reply.)
ADD = (
    _RUN_COMMANDS
    + f"local RATE_TTL_MS = {RATE_TTL_MS}\n"
    + """
local prefix = ARGV[1]
local i = 3
while i <= #ARGV do
  local last = i + 6 + tonumber(ARGV[i + 6])
  local err = check_commands(ARGV, i + 7, last)
  if err then return err end
  i = last + 1
end
local out = {}
local sent = 0
i = 3
while i <= #ARGV do
  local id, queue = ARGV[i], ARGV[i + 1]
  local ttl, delay, track = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  local first, last = i + 7, i + 6 + tonumber(ARGV[i + 6])
  local guard = prefix .. 'guard:' .. id
  local standing = false
  if ttl > 0 then standing = redis.call('GET', guard) end
  if standing then
    out[#out + 1] = 0
    out[#out + 1] = standing
  else
    local due = 0
    if delay > 0 then
      due = now_ms() + delay
      redis.call('HSET', prefix .. 'delayed-jobs', id, cjson.encode({unpack(ARGV, first, last)}))
      redis.call('ZADD', prefix .. 'delayed:' .. queue, due, id)
      redis.call('SADD', prefix .. 'delayed-queues', queue)
      if ARGV[i + 5] ~= '' then redis.call('HSET', prefix .. 'delayed-keys', id, ARGV[i + 5]) end
    else
      run_commands(ARGV, first, last)
      if track > 0 then
        redis.call('SET', prefix .. 'queued:' .. id, cjson.encode({unpack(ARGV, first, last)}), 'PX', track)
      end
    end
    sent = sent + 1
    if ttl > 0 then
      redis.call('SET', guard, queue, 'PX', ttl + delay)
    end
    out[#out + 1] = 1
    out[#out + 1] = due
  end
  i = last + 1
end
if sent > 0 then
  local minute = prefix .. 'rate:' .. ARGV[2]
  if redis.call('HINCRBY', minute, 'added', sent) == sent then
    redis.call('PEXPIRE', minute, RATE_TTL_MS)  -- a new bucket: once, not on every add
  end
end
return cjson.encode(out)
"""
)

#: KEYS: delayed-queues set, delayed-jobs hash, delayed-keys hash
#: ARGV: delayed zset key prefix, max jobs to move
#: Moves every due job (up to the limit) onto its queue, atomically, so any
#: number of promoters can run at once and each job moves exactly once.
#: Returns {moved, ms until the next due job or -1 when none}.
PROMOTE = (
    _RUN_COMMANDS
    + SOONER_DUE
    + """
local now = now_ms()
local limit = tonumber(ARGV[2])
local moved = 0
local next_due = -1
for _, queue in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local zkey = ARGV[1] .. queue
  local ids = redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0, limit - moved)
  for _, id in ipairs(ids) do
    local commands = redis.call('HGET', KEYS[2], id)
    if commands then
      local err = run_commands(cjson.decode(commands), 1)
      if err then return err end
    end
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('ZREM', zkey, id)
    moved = moved + 1
  end
  next_due = sooner_due(KEYS[1], zkey, queue, now, next_due)
  if moved >= limit then return {moved, 0} end
end
return {moved, next_due}
"""
)

#: KEYS: guard, delayed zset, delayed-jobs hash, delayed-keys hash
#: ARGV: job id
#: Removes a job that is still waiting for its delay and frees its key.
#: Returns 1 if a waiting job was removed, 0 if none was waiting.
CANCEL_DELAYED = """
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
if removed == 1 then redis.call('DEL', KEYS[1]) end
return removed
"""

#: KEYS: queued record of the job
#: Removes a tracked job's message from its queue if no worker has taken it yet.
#: Returns the number of messages removed (0 if it was already taken or never tracked).
WITHDRAW = """
local record = redis.call('GET', KEYS[1])
if not record then return 0 end
redis.call('DEL', KEYS[1])
local commands = cjson.decode(record)
local removed = 0
for i = 1, #commands, 3 do
  if commands[i] == 'lpush' then
    removed = removed + redis.call('LREM', commands[i + 1], 1, commands[i + 2])
  end
end
return removed
"""
