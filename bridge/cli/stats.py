"""``jobs stats`` and ``jobs metrics-server``: queue counts as a table, JSON or Prometheus metrics."""

from __future__ import annotations

from typing import Any

import click

from bridge.cli.common import errors_to_exit_codes, json_text, load_bridge
from bridge.core.redact import printable
from bridge.errors import ConfigError

__all__ = ["metrics_server", "stats"]


_STATES = ("waiting", "active", "delayed", "scheduled", "failed")
QUEUES_HELP = (
    "Comma-separated queue names. Default: the queues the app's config names (task_default_queue, "
    "JOBS_QUEUE_NAME, task_queues, task_routes); without -A, celery,app:jobs."
)


def _stats_table(counts: dict[str, Any]) -> str:
    shown = {printable(q): c for q, c in counts.items()}
    width = max(len("queue"), *(len(q) for q in shown))
    lines = [f"{'queue':<{width}}  " + "  ".join(f"{s:>9}" for s in _STATES)]
    for queue, c in shown.items():
        lines.append(f"{queue:<{width}}  " + "  ".join(f"{getattr(c, s):>9}" for s in _STATES))
    return "\n".join(lines)


@click.command(help="Counts per queue: waiting, active, delayed, scheduled repeats, failed (dead letters).")
@click.option("--queues", "queues_text", default=None, metavar="A,B",
              help=QUEUES_HELP)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help='Print {"queue": {"waiting": n, ...}}.')
@click.option("--prometheus", is_flag=True, help="Print the Prometheus text format.")
@click.option(
    "--watch", type=float, default=None, metavar="SECONDS", help="Redraw every SECONDS until Ctrl-C."
)
@click.pass_context
@errors_to_exit_codes
def stats(ctx: click.Context, queues_text: str, as_json: bool, prometheus: bool, watch: float | None) -> None:
    from bridge.cli.metrics import exposition
    from bridge.stats import configured_queues, parse_queues

    queues = parse_queues(queues_text) if queues_text is not None else None
    if watch is not None and watch <= 0:
        raise click.UsageError("--watch takes a positive number of seconds")
    bridge = load_bridge(ctx)
    queues = queues or configured_queues(bridge.app.conf, bridge.jobs_queue)

    def render() -> str:
        counts = bridge.stats(queues)
        if as_json:
            return json_text({q: c.as_json() for q, c in counts.items()})
        if prometheus:
            return exposition(counts).rstrip("\n")
        return _stats_table(counts)

    if watch is None:
        click.echo(render())
        return
    import time

    try:
        while True:
            frame = render()
            click.echo("\x1b[H\x1b[2J" + frame, nl=True)  # home and clear: redraw in place
            time.sleep(watch)
    except KeyboardInterrupt:
        return


@click.command(name="metrics-server", help="Serve the queue counts as Prometheus /metrics.")
@click.option("--queues", "queues_text", default=None, metavar="A,B", help=QUEUES_HELP)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9808, show_default=True)
@click.pass_context
@errors_to_exit_codes
def metrics_server(ctx: click.Context, queues_text: str, host: str, port: int) -> None:
    import time

    from bridge.cli.metrics import is_loopback, serve
    from bridge.stats import configured_queues, parse_queues

    queues = parse_queues(queues_text) if queues_text is not None else None
    bridge = load_bridge(ctx)
    queues = queues or configured_queues(bridge.app.conf, bridge.jobs_queue)
    token = bridge.settings.dashboard_token
    try:
        server = serve(lambda: bridge.stats(queues), host, port, token=token)
    except OSError as exc:  # a port in use is a usage error, not a traceback
        raise ConfigError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}).") from None
    if not is_loopback(host) and not token:
        click.echo(
            f"jobs: warning: --host {host} is reachable from other machines and no JOBS_DASHBOARD_TOKEN "
            "is set: anyone who reaches the port reads the queue names and counts. Set "
            "JOBS_DASHBOARD_TOKEN (scrapers then send Authorization: Bearer <token>), or bind 127.0.0.1.",
            err=True,
        )
    click.echo(f"serving http://{host}:{server.server_address[1]}/metrics for {', '.join(queues)}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
