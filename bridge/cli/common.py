"""What every ``jobs`` command shares: the exit-code contract and how it finds the app's Bridge."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from bridge.core.redact import redact
from bridge.errors import BackendError, BridgeError, ConfigError

__all__ = ["errors_to_exit_codes", "load_bridge"]

F = TypeVar("F", bound=Callable[..., Any])


def errors_to_exit_codes(func: F) -> F:
    """Turn bridge errors into one redacted line and the documented exit status."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"jobs: configuration error: {redact(str(exc))}", err=True)
            sys.exit(2)
        except BackendError as exc:
            click.echo(f"jobs: backend error: {redact(str(exc))}", err=True)
            sys.exit(1)
        except BridgeError as exc:
            click.echo(f"jobs: {redact(str(exc))}", err=True)
            sys.exit(2)
        except Exception as exc:
            # A client error that escaped translation still gets one redacted line.
            if type(exc).__module__.split(".")[0] not in ("redis", "kombu", "botocore", "boto3"):
                raise
            click.echo(f"jobs: backend error: {type(exc).__name__}: {redact(str(exc))}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def load_bridge(ctx: click.Context) -> Any:
    """The Bridge of ``celery -A APP jobs``, or one built from the environment for ``jobs``."""
    from bridge.core.registry import bridge_of

    app = getattr(ctx.find_root().obj, "app", None)
    if app is not None:
        return bridge_of(app)
    from celery import Celery

    from bridge.bridge import Bridge

    app = Celery("jobs-cli")
    app.config_from_object("bridge.celeryconfig")
    return Bridge(app)
