"""The ``jobs dashboard`` command: checks the safety rules, then serves the dashboard with uvicorn."""

from __future__ import annotations

import socket

import click

from bridge.cli.common import errors_to_exit_codes, load_bridge
from bridge.errors import ConfigError

__all__ = ["dashboard"]


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket (so ``--port 0`` can say which port it got)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"--host {host}: cannot be resolved ({exc.strerror}).") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}).") from None
    sock.listen(128)
    return sock


@click.command(help="Serve a web dashboard of queues, delayed jobs, repeats and dead letters.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; any but loopback needs JOBS_DASHBOARD_TOKEN.")  # fmt: skip
@click.option("--port", type=int, default=9181, show_default=True)
@click.option("--queues", "queues_text", default=None,
              help="Comma-separated queues to show besides those the app configures.")  # fmt: skip
@click.option("--read-only", is_flag=True, help="Show no actions, and refuse every POST.")
@click.pass_context
@errors_to_exit_codes
def dashboard(ctx: click.Context, host: str, port: int, queues_text: str | None, read_only: bool) -> None:
    from bridge.cli.metrics import is_loopback
    from bridge.stats import parse_queues

    queues = parse_queues(queues_text) if queues_text is not None else []
    try:
        import uvicorn

        from bridge.cli.dashboard.app import create_app
        from bridge.cli.dashboard.security import Security
    except ImportError as exc:
        raise ConfigError(
            f"jobs dashboard needs the dashboard extra ({exc.name} is missing): "
            "pip install 'celery-jobs-bridge[dashboard]'."
        ) from None
    bridge = load_bridge(ctx)
    token = bridge.settings.dashboard_token
    loopback = is_loopback(host)
    if not loopback and not token:
        raise ConfigError(
            f"--host {host} is reachable from other machines, and the dashboard can retry, cancel and "
            "purge jobs: set JOBS_DASHBOARD_TOKEN (every request then needs a login), or bind 127.0.0.1."
        )
    security = Security(token=token, read_only=read_only, loopback_only=loopback, host=host)
    app = create_app(bridge, security, queues)
    sock = _listen(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    mode = " (read-only)" if read_only else ""
    click.echo(f"serving http://{shown_host}:{sock.getsockname()[1]}/{mode}")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
