"""``jobs dashboard``: a web dashboard of the bridge's own state (the ``dashboard`` extra).

Server-rendered pages (Starlette, Jinja2, htmx) over what the bridge keeps in Redis:
queue counts and a per-minute chart, delayed jobs, repeats, dead letters, a job lookup,
and on the SQS backend the queue's counts. See :mod:`bridge.cli.dashboard.app` for the
pages and :mod:`bridge.cli.dashboard.security` for what guards them.
"""
