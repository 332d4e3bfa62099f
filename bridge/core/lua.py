"""Lua shared by the backends' scripts."""

from __future__ import annotations

__all__ = ["NOW_MS", "SOONER_DUE"]

#: ``now_ms()``: the server's clock in milliseconds, one clock for every producer and worker.
NOW_MS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

#: ``sooner_due(queues_key, zkey, queue, now, next_due)``: after a pass over one queue's sorted
#: set of delayed jobs, the ms until the soonest job due on any queue so far (-1: none yet);
#: a queue left with no delayed job is dropped from the set of queues that have some.
SOONER_DUE = """
local function sooner_due(queues_key, zkey, queue, now, next_due)
  local head = redis.call('ZRANGE', zkey, 0, 0, 'WITHSCORES')
  if #head == 0 then
    redis.call('SREM', queues_key, queue)
    return next_due
  end
  local wait = math.max(0, tonumber(head[2]) - now)
  if next_due < 0 or wait < next_due then return wait end
  return next_due
end
"""
