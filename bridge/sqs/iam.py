"""A least-privilege IAM policy for the bridge's SQS queues (``jobs sqs iam-policy``).

The actions are exactly the SQS API calls the bridge and kombu's SQS transport
make with predefined queues (``celeryconfig`` always predefines the queue, so no
``ListQueues``/``CreateQueue`` is needed at run time):

producer
    ``SendMessage`` (``queue.add``, ``jobs.schedule``), ``GetQueueAttributes``
    (the queue's ``MaximumMessageSize``, checked before a send).
worker
    ``ReceiveMessage``; ``DeleteMessage`` (ack); ``ChangeMessageVisibility``
    (the visibility heartbeat's batch call, kombu's release of prefetched
    messages and its retry back-off; the ``...Batch`` calls share this IAM
    action); ``GetQueueAttributes`` (the heartbeat reads the visibility timeout,
    kombu reads the redrive policy on reject); ``SendMessage`` (Celery retries
    and delay hops re-publish).
dead-letter queues
    ``GetQueueAttributes`` and ``GetQueueUrl``, which ``jobs stats-sqs`` uses to
    count them. SQS itself moves messages into a DLQ: no role sends there.

guard table (``GUARD_STORE=dynamodb`` or ``LOCK_BACKEND=dynamodb``)
    ``GetItem`` (tombstones, ``@idempotent`` results, a lock's holder),
    ``PutItem`` (claims, tombstones, results), ``DeleteItem`` (a claim freed after
    a failed send, a finished job's key), ``UpdateItem`` (locks and leases), on
    the one table: no ``Scan``, ``Query`` or batch call is made. Creating the
    table (``jobs dynamodb ensure-table``) is an administrator's act, not in here.

schedules (``JOBS_SCHEDULER=eventbridge``)
    the producer's ``scheduler:CreateSchedule``, ``UpdateSchedule``,
    ``DeleteSchedule``, ``GetSchedule`` (``jobs.schedule``/``cancel``/``list``),
    ``ListSchedules`` and ``CreateScheduleGroup`` on the app's schedule group, and
    ``iam:PassRole`` of ``JOBS_SCHEDULER_ROLE_ARN`` to EventBridge Scheduler only.
    That role itself needs ``sqs:SendMessage`` on the queue and a trust policy for
    ``scheduler.amazonaws.com``.

Every statement names its queue, table, group or role ARNs; a schedule group's
ARN ends in ``/*`` (its schedules), and without ``JOBS_SCHEDULE_GROUP`` the group
is ``bridge-*`` (the default group is named after the app).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bridge.errors import InvalidInput

if TYPE_CHECKING:
    from bridge.sqs.admin import SqsAdmin

__all__ = [
    "ROLES", "QueueArn", "arn_of", "dlq_arn_from_redrive", "lookup_dlq", "policy", "schedule_statements",
    "table_arn",
]  # fmt: skip

ROLES = ("producer", "worker", "both")

PRODUCER_ACTIONS = ("sqs:GetQueueAttributes", "sqs:SendMessage")
WORKER_ACTIONS = (
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ReceiveMessage",
    "sqs:SendMessage",
)
DLQ_ACTIONS = ("sqs:GetQueueAttributes", "sqs:GetQueueUrl")
TABLE_ACTIONS = ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
# DynamoDB's naming rules: 3-255 characters of letters, digits, '_', '-' and '.'.
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")

# SQS's naming rules: 1-80 characters of letters, digits, '-' and '_', plus '.fifo'.
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$")
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
# sqs.REGION.amazonaws.com[.cn], the legacy REGION.queue.amazonaws.com, and VPC endpoints
# (vpce-....sqs.REGION.vpce.amazonaws.com).
_AWS_HOST = re.compile(
    r"^(?:sqs\.(?P<a>[a-z0-9-]+)|(?P<b>[a-z0-9-]+)\.queue|vpce-[a-z0-9-]+\.sqs\.(?P<c>[a-z0-9-]+)\.vpce)"
    r"\.amazonaws\.com(?:\.cn)?$"
)
_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sqs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<name>.+)$"
)


@dataclass(frozen=True)
class QueueArn:
    """An SQS queue's ARN, ``arn:PARTITION:sqs:REGION:ACCOUNT:NAME``."""

    partition: str
    region: str
    account: str
    name: str

    def __str__(self) -> str:
        return f"arn:{self.partition}:sqs:{self.region}:{self.account}:{self.name}"


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def arn_of(value: str, *, field: str, region: str | None = None) -> QueueArn:
    """The ARN of a queue given by URL (``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME``) or ARN.

    The region comes from an AWS host name, else from ``region`` (AWS_REGION), as
    for a local emulator's URL (``http://127.0.0.1:4566/ACCOUNT/NAME``).

    Raises:
        InvalidInput: ``value`` is not an SQS queue URL or ARN; the message names ``field``.
    """
    text = value.strip()
    found = _ARN.match(text)
    if found:
        if not _QUEUE_NAME.match(found["name"]):
            raise InvalidInput(field, f"{value!r} is an ARN, but {found['name']!r} is not an SQS queue name.")
        return QueueArn(found["partition"], found["region"], found["account"], found["name"])
    try:
        parts = urlsplit(text)
    except ValueError:
        parts = None
    segments = [s for s in parts.path.split("/") if s] if parts else []
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or len(segments) != 2:
        raise InvalidInput(
            field,
            f"{value!r} is not an SQS queue URL; use https://sqs.REGION.amazonaws.com/ACCOUNT/NAME "
            "(or the queue's ARN).",
        )
    account, name = segments
    if not _ACCOUNT.match(account) or not _QUEUE_NAME.match(name):
        raise InvalidInput(
            field,
            f"{value!r} is not an SQS queue URL: its path must be /ACCOUNT/NAME with a 12-digit "
            "account id and a queue name of letters, digits, '-' and '_'.",
        )
    host = _AWS_HOST.match(parts.hostname)
    url_region = (host["a"] or host["b"] or host["c"]) if host else None
    chosen = url_region or region
    if not chosen or not _REGION.match(chosen):
        raise InvalidInput(
            field, f"the region of {value!r} is not in its host name; set AWS_REGION (e.g. eu-west-1)."
        )
    return QueueArn(_partition(chosen), chosen, account, name)


def table_arn(name: str, queue: QueueArn) -> str:
    """The ARN of the guard table ``name``, in the account and region of ``queue``.

    Raises:
        InvalidInput: ``name`` is not a DynamoDB table name.
    """
    if not _TABLE_NAME.match(name):
        raise InvalidInput(
            "DYNAMODB_TABLE", f"{name!r} is not a DynamoDB table name (3-255 letters, digits, '_', '-', '.')."
        )
    return f"arn:{queue.partition}:dynamodb:{queue.region}:{queue.account}:table/{name}"


SCHEDULE_ACTIONS = (
    "scheduler:CreateSchedule", "scheduler:CreateScheduleGroup", "scheduler:DeleteSchedule",
    "scheduler:GetSchedule", "scheduler:ListSchedules", "scheduler:UpdateSchedule",
)  # fmt: skip


def schedule_statements(queue: QueueArn, group: str | None, role_arn: str) -> list[dict[str, Any]]:
    """The producer's statements for repeats on EventBridge Scheduler (in ``queue``'s account and region)."""
    where = f"arn:{queue.partition}:scheduler:{queue.region}:{queue.account}"
    group = group or "bridge-*"
    resources = [f"{where}:schedule-group/{group}", f"{where}:schedule/{group}/*"]
    return [
        _statement("JobsSchedules", SCHEDULE_ACTIONS, resources),
        {
            "Sid": "JobsPassSchedulerRole",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": [role_arn],
            "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
        },
    ]


def dlq_arn_from_redrive(attributes: dict[str, Any]) -> QueueArn | None:
    """The dead-letter queue named by a queue's ``RedrivePolicy`` attribute, if it has one."""
    raw = attributes.get("RedrivePolicy")
    if not raw:
        return None
    target = json.loads(raw).get("deadLetterTargetArn", "")
    return arn_of(target, field="RedrivePolicy") if target else None


def lookup_dlq(admin: SqsAdmin, url: str) -> QueueArn | None:
    """The dead-letter queue of the queue at ``url``, read from its ``RedrivePolicy``.

    Raises:
        BackendUnavailable: the queue could not be read (unreachable, denied, missing).
    """
    return dlq_arn_from_redrive(admin.attributes(url, "RedrivePolicy"))


def _unique(arns: Iterable[QueueArn]) -> list[str]:
    return list(dict.fromkeys(str(a) for a in arns))


def policy(
    queues: Sequence[QueueArn],
    dlqs: Sequence[QueueArn] = (),
    role: str = "both",
    tables: Sequence[str] = (),
    schedules: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The IAM policy document for ``queues`` and their dead-letter queues ``dlqs``.

    Args:
        queues: the queues the app sends to and consumes (at least one).
        dlqs: their dead-letter queues (read-only access for ``jobs stats-sqs``).
        role: ``producer`` (sends only), ``worker`` (consumes, re-publishes retries)
            or ``both`` (one statement per role).
        tables: ARNs of the guard table (:func:`table_arn`); every role reads and writes it.
        schedules: the producer's statements for EventBridge repeats (:func:`schedule_statements`).

    Raises:
        InvalidInput: no queue, or an unknown role.
    """
    if role not in ROLES:
        raise InvalidInput("--role", f"{role!r} is not a role; use one of: {', '.join(ROLES)}.")
    if not queues:
        raise InvalidInput("--queue", "no queue: set SQS_QUEUE_URL or pass --queue URL.")
    queue_arns = _unique(queues)
    dlq_arns = [a for a in _unique(dlqs) if a not in queue_arns]
    statements: list[dict[str, Any]] = []
    if role in ("producer", "both"):
        statements.append(_statement("JobsProducer", PRODUCER_ACTIONS, queue_arns))
    if role in ("worker", "both"):
        statements.append(_statement("JobsWorker", WORKER_ACTIONS, queue_arns))
    if dlq_arns:
        statements.append(_statement("JobsDeadLetterQueues", DLQ_ACTIONS, dlq_arns))
    if tables:
        statements.append(_statement("JobsGuardTable", TABLE_ACTIONS, list(dict.fromkeys(tables))))
    if role in ("producer", "both"):
        statements.extend(schedules)
    return {"Version": "2012-10-17", "Statement": statements}


def _statement(sid: str, actions: Sequence[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources}
