"""``jobs dlq list|retry|purge``: dead letters (Redis and the embedded server)."""

from __future__ import annotations

import sys
from typing import Any

import click

from bridge.cli.common import errors_to_exit_codes, json_text, load_bridge
from bridge.core.redact import printable
from bridge.errors import ConfigError

__all__ = ["dlq"]


@click.group(help="Dead letters: jobs that failed for good (Redis and the embedded server).")
def dlq() -> None:
    """``jobs dlq ...``."""


def _letters(ctx: click.Context) -> Any:
    return _bridge_and_letters(ctx)[1]


def _bridge_and_letters(ctx: click.Context) -> tuple[Any, Any]:
    bridge = load_bridge(ctx)
    if bridge.dead_letters is None:
        raise ConfigError("this backend keeps no dead letters here; for SQS use the queue's DLQ.")
    return bridge, bridge.dead_letters


@dlq.command(name="list", help="List a queue's dead letters, newest first.")
@click.option("--queue", default=None, help="Queue name (default: the app's task_default_queue).")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of objects).")
@click.pass_context
@errors_to_exit_codes
def dlq_list(ctx: click.Context, queue: str | None, limit: int, as_json: bool) -> None:
    bridge, letters = _bridge_and_letters(ctx)
    queue = queue or str(bridge.app.conf.task_default_queue)
    entries = letters.entries(queue, limit)
    if as_json:
        click.echo(json_text([e.as_json() for e in entries]))
        return
    if not entries:
        click.echo(f"no dead letters in {printable(queue)}")
    for e in entries:
        fields = [printable(e.id), printable(e.name), f"attempts={e.attempts}"]
        click.echo("  ".join(fields) + f"  {printable(e.exc_type)}: {printable(e.exc_message)[:120]}")


@dlq.command(
    name="retry", help="Re-enqueue dead letters with their job ids (removed from the list atomically)."
)
@click.option("--queue", required=True, help="Queue name.")
@click.option("--id", "job_id", default=None, help="One job id.")
@click.option("--all", "retry_all", is_flag=True, help="Every dead letter of the queue.")
@click.option("--json", "as_json", is_flag=True, help='Print {"retried": n}.')
@click.pass_context
@errors_to_exit_codes
def dlq_retry(ctx: click.Context, queue: str, job_id: str | None, retry_all: bool, as_json: bool) -> None:
    if (job_id is None) == (not retry_all):
        raise click.UsageError("give exactly one of --id or --all")
    retried = _letters(ctx).retry(queue, job_id)
    click.echo(json_text({"retried": retried}) if as_json else f"retried {retried}")


@dlq.command(name="purge", help="Delete a queue's dead letters (asks first, unless --yes).")
@click.option("--queue", required=True, help="Queue name.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help='Print {"purged": n}.')
@click.pass_context
@errors_to_exit_codes
def dlq_purge(ctx: click.Context, queue: str, yes: bool, as_json: bool) -> None:
    letters = _letters(ctx)
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("dlq purge deletes dead letters for good: confirm with --yes")
        click.confirm(f"Delete all {letters.count(queue)} dead letters of {queue!r}?", abort=True)
    purged = letters.purge(queue)
    click.echo(json_text({"purged": purged}) if as_json else f"purged {purged}")
