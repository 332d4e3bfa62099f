"""Lua shared by the backends' scripts."""

from __future__ import annotations

__all__ = ["NOW_MS"]

#: ``now_ms()``: the server's clock in milliseconds, one clock for every producer and worker.
NOW_MS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""
