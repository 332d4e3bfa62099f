"""What every ``jobs`` command shares: the exit-code contract and how it finds the app's Bridge."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, NoReturn, TypeVar

import click

from bridge.core.redact import printable, redact
from bridge.errors import BackendError, BridgeError, ConfigError
from bridge.settings import Settings

__all__ = [
    "TARGET",
    "Target",
    "accept_app_after",
    "errors_to_exit_codes",
    "json_text",
    "load_bridge",
    "load_settings",
    "one_target",
]

#: Keys in ``click.Context.meta``: the command line's Target, and which server a command read.
TARGET = "bridge.cli.target"
SOURCE = "bridge.cli.source"

F = TypeVar("F", bound=Callable[..., Any])


def errors_to_exit_codes(func: F) -> F:
    """Turn bridge errors into one redacted line and the documented exit status.

    Without ``-A APP`` the command says which server it read: in its one error line,
    or, when it succeeded, as one line on stderr.
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = func(*args, **kwargs)
        except ConfigError as exc:
            _fail(f"configuration error: {exc}", 2)
        except BackendError as exc:
            _fail(f"backend error: {exc}", 1)
        except BridgeError as exc:
            _fail(str(exc), 2)
        except Exception as exc:
            # A client error that escaped translation still gets one redacted line.
            if type(exc).__module__.split(".")[0] not in ("redis", "kombu", "botocore", "boto3"):
                raise
            _fail(f"backend error: {type(exc).__name__}: {exc}", 1)
        source = _source()
        if source:
            click.echo(f"jobs: {source}", err=True)
        return result

    return wrapper  # type: ignore[return-value]


def json_text(value: Any, **options: Any) -> str:
    """``--json`` output: JSON (which escapes control characters itself), redacted like text."""
    return redact(json.dumps(value, **options))


def _source() -> str | None:
    ctx = click.get_current_context(silent=True)
    return None if ctx is None else ctx.meta.get(SOURCE)


def _fail(message: str, status: int) -> NoReturn:
    source = _source()
    click.echo(printable(f"jobs: {message}" + (f" ({source})" if source else "")), err=True)
    sys.exit(status)


@dataclass(frozen=True)
class Target:
    """What ``jobs [-A APP] [--redis-url URL]`` points at (in ``ctx.meta``; celery owns ``ctx.obj``)."""

    app_path: str | None = None
    redis_url: str | None = None


def one_target(app_path: str | None, redis_url: str | None) -> None:
    """Refuse ``-A APP`` with ``--redis-url``, wherever each was given."""
    if app_path and redis_url:
        raise click.UsageError("give -A APP or --redis-url, not both: the app names its own Redis")


def accept_app_after(command: click.Command) -> None:
    """Let ``-A APP`` and ``--redis-url URL`` also follow a subcommand (``jobs dashboard -A proj``),
    as ``-A`` follows ``celery``'s (``celery worker -A proj``): every command under ``command`` takes them."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            accept_app_after(sub)
        return

    def name_target(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if not value:
            return
        given = Target(app_path=value) if param.name == "app" else Target(redis_url=value)
        target = _target(ctx)  # what the options before the command named
        one_target(given.app_path or target.app_path, given.redis_url or target.redis_url)
        ctx.meta[TARGET] = given

    command.params += [
        click.Option(["-A", "--app"], metavar="APP", expose_value=False, callback=name_target,
                     help="Your Celery app, as for celery -A (also accepted before the command)."),
        click.Option(["--redis-url"], metavar="URL", expose_value=False, callback=name_target,
                     help="Without -A: the Redis to read (also accepted before the command)."),
    ]  # fmt: skip


def _target(ctx: click.Context) -> Target:
    target = ctx.meta.get(TARGET)
    return target if isinstance(target, Target) else Target()


def _app(ctx: click.Context) -> Any:
    """The app of ``jobs -A APP`` or ``celery -A APP jobs``; None when neither names one."""
    target = _target(ctx)
    if target.app_path:
        from celery.app.utils import find_app

        try:
            return find_app(target.app_path)
        except Exception as exc:  # an app module that fails to import: one line, as celery -A says
            if isinstance(exc, BridgeError):
                raise
            raise ConfigError(
                f"-A {target.app_path}: cannot load the app: {type(exc).__name__}: {exc}"
            ) from None
    return getattr(ctx.find_root().obj, "app", None)


def load_settings(ctx: click.Context) -> Settings:
    """The settings of the app (``-A``), else of the environment with ``--redis-url`` over REDIS_URL."""
    app = _app(ctx)
    if app is not None:
        from bridge.core.registry import bridge_of

        return bridge_of(app).settings
    environ = dict(os.environ)
    if _target(ctx).redis_url:
        environ["REDIS_URL"] = _target(ctx).redis_url or ""
    return Settings.from_env(environ)


def load_bridge(ctx: click.Context) -> Any:
    """The Bridge of ``-A APP`` (or ``celery -A APP jobs``), or one built from the environment.

    Without an app this says on stderr which server it reads, and it never starts an
    embedded server where none runs (``jobs server start`` does that).
    """
    app = _app(ctx)
    if app is not None:
        from bridge.core.registry import bridge_of

        return bridge_of(app)
    from celery import Celery

    from bridge import celeryconfig
    from bridge.bridge import Bridge
    from bridge.embedded.server import EmbeddedServer

    settings = load_settings(ctx)
    if settings.queue_backend == "embedded":
        server = EmbeddedServer(settings.bridge_home)
        if not server.status().running:
            raise ConfigError(
                f"no -A APP given, no REDIS_URL set, and no embedded server runs in BRIDGE_HOME="
                f"{settings.bridge_home}: name your app with -A APP, give --redis-url URL, run from the "
                "folder your app runs in (or set BRIDGE_HOME), or start one with `jobs server start`."
            )
        where = f"the embedded server in {settings.bridge_home}"
    elif settings.redis_url:
        source = "--redis-url" if _target(ctx).redis_url else "REDIS_URL"
        where = f"{source} {redact(settings.redis_url)}"
    else:
        where = f"QUEUE_BACKEND={settings.queue_backend}"
    ctx.meta[SOURCE] = f"no -A APP given; read {where}"
    app = Celery("jobs-cli")
    app.config_from_object(celeryconfig.build(settings))
    return Bridge(app, settings=settings)
