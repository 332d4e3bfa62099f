"""``jobs schedules list|cancel``: the repeats fired by ``celery beat``."""

from __future__ import annotations

import click

from bridge.cli.common import errors_to_exit_codes, json_text, load_bridge
from bridge.core.redact import printable

__all__ = ["schedules"]


@click.group(
    help="Repeats (jobs.schedule), fired by celery beat or by EventBridge Scheduler (JOBS_SCHEDULER)."
)
def schedules() -> None:
    """``jobs schedules ...``."""


@schedules.command(name="list", help="List the standing repeats.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of objects).")
@click.pass_context
@errors_to_exit_codes
def schedules_list(ctx: click.Context, as_json: bool) -> None:
    repeats = load_bridge(ctx).jobs.list()
    if as_json:
        click.echo(json_text([r.as_json() for r in repeats]))
        return
    if not repeats:
        click.echo("no repeats")
        return
    click.echo(f"{'name':24} {'key':16} {'rule':22} {'tz':16} {'next run (UTC)':25} runs")
    for r in repeats:
        rule = f"cron {r.cron}" if r.cron else f"every {r.every_ms} ms"
        nxt = r.next_run.isoformat(timespec="seconds") if r.next_run else "-"
        name, key, tz = printable(r.name), printable(r.idempotency_key or "-"), printable(r.tz)
        click.echo(f"{name:24} {key:16} {rule:22} {tz:16} {nxt:25} {r.run_count}")


@schedules.command(name="cancel", help="Cancel a repeat by its identity: name, key and cron or every-ms.")
@click.option("--name", required=True, help="Task name.")
@click.option("--key", default=None, help="Idempotency key the repeat was scheduled with.")
@click.option("--cron", default=None, help="Its cron expression.")
@click.option("--every-ms", type=int, default=None, help="Its interval in milliseconds.")
@click.option("--json", "as_json", is_flag=True, help='Print {"cancelled": true|false}.')
@click.pass_context
@errors_to_exit_codes
def schedules_cancel(
    ctx: click.Context, name: str, key: str | None, cron: str | None, every_ms: int | None, as_json: bool
) -> None:
    if (cron is None) == (every_ms is None):
        raise click.UsageError("give exactly one of --cron or --every-ms")
    removed = load_bridge(ctx).jobs.cancel(name=name, idempotency_key=key, cron=cron, every_ms=every_ms)
    click.echo(json_text({"cancelled": removed}) if as_json else ("cancelled" if removed else "not found"))
