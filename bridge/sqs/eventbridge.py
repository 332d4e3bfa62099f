"""Repeats fired by EventBridge Scheduler (``JOBS_SCHEDULER=eventbridge``): no beat process.

``jobs.schedule`` upserts one schedule per repeat, named by the repeat's id, in
the app's schedule group (``JOBS_SCHEDULE_GROUP``, default ``bridge-<app name>``).
Its target is the SQS queue (``SQS_QUEUE_URL``), sent with the role
``JOBS_SCHEDULER_ROLE_ARN``; its input is the Celery message of a run, in plain
JSON, so EventBridge fills in the run's scheduled time:

* the message is a ``bridge.sqs_run`` task (:mod:`bridge.sqs.runs`) carrying the
  repeat's task, data and queue; its id is ``<repeat id>@<aws.scheduler.scheduled-time>``:
  the same for every delivery of one run, another for the next run;
* the worker that receives it enqueues the job keyed by that run id, through the
  guard store's dedupe claim. EventBridge delivers at least once; a second
  message for the same run sends nothing.

EventBridge's limits hold: ``every_ms`` is a whole number of minutes, at least
one; a cron may not restrict both day of month and day of week (EventBridge
takes ``?`` in one); there is no run ``limit`` (use ``end_at``).

``start_at`` and ``end_at`` become the schedule's StartDate and EndDate while
they lie ahead. A ``start_at`` already past is not sent (AWS refuses a recurring
schedule that starts more than 5 minutes ago, and apps upsert their repeats at
every start); an ``end_at`` already past stores the schedule disabled, so, as
with beat, the repeat is listed and never fires.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from datetime import UTC, datetime
from typing import Any

from celery import Celery

from bridge.core.aws import aws_client
from bridge.core.repeats import RepeatScheduler, RepeatSpec
from bridge.core.timetable import Timetable
from bridge.errors import BackendUnavailable, InvalidSchedule
from bridge.settings import Settings
from bridge.sqs.iam import arn_of
from bridge.sqs.runs import RUN_TASK

__all__ = ["SCHEDULED_TIME", "EventBridgeScheduler", "eventbridge_expression", "run_message"]

#: What EventBridge Scheduler replaces with a run's scheduled time (ISO 8601) in the input.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
MINUTE_MS = 60_000
_LOWEST = ("0", "0", "1", "1", "1")  # of minute, hour, day of month, month, day of week (EventBridge's)
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_GROUP_CHARS = re.compile(r"[^0-9A-Za-z_.-]")


def eventbridge_expression(timetable: Timetable) -> str:
    """The ``ScheduleExpression`` of a timetable: ``rate(N minutes)`` or a six-field ``cron(...)``.

    Raises:
        InvalidSchedule: an interval EventBridge cannot take, or a cron it reads otherwise.
    """
    if timetable.every_ms is not None:
        every = timetable.every_ms
        if every < MINUTE_MS or every % MINUTE_MS:
            raise InvalidSchedule(
                "every_ms",
                f"{every} ms: EventBridge Scheduler's rate is whole minutes, at least one (60000 ms); "
                "use a multiple of 60000, or JOBS_SCHEDULER=beat for shorter intervals.",
            )
        minutes = every // MINUTE_MS
        return f"rate({minutes} minute{'s' if minutes > 1 else ''})"
    assert timetable.cron is not None
    fields = timetable.cron.split()
    if len(fields) != 5:
        raise InvalidSchedule("cron", f"{timetable.cron!r}: EventBridge takes five-field crons only here.")
    minute, hour, dom, month, dow = fields
    if dom != "*" and dow != "*":
        raise InvalidSchedule(
            "cron",
            f"{timetable.cron!r} restricts both day of month and day of week, which EventBridge Scheduler "
            "cannot express; keep one of them '*', or use JOBS_SCHEDULER=beat.",
        )
    if dow == "*":
        dow = "?"
    else:
        dom = "?"
        # Unix cron counts days from 0 (or 7) = Sunday, EventBridge from 1 = Sunday: use names.
        dow = re.sub(r"(?<![/\d])\d+", lambda m: _day(m.group(0), timetable.cron or ""), dow)
    # EventBridge writes a step from a start ("0/15"), where Unix cron also takes "*/15".
    minute, hour, dom, month, dow = (
        f.replace("*/", f"{low}/") for f, low in zip((minute, hour, dom, month, dow), _LOWEST, strict=True)
    )
    return f"cron({minute} {hour} {dom} {month} {dow} *)"


def _day(number: str, cron: str) -> str:
    if int(number) > 7:
        raise InvalidSchedule("cron", f"{cron!r}: day of week {number} is not 0-7.")
    return _DAYS[int(number)]


def run_message(app: Celery, spec: RepeatSpec) -> dict[str, Any]:
    """The Celery message (kombu's SQS envelope, not base64-encoded) that one run of ``spec`` is.

    Built with Celery's own ``as_task_v2``, as ``send_task`` would build it; kombu's SQS
    transport reads a plain-JSON envelope as well as its own base64 one. Only the
    envelope is plain: EventBridge fills in the scheduled time in the task id.
    """
    run_id = f"{spec.id}@{SCHEDULED_TIME}"
    kwargs = {"repeat": spec.id, "name": spec.name, "data": dict(spec.data), "queue": spec.queue}
    task = app.amqp.as_task_v2(run_id, RUN_TASK, args=(), kwargs=kwargs)
    headers = {**task.headers, "origin": "eventbridge-scheduler"}
    body = json.dumps(task.body).encode()
    return {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            **task.properties,
            "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": spec.queue},
            "delivery_mode": 2,
            "priority": 0,
        },
    }


class EventBridgeScheduler(RepeatScheduler):
    """Repeats as EventBridge Scheduler schedules targeting the app's SQS queue."""

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.group = settings.jobs_schedule_group or _GROUP_CHARS.sub("-", f"bridge-{app.main or 'app'}")[:64]
        url = settings.sqs_queue_url or ""
        self.queue_arn = str(arn_of(url, field="SQS_QUEUE_URL", region=settings.aws_region))
        self._client: Any = None
        self._client_lock = threading.Lock()  # threads racing for the first call make one client
        self._group_ready = False

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = aws_client(
                        "scheduler", "EventBridge Scheduler", region=self.settings.aws_region,
                        endpoint_url=self.settings.aws_endpoint_url_scheduler,
                    )  # fmt: skip
        return self._client

    def _aws(self, what: str, exc: Exception) -> BackendUnavailable:
        error = getattr(exc, "response", {}).get("Error", {})
        detail = f"AWS {error.get('Code')}: {error.get('Message')}" if error else str(exc)
        return BackendUnavailable(f"{what} in schedule group {self.group!r} failed: {detail}.")

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self.client.create_schedule_group(Name=self.group)
        except self.client.exceptions.ConflictException:
            pass  # it exists: one group per app, made by the first schedule
        except Exception as exc:
            raise self._aws("creating the schedule group", exc) from None
        self._group_ready = True

    def upsert(self, spec: RepeatSpec) -> None:
        timetable = spec.timetable
        now = datetime.now(UTC)
        meta: dict[str, Any] = {"key": spec.idempotency_key, "cron": timetable.cron,
                                "every_ms": timetable.every_ms}  # fmt: skip
        dates: dict[str, Any] = {}
        state = "ENABLED"
        # jobs.schedule is upserted at every start of an app, with the same start_at: a start already
        # past is not sent, since AWS refuses a recurring schedule's StartDate more than 5 minutes ago,
        # and a schedule that has started runs from now anyway. It is kept in the description for
        # jobs.list.
        if timetable.start_at and timetable.start_at > now:
            dates["StartDate"] = timetable.start_at
        elif timetable.start_at:
            meta["start_at"] = timetable.start_at.isoformat()
        # An end already past: as with beat, the repeat is kept (jobs.list shows it, with no next run)
        # and never fires. The schedule is stored disabled, without a past EndDate for AWS to judge.
        if timetable.end_at and timetable.end_at > now:
            dates["EndDate"] = timetable.end_at
        elif timetable.end_at:
            meta["end_at"] = timetable.end_at.isoformat()
            state = "DISABLED"
        description = json.dumps(meta)
        if len(description) > 512:  # EventBridge's limit on a schedule's description
            raise InvalidSchedule(
                "idempotency_key",
                f"is too long for an EventBridge schedule (its description, the key with the rule and any "
                f"past start_at/end_at, is {len(description)} characters; EventBridge takes 512): hash it.",
            )
        definition: dict[str, Any] = {
            "Name": spec.id,
            "GroupName": self.group,
            "ScheduleExpression": eventbridge_expression(timetable),
            "ScheduleExpressionTimezone": timetable.tz,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": state,
            "Description": description,
            "Target": {
                "Arn": self.queue_arn,
                "RoleArn": self.settings.jobs_scheduler_role_arn,
                "Input": json.dumps(run_message(self.app, spec)),
            },
        }
        definition.update(dates)
        self._ensure_group()
        try:
            try:
                self.client.create_schedule(**definition)
            except self.client.exceptions.ConflictException:
                self.client.update_schedule(**definition)  # the same repeat: updated in place
        except InvalidSchedule:
            raise
        except Exception as exc:
            raise self._aws(f"jobs.schedule ({spec.id})", exc) from None

    def remove(self, repeat_id: str) -> bool:
        try:
            self.client.delete_schedule(Name=repeat_id, GroupName=self.group)
        except self.client.exceptions.ResourceNotFoundException:
            return False
        except Exception as exc:
            raise self._aws(f"jobs.cancel ({repeat_id})", exc) from None
        return True

    def specs(self) -> list[RepeatSpec]:
        out = []
        try:
            pages = self.client.get_paginator("list_schedules").paginate(GroupName=self.group)
            names = [s["Name"] for page in pages for s in page.get("Schedules", [])]
            for name in names:
                try:
                    schedule = self.client.get_schedule(Name=name, GroupName=self.group)
                except self.client.exceptions.ResourceNotFoundException:
                    continue  # cancelled meanwhile
                spec = _spec_of(schedule)
                if spec is not None:
                    out.append(spec)
        except Exception as exc:
            raise self._aws("jobs.list", exc) from None
        return out


def _spec_of(schedule: dict[str, Any]) -> RepeatSpec | None:
    """The repeat a schedule of the group stands for (None: not one of the bridge's)."""
    try:
        meta = json.loads(schedule.get("Description") or "")
        message = json.loads(schedule["Target"]["Input"])
        _args, run, _embed = json.loads(base64.b64decode(message["body"]))
        start = schedule.get("StartDate") or _instant(meta.get("start_at"))
        end = schedule.get("EndDate") or _instant(meta.get("end_at"))
        timetable = Timetable(
            cron=meta.get("cron"), every_ms=meta.get("every_ms"), start_at=start, end_at=end,
            tz=schedule.get("ScheduleExpressionTimezone") or "UTC",
            anchor=schedule.get("LastModificationDate") or datetime.now(UTC),
        )  # fmt: skip
        return RepeatSpec(
            id=schedule["Name"],
            name=run["name"],
            idempotency_key=meta.get("key"),
            data=run["data"],
            queue=run["queue"],
            timetable=timetable,
        )
    except (KeyError, TypeError, ValueError):
        return None


def _instant(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso) if iso else None
