"""Celery broker settings for a Redis broker (Redis itself, or the embedded server)."""

from __future__ import annotations

from typing import Any

from bridge.core.connect import is_sentinel
from bridge.settings import Settings

__all__ = ["redis_settings"]


def redis_settings(url: str, settings: Settings) -> dict[str, Any]:
    """Broker and result backend on ``url``, with the transport options the bridge relies on."""
    # A Sentinel URL: kombu and Celery's result backend both find the primary by this name.
    primary = {"master_name": settings.redis_sentinel_master} if is_sentinel(url) else {}
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
            **primary,
        },
        "result_backend_transport_options": primary,
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
