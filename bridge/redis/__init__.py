"""Everything that speaks Redis: the backend and its Lua scripts, the Celery message template,
and what runs in workers on Redis (the bridge's kombu transport with the reliable fetch,
rejected list items, dead letters). The embedded server runs this same code."""
