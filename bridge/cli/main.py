"""The ``jobs`` command line (also ``celery -A APP jobs ...``).

Exit status: 0 on success, 2 on a configuration or usage error (one line, no
traceback), 1 on a backend failure. Every line printed is redacted of secrets.
"""

from __future__ import annotations

import click

from bridge.cli.dlq import dlq
from bridge.cli.schedules import schedules
from bridge.cli.server import server
from bridge.cli.sqs import sqs, stats_sqs
from bridge.cli.stats import metrics_server, stats

__all__ = ["jobs", "main"]


@click.group(name="jobs", help="celery-jobs-bridge: inspect and control jobs.")
def jobs() -> None:
    """The ``jobs`` command group."""


for command in (server, schedules, stats, dlq, metrics_server, sqs, stats_sqs):
    jobs.add_command(command)


def main() -> None:
    """Console-script entry point."""
    jobs(prog_name="jobs")


if __name__ == "__main__":
    main()
