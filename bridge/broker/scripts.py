"""Lua scripts for delayed jobs kept in the guard store until they are due (``QUEUE_BACKEND=broker``).

Keys, all under ``bridge:broker:``:

* ``delayed:<queue>``  sorted set of job ids by due time (ms, the store's clock);
* ``queues``           the queues that have delayed jobs;
* ``jobs``             hash: job id -> the job as JSON (name, data, queue, priority);
* ``promoting``        sorted set of job ids being sent, by the end of their lease.

A promoter takes due jobs into ``promoting`` (one atomic step), publishes each
through Celery's producer, then forgets it. One that dies between the take and the
forget leaves the job in ``promoting``; when the lease ends any promoter takes it
again: a job is published at least once, never lost.
"""

from __future__ import annotations

from bridge.core.lua import NOW_MS, SOONER_DUE

__all__ = ["ADD_DELAYED", "CANCEL_DELAYED", "FORGET", "TAKE_DUE"]

#: KEYS: guard, delayed zset of the queue, queues set, jobs hash
#: ARGV: job id, queue, delay ms, job JSON, guard ttl ms (or '' for no key)
#: Returns {0, standing queue} for a duplicate, {1, due ms} for a job now waiting.
ADD_DELAYED = (
    NOW_MS
    + """
if ARGV[5] ~= '' then
  if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[5]) then
    return {0, redis.call('GET', KEYS[1])}
  end
end
local due = now_ms() + tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], due, ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[4])
return {1, due}
"""
)

#: KEYS: queues set, jobs hash, promoting zset
#: ARGV: delayed zset key prefix, max jobs, lease ms
#: Takes jobs whose lease ended and due jobs (up to the limit) into ``promoting``.
#: Returns {ms until the next due job or -1, id1, job1, id2, job2, ...}.
TAKE_DUE = (
    NOW_MS
    + SOONER_DUE
    + """
local now = now_ms()
local limit = tonumber(ARGV[2])
local lease = now + tonumber(ARGV[3])
local out = {}
local taken = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZADD', KEYS[3], lease, id)
  table.insert(out, id)
  table.insert(out, redis.call('HGET', KEYS[2], id) or '')
  taken = taken + 1
end
local next_due = -1
for _, queue in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local zkey = ARGV[1] .. queue
  if taken < limit then
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0, limit - taken)) do
      redis.call('ZREM', zkey, id)
      redis.call('ZADD', KEYS[3], lease, id)
      table.insert(out, id)
      table.insert(out, redis.call('HGET', KEYS[2], id) or '')
      taken = taken + 1
    end
  end
  next_due = sooner_due(KEYS[1], zkey, queue, now, next_due)
end
if taken >= limit then next_due = 0 end
table.insert(out, 1, next_due)
return out
"""
)

#: KEYS: promoting zset, jobs hash
#: ARGV: job id
#: After the job was published: it is no longer delayed.
FORGET = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

#: KEYS: guard, jobs hash
#: ARGV: job id, delayed zset key prefix
#: Removes a job still waiting for its delay and frees its key; 1 if one was removed.
#: A job already being published (``promoting``) is not removed: it is on its way.
CANCEL_DELAYED = """
local job = redis.call('HGET', KEYS[2], ARGV[1])
if not job then return 0 end
local removed = redis.call('ZREM', ARGV[2] .. cjson.decode(job)['queue'], ARGV[1])
if removed == 1 then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('DEL', KEYS[1])
end
return removed
"""
