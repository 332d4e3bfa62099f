"""``jobs server status|start|stop``: the embedded Valkey server of ``BRIDGE_HOME``."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click

from bridge.cli.common import errors_to_exit_codes
from bridge.settings import Settings

__all__ = ["server"]


@click.group(help="The embedded Valkey server of BRIDGE_HOME.")
def server() -> None:
    """``jobs server ...``."""


def _embedded() -> Any:
    from bridge.embedded.server import EmbeddedServer

    return EmbeddedServer(Settings.from_env().bridge_home)


@server.command(help="Show the server's socket, pid, version, memory and uptime.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@errors_to_exit_codes
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
@errors_to_exit_codes
def start() -> None:
    embedded = _embedded()
    embedded.ensure_running()
    state = embedded.status()
    click.echo(f"running  pid {state.pid}  socket {state.socket}")


@server.command(help="Stop the server after flushing its append-only file.")
@errors_to_exit_codes
def stop() -> None:
    click.echo("stopped" if _embedded().stop() else "was not running")
