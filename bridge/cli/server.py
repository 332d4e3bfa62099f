"""``jobs server status|start|stop``: the embedded Valkey server of ``BRIDGE_HOME``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from bridge.cli.common import errors_to_exit_codes, json_text, load_settings
from bridge.core.redact import printable

__all__ = ["server"]


@click.group(help="The embedded Valkey server of BRIDGE_HOME.")
def server() -> None:
    """``jobs server ...``."""


def _embedded(ctx: click.Context) -> Any:
    from bridge.embedded.server import EmbeddedServer

    return EmbeddedServer(load_settings(ctx).bridge_home)


@server.command(help="Show the server's socket, pid, version, memory and uptime.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@errors_to_exit_codes
def status(ctx: click.Context, as_json: bool) -> None:
    state = _embedded(ctx).status()
    if as_json:
        click.echo(json_text(asdict(state)))
        return
    if not state.running:
        click.echo(f"not running (socket {printable(state.socket)})")
        return
    click.echo(
        f"running  pid {state.pid}  valkey {state.version}  memory {state.used_memory_human}  "
        f"uptime {state.uptime_s} s\nsocket   {printable(state.socket)}"
    )


@server.command(help="Start the server unless it runs (safe to run from many processes).")
@click.option("--json", "as_json", is_flag=True, help="Print the server's status as JSON.")
@click.pass_context
@errors_to_exit_codes
def start(ctx: click.Context, as_json: bool) -> None:
    embedded = _embedded(ctx)
    embedded.ensure_running()
    state = embedded.status()
    click.echo(json_text(asdict(state)) if as_json else f"running  pid {state.pid}  socket {state.socket}")


@server.command(help="Stop the server after flushing its append-only file.")
@click.option("--json", "as_json", is_flag=True, help='Print {"stopped": true|false}.')
@click.pass_context
@errors_to_exit_codes
def stop(ctx: click.Context, as_json: bool) -> None:
    stopped = _embedded(ctx).stop()
    click.echo(json_text({"stopped": stopped}) if as_json else ("stopped" if stopped else "was not running"))
