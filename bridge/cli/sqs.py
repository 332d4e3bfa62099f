"""``jobs sqs ensure-queue|iam-policy`` and ``jobs stats-sqs``: Amazon SQS queues."""

from __future__ import annotations

import click

from bridge.cli.common import errors_to_exit_codes, json_text, load_settings
from bridge.core.redact import printable, redact
from bridge.errors import BridgeError, ConfigError, InvalidInput

__all__ = ["sqs", "stats_sqs"]


@click.group(help="Amazon SQS queues (credentials from the AWS chain; AWS_ENDPOINT_URL_SQS for an emulator).")
def sqs() -> None:
    """``jobs sqs ...``."""


@sqs.command(name="ensure-queue", help="Create or check a queue and its dead-letter queue (idempotent).")
@click.argument("name_or_url")
@click.option("--fifo", is_flag=True, help="A FIFO queue (its name ends in .fifo).")
@click.option("--dlq", default=None, help="Name of the dead-letter queue to create and attach.")
@click.option("--max-receive-count", type=int, default=5, show_default=True, help="Receives before redrive.")
@click.option("--visibility-timeout", type=int, default=None, help="Seconds (0-43200).")
@click.option("--json", "as_json", is_flag=True, help='Print {"url": the queue URL}.')
@click.pass_context
@errors_to_exit_codes
def sqs_ensure_queue(
    ctx: click.Context, name_or_url: str, fifo: bool, dlq: str | None, max_receive_count: int,
    visibility_timeout: int | None, as_json: bool,
) -> None:  # fmt: skip
    from bridge.sqs.admin import SqsAdmin

    admin = SqsAdmin(load_settings(ctx))
    url = admin.ensure_queue(
        name_or_url,
        fifo=fifo,
        dlq=dlq,
        max_receive_count=max_receive_count,
        visibility_timeout=visibility_timeout,
    )
    click.echo(json_text({"url": url}) if as_json else url)


@sqs.command(
    name="iam-policy",
    help="Print a least-privilege IAM policy (JSON) for SQS_QUEUE_URL, the --queue URLs, their DLQs "
    "and DYNAMODB_TABLE (when guards or locks are in DynamoDB).",
)
@click.option("--queue", "queues", multiple=True, help="Another queue URL (repeatable).")
@click.option("--dlq", "dlqs", multiple=True, help="A dead-letter queue's ARN or URL (repeatable).")
@click.option("--role", type=click.Choice(["producer", "worker", "both"]), default="both", show_default=True,
              help="Whose permissions: one statement per role.")  # fmt: skip
@click.pass_context
@errors_to_exit_codes
def sqs_iam_policy(ctx: click.Context, queues: tuple[str, ...], dlqs: tuple[str, ...], role: str) -> None:
    from botocore.config import Config

    from bridge.sqs.admin import SqsAdmin
    from bridge.sqs.iam import arn_of, lookup_dlq, policy, schedule_statements, table_arn

    settings = load_settings(ctx)
    region = settings.aws_region
    urls = [("SQS_QUEUE_URL", settings.sqs_queue_url)] if settings.sqs_queue_url else []
    urls += [("--queue", url) for url in queues]
    for field, url in urls:
        if url.startswith("arn:"):
            raise InvalidInput(field, f"{url!r} is an ARN; give the queue's URL (its DLQ is looked up).")
    queue_arns = [arn_of(url, field=field, region=region) for field, url in urls]
    dlq_arns = [arn_of(value, field="--dlq", region=region) for value in dlqs]
    uses_table = "dynamodb" in (settings.guard_store, settings.lock_backend) and settings.dynamodb_table
    tables = [table_arn(settings.dynamodb_table or "", queue_arns[0])] if uses_table and queue_arns else []
    schedules = []
    if settings.jobs_scheduler == "eventbridge" and queue_arns and settings.jobs_scheduler_role_arn:
        schedules = schedule_statements(queue_arns[0], settings.jobs_schedule_group,
                                        settings.jobs_scheduler_role_arn)  # fmt: skip
    document = policy(queue_arns, dlq_arns, role, tables, schedules)  # refuses an empty queue list first
    try:
        # Short timeouts, one retry: an unreachable queue must not hold the command for a minute.
        retries = {"max_attempts": 2, "mode": "standard"}
        admin = SqsAdmin(settings, config=Config(connect_timeout=5, read_timeout=10, retries=retries))
        for _field, url in urls:
            found = lookup_dlq(admin, url)
            if found is not None:
                dlq_arns.append(found)
    except BridgeError as exc:
        click.echo(
            f"jobs: the dead-letter queues could not be looked up ({redact(str(exc))}); the policy "
            "covers the given queues only: pass --dlq ARN for each DLQ.",
            err=True,
        )
    else:
        document = policy(queue_arns, dlq_arns, role, tables, schedules)
    click.echo(json_text(document, indent=2))


@click.command(
    name="stats-sqs", help="Approximate visible, in-flight and delayed counts of SQS queues and DLQs."
)
@click.option("--queue-url", "urls", multiple=True, help="Queue URL (repeatable; default SQS_QUEUE_URL).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of objects, DLQ nested).")
@click.pass_context
@errors_to_exit_codes
def stats_sqs(ctx: click.Context, urls: tuple[str, ...], as_json: bool) -> None:
    from bridge.sqs.admin import SqsAdmin

    settings = load_settings(ctx)
    targets = list(urls) or ([settings.sqs_queue_url] if settings.sqs_queue_url else [])
    if not targets:
        raise ConfigError("no queue: pass --queue-url URL or set SQS_QUEUE_URL.")
    admin = SqsAdmin(settings)
    infos = [admin.counts(url) for url in targets]
    if as_json:
        click.echo(json_text([info.as_json() for info in infos]))
        return
    click.echo(f"{'queue':60} {'visible':>8} {'in flight':>10} {'delayed':>8}")
    for info in infos:
        for label, row in ((info.url, info), (f"  dlq {info.dlq.url}" if info.dlq else "", info.dlq)):
            if row is not None:
                click.echo(f"{printable(label):60} {row.visible:>8} {row.in_flight:>10} {row.delayed:>8}")
