"""The ``jobs`` command line (also ``celery -A APP jobs ...``).

Exit status: 0 on success, 2 on a configuration or usage error (one line, no
traceback), 1 on a backend failure. Every line printed is redacted of secrets.
"""

from __future__ import annotations

import click

from bridge import __version__
from bridge.cli.common import TARGET, Target, accept_app_after, one_target
from bridge.cli.dashboard.command import dashboard
from bridge.cli.dlq import dlq
from bridge.cli.dynamodb import dynamodb
from bridge.cli.schedules import schedules
from bridge.cli.server import server
from bridge.cli.sqs import sqs, stats_sqs
from bridge.cli.stats import metrics_server, stats

__all__ = ["jobs", "main"]


@click.group(name="jobs", help="celery-jobs-bridge: inspect and control jobs.")
@click.version_option(
    __version__, "--version", prog_name="jobs", message="%(prog)s (celery-jobs-bridge) %(version)s"
)
@click.option(
    "-A",
    "--app",
    "app_path",
    default=None,
    metavar="APP",
    help="Your Celery app, as for celery -A (module or module:attribute): its Bridge(app) is used.",
)
@click.option("--redis-url", default=None, metavar="URL",
              help="Without -A: the Redis to read (overrides REDIS_URL).")  # fmt: skip
@click.pass_context
def jobs(ctx: click.Context, app_path: str | None, redis_url: str | None) -> None:
    """The ``jobs`` command group."""
    one_target(app_path, redis_url)
    if app_path or redis_url or TARGET not in ctx.meta:
        ctx.meta[TARGET] = Target(app_path=app_path, redis_url=redis_url)


for command in (server, schedules, stats, dlq, metrics_server, sqs, stats_sqs, dynamodb, dashboard):
    jobs.add_command(command)
accept_app_after(jobs)


def main() -> None:
    """Console-script entry point."""
    jobs(prog_name="jobs")


if __name__ == "__main__":
    main()
