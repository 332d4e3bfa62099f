"""The ``jobs`` command line (also ``celery -A APP jobs ...``).

Exit status: 0 on success, 2 on a configuration or usage error (one line, no
traceback), 1 on a backend failure. Every line printed is redacted of secrets.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from functools import wraps
from typing import Any, TypeVar

import click

from bridge.errors import BackendError, BridgeError, ConfigError
from bridge.redact import redact
from bridge.settings import Settings

__all__ = ["jobs", "main"]

F = TypeVar("F", bound=Callable[..., Any])


def _errors_to_exit_codes(func: F) -> F:
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

    return wrapper  # type: ignore[return-value]


@click.group(name="jobs", help="celery-jobs-bridge: inspect and control jobs.")
def jobs() -> None:
    """The ``jobs`` command group."""


@jobs.group(help="The embedded Valkey server of BRIDGE_HOME.")
def server() -> None:
    """``jobs server ...``."""


def _embedded() -> Any:
    from bridge.embedded import EmbeddedServer

    return EmbeddedServer(Settings.from_env().bridge_home)


@server.command(help="Show the server's socket, pid, version, memory and uptime.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_errors_to_exit_codes
def status(as_json: bool) -> None:
    state = _embedded().status()
    if as_json:
        click.echo(json.dumps(asdict(state)))
        return
    if not state.running:
        click.echo(f"not running (socket {state.socket})")
        return
    click.echo(
        f"running  pid {state.pid}  valkey {state.version}  memory {state.used_memory_human}  "
        f"uptime {state.uptime_s} s\nsocket   {state.socket}"
    )


@server.command(help="Start the server unless it runs (safe to run from many processes).")
@_errors_to_exit_codes
def start() -> None:
    embedded = _embedded()
    embedded.ensure_running()
    state = embedded.status()
    click.echo(f"running  pid {state.pid}  socket {state.socket}")


@server.command(help="Stop the server after flushing its append-only file.")
@_errors_to_exit_codes
def stop() -> None:
    click.echo("stopped" if _embedded().stop() else "was not running")


@jobs.group(help="Repeats fired by celery beat (jobs.schedule).")
def schedules() -> None:
    """``jobs schedules ...``."""


def _bridge(ctx: click.Context) -> Any:
    """The Bridge of ``celery -A APP jobs``, or one built from the environment for ``jobs``."""
    from bridge.registry import bridge_of

    app = getattr(ctx.find_root().obj, "app", None)
    if app is not None:
        return bridge_of(app)
    from celery import Celery

    from bridge.bridge import Bridge

    app = Celery("jobs-cli")
    app.config_from_object("celeryconfig")
    return Bridge(app)


@schedules.command(name="list", help="List the standing repeats.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of objects).")
@click.pass_context
@_errors_to_exit_codes
def schedules_list(ctx: click.Context, as_json: bool) -> None:
    repeats = _bridge(ctx).jobs.list()
    if as_json:
        click.echo(json.dumps([r.as_json() for r in repeats]))
        return
    if not repeats:
        click.echo("no repeats")
        return
    click.echo(f"{'name':24} {'key':16} {'rule':22} {'tz':16} {'next run (UTC)':25} runs")
    for r in repeats:
        rule = f"cron {r.cron}" if r.cron else f"every {r.every_ms} ms"
        nxt = r.next_run.isoformat(timespec="seconds") if r.next_run else "-"
        click.echo(f"{r.name:24} {r.idempotency_key or '-':16} {rule:22} {r.tz:16} {nxt:25} {r.run_count}")


@schedules.command(name="cancel", help="Cancel a repeat by its identity: name, key and cron or every-ms.")
@click.option("--name", required=True, help="Task name.")
@click.option("--key", default=None, help="Idempotency key the repeat was scheduled with.")
@click.option("--cron", default=None, help="Its cron expression.")
@click.option("--every-ms", type=int, default=None, help="Its interval in milliseconds.")
@click.pass_context
@_errors_to_exit_codes
def schedules_cancel(
    ctx: click.Context, name: str, key: str | None, cron: str | None, every_ms: int | None
) -> None:
    if (cron is None) == (every_ms is None):
        raise click.UsageError("give exactly one of --cron or --every-ms")
    removed = _bridge(ctx).jobs.cancel(name=name, idempotency_key=key, cron=cron, every_ms=every_ms)
    click.echo("cancelled" if removed else "not found")


def main() -> None:
    """Console-script entry point."""
    jobs(prog_name="jobs")


if __name__ == "__main__":
    main()
