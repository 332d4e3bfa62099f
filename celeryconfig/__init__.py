"""Production Celery settings from the environment.

Use with ``app.config_from_object("celeryconfig")``. The values are computed on
first access (module ``__getattr__``), not at import, so the environment is read
when Celery loads its configuration and a bad value raises
:class:`bridge.errors.ConfigError` naming the variable.

Override any setting after loading, as with any Celery config:
``app.conf.task_time_limit = 300``.
"""

from __future__ import annotations

import functools
from typing import Any

from bridge.errors import ConfigError
from bridge.settings import Settings

# How long Redis waits for an ack before handing a job to another worker. It must
# exceed the longest handler, or a slow job runs twice; delays do not depend on it
# (they wait in Redis, not in worker memory). The default of JOBS_VISIBILITY_TIMEOUT_SEC.
VISIBILITY_TIMEOUT_SEC = 3600


def build(settings: Settings | None = None) -> dict[str, Any]:
    """Return the Celery settings for ``settings`` (default: from the environment)."""
    settings = settings or Settings.from_env()
    values = _broker(settings)
    return {
        **values,
        # Keep results a day, like the dedupe guard, then let Redis reclaim them.
        "result_expires": 86_400,
        # JSON only, both ways: a pickle message is never deserialised.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Ack after the handler ran, so a worker that dies mid-job does not lose it.
        "task_acks_late": True,
        # With acks_late: a child process killed mid-job (OOM, kill -9) requeues the job.
        "task_reject_on_worker_lost": True,
        # A worker process reserves one job at a time: none sit idle behind a long one.
        "worker_prefetch_multiplier": 1,
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout_sec},
        # Workers started before Redis keep retrying instead of exiting.
        "broker_connection_retry_on_startup": True,
        # Retry a publish whose connection dropped, a bounded number of times.
        "task_publish_retry": True,
        "task_publish_retry_policy": {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
        # Report STARTED, so a running job is told apart from a waiting one.
        "task_track_started": True,
        # On losing the broker connection, stop unacked jobs rather than let them run twice.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # One clock for schedules and ETAs across machines.
        "enable_utc": True,
        "timezone": "UTC",
    }


def _broker(settings: Settings) -> dict[str, Any]:
    if settings.queue_backend == "sqs":
        from celeryconfig._sqs import sqs_settings

        return sqs_settings(settings)
    if settings.queue_backend == "redis" and settings.redis_url:
        url = settings.redis_url
    elif settings.queue_backend == "embedded":
        from bridge.embedded import EmbeddedServer

        # Started on demand: the first process of the app to load its config starts it.
        server = EmbeddedServer(settings.bridge_home)
        server.ensure_running()
        url = server.broker_url
    else:  # pragma: no cover - Settings refuses other combinations
        raise ConfigError(f"celeryconfig: QUEUE_BACKEND={settings.queue_backend!r} has no broker.")
    return {
        "broker_url": url,
        # Results in the same Redis, so app.AsyncResult(job.id) works out of the box.
        "result_backend": url,
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout_sec,
            **_restore_sweep(settings.visibility_timeout_sec),
            # Detect dead TCP connections instead of hanging on them.
            "socket_keepalive": True,
            "health_check_interval": 25,
        },
    }


def _restore_sweep(visibility_timeout_sec: int) -> dict[str, int]:
    """How often workers look for jobs whose worker died (unacked past the visibility timeout).

    kombu sweeps every ``interval * throttle`` seconds (10 x 10 = 100 s by default):
    fine for an hour's timeout, but it would leave a short one's jobs waiting up to
    100 s. Sweep about four times per timeout, at most kombu's default period.
    """
    period = max(1, min(100, visibility_timeout_sec // 4))
    interval = min(10, period)
    return {"unacked_restore_interval": interval, "unacked_restore_throttle": max(1, period // interval)}


@functools.cache
def _settings() -> dict[str, Any]:
    return build()


def __getattr__(name: str) -> Any:
    if name.startswith("_"):
        # Not a Celery setting: tools probe modules for such names (pytest asks every module
        # it collects for ``_mock_name``), and building would start the embedded server.
        raise AttributeError(name)
    values = _settings()
    if name in values:
        return values[name]
    raise AttributeError(name)


def __dir__() -> list[str]:
    # Celery lists a config module's keys with dir(): offer only the settings.
    return sorted(_settings())
