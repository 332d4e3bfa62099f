"""Production Celery settings from the environment.

Use with ``app.config_from_object("bridge.celeryconfig")``. The values are
computed on first access of a setting (module ``__getattr__``), not at import, so
the environment is read when Celery loads its configuration and a bad value
raises :class:`bridge.errors.ConfigError` naming the variable.

Only reading a setting's value builds the config (and, with the embedded
backend, starts its server). Probing the module does not: ``dir()`` lists the
settings' names, and any other name (``hasattr(m, "DEBUG")``, pytest's
``_mock_name``) is an ``AttributeError`` at once.

Override any setting after loading, as with any Celery config:
``app.conf.task_time_limit = 300``.
"""

from __future__ import annotations

import functools
from typing import Any

from bridge.core.backend import resolve_backend
from bridge.settings import Settings


def build(settings: Settings | None = None) -> dict[str, Any]:
    """Return the Celery settings for ``settings`` (default: from the environment).

    With the embedded backend this starts the server unless it runs.
    """
    return _build(settings or Settings.from_env(), start_server=True)


def _build(settings: Settings, *, start_server: bool) -> dict[str, Any]:
    broker = _broker(settings, start_server=start_server)
    return {
        **broker,
        "result_backend_transport_options": {
            "visibility_timeout": settings.visibility_timeout_sec,
            **broker.get("result_backend_transport_options", {}),
        },
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
        # Workers started before Redis keep retrying instead of exiting.
        "broker_connection_retry_on_startup": True,
        # Retry a publish whose connection dropped, a bounded number of times.
        "task_publish_retry": True,
        "task_publish_retry_policy": {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
        # Report STARTED, so a running job is told apart from a waiting one.
        "task_track_started": True,
        "worker_cancel_long_running_tasks_on_connection_loss": _cancels_on_connection_loss(settings),
        # One clock for schedules and ETAs across machines.
        "enable_utc": True,
        "timezone": "UTC",
    }


def _cancels_on_connection_loss(settings: Settings) -> bool:
    """Whether a worker stops its running jobs when the broker connection drops.

    Celery stops them because most brokers hand an unacked message out again as soon
    as the connection that held it is gone, so the job would run twice at once. On
    the bridge's Redis transport nothing is handed out before the visibility timeout:
    a job that runs on and succeeds is acked when the worker reconnects (an owed ack,
    ``bridge.redis.fetch``), so it runs once; stopping it would run it again if its
    effect was already done. Elsewhere (RabbitMQ, SQS) Celery's stop is kept from
    Celery 5.7; before, stopping could end the worker ("Unrecoverable error": the
    revoke fails against the unreachable result backend).
    """
    if settings.queue_backend in ("redis", "embedded"):
        return False
    return _celery_version() >= (5, 7)


def _celery_version() -> tuple[int, int]:
    from celery import VERSION

    return int(VERSION.major), int(VERSION.minor)


def _broker(settings: Settings, *, start_server: bool) -> dict[str, Any]:
    backend = resolve_backend(settings.queue_backend)
    if start_server:
        # The embedded server starts on demand: the first process of the app to load its config.
        backend.start_broker(settings)
    return backend.broker_settings(settings)


@functools.cache
def _settings() -> dict[str, Any]:
    return build()


@functools.cache
def _names() -> list[str]:
    # The same keys as _settings(), computed without starting a server.
    return sorted(_build(Settings.from_env(), start_server=False))


def __getattr__(name: str) -> Any:
    if name.startswith("_") or name not in _names():
        # Not a Celery setting: a probe (pytest asks every module it collects for
        # ``_mock_name``, other tools for DEBUG or __path__) must not build the config.
        raise AttributeError(name)
    return _settings()[name]


def __dir__() -> list[str]:
    # Celery lists a config module's keys with dir(): offer only the settings.
    return _names()
