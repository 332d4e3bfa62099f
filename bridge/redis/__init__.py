"""Everything that speaks Redis: the backend and its Lua scripts, the Celery message template,
and what runs in workers on Redis (the reliable fetch, the reconnect guard, rejected list items,
dead letters). The embedded server runs this same code."""
