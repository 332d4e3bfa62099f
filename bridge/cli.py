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

from bridge.errors import BackendError, BridgeError, ConfigError, InvalidInput
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
        except Exception as exc:
            # A client error that escaped translation still gets one redacted line.
            if type(exc).__module__.split(".")[0] not in ("redis", "kombu", "botocore", "boto3"):
                raise
            click.echo(f"jobs: backend error: {type(exc).__name__}: {redact(str(exc))}", err=True)
            sys.exit(1)

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


_STATES = ("waiting", "active", "delayed", "scheduled", "failed")


def _stats_table(counts: dict[str, Any]) -> str:
    width = max(len("queue"), *(len(q) for q in counts))
    lines = [f"{'queue':<{width}}  " + "  ".join(f"{s:>9}" for s in _STATES)]
    for queue, c in counts.items():
        lines.append(f"{queue:<{width}}  " + "  ".join(f"{getattr(c, s):>9}" for s in _STATES))
    return "\n".join(lines)


@jobs.command(help="Counts per queue: waiting, active, delayed, scheduled repeats, failed (dead letters).")
@click.option("--queues", "queues_text", default="celery,app:jobs", show_default=True,
              help="Comma-separated queue names.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help='Print {"queue": {"waiting": n, ...}}.')
@click.option("--prometheus", is_flag=True, help="Print the Prometheus text format.")
@click.option(
    "--watch", type=float, default=None, metavar="SECONDS", help="Redraw every SECONDS until Ctrl-C."
)
@click.pass_context
@_errors_to_exit_codes
def stats(ctx: click.Context, queues_text: str, as_json: bool, prometheus: bool, watch: float | None) -> None:
    from bridge.metrics import exposition
    from bridge.stats import parse_queues

    queues = parse_queues(queues_text)
    if watch is not None and watch <= 0:
        raise click.UsageError("--watch takes a positive number of seconds")
    bridge = _bridge(ctx)

    def render() -> str:
        counts = bridge.stats(queues)
        if as_json:
            return json.dumps({q: c.as_json() for q, c in counts.items()})
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


@jobs.group(help="Dead letters: jobs that failed for good (Redis and the embedded server).")
def dlq() -> None:
    """``jobs dlq ...``."""


def _letters(ctx: click.Context) -> Any:
    letters = _bridge(ctx).dead_letters
    if letters is None:
        raise ConfigError("this backend keeps no dead letters here; for SQS use the queue's DLQ.")
    return letters


@dlq.command(name="list", help="List a queue's dead letters, newest first.")
@click.option("--queue", required=True, help="Queue name.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of objects).")
@click.pass_context
@_errors_to_exit_codes
def dlq_list(ctx: click.Context, queue: str, limit: int, as_json: bool) -> None:
    entries = _letters(ctx).entries(queue, limit)
    if as_json:
        click.echo(json.dumps([e.as_json() for e in entries]))
        return
    if not entries:
        click.echo(f"no dead letters in {queue}")
    for e in entries:
        click.echo(f"{e.id}  {e.name}  attempts={e.attempts}  {e.exc_type}: {redact(e.exc_message)[:120]}")


@dlq.command(
    name="retry", help="Re-enqueue dead letters with their job ids (removed from the list atomically)."
)
@click.option("--queue", required=True, help="Queue name.")
@click.option("--id", "job_id", default=None, help="One job id.")
@click.option("--all", "retry_all", is_flag=True, help="Every dead letter of the queue.")
@click.pass_context
@_errors_to_exit_codes
def dlq_retry(ctx: click.Context, queue: str, job_id: str | None, retry_all: bool) -> None:
    if (job_id is None) == (not retry_all):
        raise click.UsageError("give exactly one of --id or --all")
    click.echo(f"retried {_letters(ctx).retry(queue, job_id)}")


@dlq.command(name="purge", help="Delete a queue's dead letters.")
@click.option("--queue", required=True, help="Queue name.")
@click.pass_context
@_errors_to_exit_codes
def dlq_purge(ctx: click.Context, queue: str) -> None:
    click.echo(f"purged {_letters(ctx).purge(queue)}")


@jobs.command(name="metrics-server", help="Serve the queue counts as Prometheus /metrics.")
@click.option("--queues", "queues_text", default="celery,app:jobs", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9808, show_default=True)
@click.pass_context
@_errors_to_exit_codes
def metrics_server(ctx: click.Context, queues_text: str, host: str, port: int) -> None:
    import time

    from bridge.metrics import serve
    from bridge.stats import parse_queues

    queues = parse_queues(queues_text)
    bridge = _bridge(ctx)
    try:
        server = serve(lambda: bridge.stats(queues), host, port)
    except OSError as exc:  # a port in use is a usage error, not a traceback
        raise ConfigError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}).") from None
    click.echo(f"serving http://{host}:{server.server_address[1]}/metrics for {', '.join(queues)}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()


@jobs.group(help="Amazon SQS queues (credentials from the AWS chain; AWS_ENDPOINT_URL_SQS for an emulator).")
def sqs() -> None:
    """``jobs sqs ...``."""


@sqs.command(name="ensure-queue", help="Create or check a queue and its dead-letter queue (idempotent).")
@click.argument("name_or_url")
@click.option("--fifo", is_flag=True, help="A FIFO queue (its name ends in .fifo).")
@click.option("--dlq", default=None, help="Name of the dead-letter queue to create and attach.")
@click.option("--max-receive-count", type=int, default=5, show_default=True, help="Receives before redrive.")
@click.option("--visibility-timeout", type=int, default=None, help="Seconds (0-43200).")
@_errors_to_exit_codes
def sqs_ensure_queue(
    name_or_url: str, fifo: bool, dlq: str | None, max_receive_count: int, visibility_timeout: int | None
) -> None:
    from bridge.sqs_admin import SqsAdmin

    admin = SqsAdmin(Settings.from_env())
    url = admin.ensure_queue(
        name_or_url,
        fifo=fifo,
        dlq=dlq,
        max_receive_count=max_receive_count,
        visibility_timeout=visibility_timeout,
    )
    click.echo(url)


@sqs.command(
    name="iam-policy",
    help="Print a least-privilege IAM policy (JSON) for SQS_QUEUE_URL, the --queue URLs and their DLQs.",
)
@click.option("--queue", "queues", multiple=True, help="Another queue URL (repeatable).")
@click.option("--dlq", "dlqs", multiple=True, help="A dead-letter queue's ARN or URL (repeatable).")
@click.option("--role", type=click.Choice(["producer", "worker", "both"]), default="both", show_default=True,
              help="Whose permissions: one statement per role.")  # fmt: skip
@_errors_to_exit_codes
def sqs_iam_policy(queues: tuple[str, ...], dlqs: tuple[str, ...], role: str) -> None:
    from botocore.config import Config

    from bridge.sqs_admin import SqsAdmin
    from bridge.sqs_iam import arn_of, lookup_dlq, policy

    settings = Settings.from_env()
    region = settings.aws_region
    urls = [("SQS_QUEUE_URL", settings.sqs_queue_url)] if settings.sqs_queue_url else []
    urls += [("--queue", url) for url in queues]
    for field, url in urls:
        if url.startswith("arn:"):
            raise InvalidInput(field, f"{url!r} is an ARN; give the queue's URL (its DLQ is looked up).")
    queue_arns = [arn_of(url, field=field, region=region) for field, url in urls]
    dlq_arns = [arn_of(value, field="--dlq", region=region) for value in dlqs]
    document = policy(queue_arns, dlq_arns, role)  # refuses an empty queue list before any call
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
        document = policy(queue_arns, dlq_arns, role)
    click.echo(json.dumps(document, indent=2))


@jobs.command(
    name="stats-sqs", help="Approximate visible, in-flight and delayed counts of SQS queues and DLQs."
)
@click.option("--queue-url", "urls", multiple=True, help="Queue URL (repeatable; default SQS_QUEUE_URL).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of objects, DLQ nested).")
@_errors_to_exit_codes
def stats_sqs(urls: tuple[str, ...], as_json: bool) -> None:
    from bridge.sqs_admin import SqsAdmin

    settings = Settings.from_env()
    targets = list(urls) or ([settings.sqs_queue_url] if settings.sqs_queue_url else [])
    if not targets:
        raise ConfigError("no queue: pass --queue-url URL or set SQS_QUEUE_URL.")
    admin = SqsAdmin(settings)
    infos = [admin.counts(url) for url in targets]
    if as_json:
        click.echo(json.dumps([info.as_json() for info in infos]))
        return
    click.echo(f"{'queue':60} {'visible':>8} {'in flight':>10} {'delayed':>8}")
    for info in infos:
        for label, row in ((info.url, info), (f"  dlq {info.dlq.url}" if info.dlq else "", info.dlq)):
            if row is not None:
                click.echo(f"{redact(label):60} {row.visible:>8} {row.in_flight:>10} {row.delayed:>8}")


def main() -> None:
    """Console-script entry point."""
    jobs(prog_name="jobs")


if __name__ == "__main__":
    main()
