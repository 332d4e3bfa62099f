"""Run the AWS-only example: ``python -m examples.aws_only``.

Needs AWS and nothing else: credentials from the AWS chain and ``AWS_REGION``;
for a local emulator set ``AWS_ENDPOINT_URL_SQS`` and ``AWS_ENDPOINT_URL_DYNAMODB``
(moto: ``moto_server -p 5000`` and both at ``http://127.0.0.1:5000``). It creates
the queue ``bridge-aws-only`` and the table ``bridge-aws-only`` if they are
missing (``jobs sqs ensure-queue``, ``jobs dynamodb ensure-table``), starts two
workers, then:

* adds order 1 three times with its key (one job is sent), and order 2 once;
* schedules order 3 two seconds out and cancels it (a tombstone: it never runs);
* delivers one payment capture twice (the same job id): the body runs once.

It checks every count in DynamoDB and prints ``OK: ...``; exit status 0 when all hold.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

from examples._errors import example_errors
from examples._worker import celery_worker

NAME = "bridge-aws-only"
WAIT_S = 60


def prepare() -> None:
    """Defaults for an AWS-only bridge, and the queue and table it needs."""
    from bridge import Settings
    from bridge.dynamodb.table import DynamoTable
    from bridge.sqs.admin import SqsAdmin

    os.environ.setdefault("AWS_REGION", "us-east-1")
    os.environ.setdefault("QUEUE_BACKEND", "sqs")
    os.environ.setdefault("GUARD_STORE", "dynamodb")
    os.environ.setdefault("DYNAMODB_TABLE", NAME)
    for name in ("REDIS_URL", "LOCK_BACKEND"):  # nothing but AWS: locks follow the guards into DynamoDB
        os.environ.pop(name, None)
    if "SQS_QUEUE_URL" not in os.environ:
        where = Settings(aws_region=os.environ["AWS_REGION"],
                         aws_endpoint_url_sqs=os.environ.get("AWS_ENDPOINT_URL_SQS"))  # fmt: skip
        os.environ["SQS_QUEUE_URL"] = SqsAdmin(where).ensure_queue(NAME, visibility_timeout=60)
    settings = Settings.from_env()
    DynamoTable.of(settings).ensure()


def main() -> int:
    from examples.aws_only.app import app, bridge, count

    run = uuid.uuid4().hex[:8]
    orders = [int(run, 16) % 10**6 * 10 + n for n in (1, 2, 3)]  # new ids every run: old keys stand 24 h
    first, second, third = orders
    with celery_worker("examples.aws_only.app", concurrency=2, name=f"aws-{run}"):
        added = [
            bridge.queue.add("orders.confirm", {"order_id": first}, idempotency_key=f"order-{first}")
            for _ in range(3)
        ]
        print("order", first, "added 3 times, deduplicated:", [job.deduplicated for job in added])
        bridge.queue.add("orders.confirm", {"order_id": second})
        bridge.jobs.schedule("orders.confirm", {"order_id": third}, idempotency_key=f"order-{third}",
                             delay_ms=2_000)  # fmt: skip
        cancelled = bridge.jobs.cancel(name="orders.confirm", idempotency_key=f"order-{third}")
        print("order", third, "cancelled:", cancelled)
        job_id = str(uuid.uuid4())
        for _ in range(2):  # the same message twice, as SQS may deliver it
            app.send_task(
                "payments.capture", kwargs={"order_id": first, "amount_cents": 1999}, task_id=job_id
            )
        keys = (f"order-{first}", f"order-{second}", f"order-{third}", f"capture-{first}")
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and (count(keys[1]) < 1 or count(keys[3]) < 1):
            time.sleep(0.5)
        time.sleep(4)  # past the cancelled job's delay, and long enough for any duplicate to have run
        counts = {key: count(key) for key in keys}
    print("runs per key:", counts)
    expected = dict(zip(counts, (1, 1, 0, 1), strict=True))
    if counts != expected:
        print(f"FAILED: expected {expected}", file=sys.stderr)
        return 1
    print(
        "OK: every job ran once, the cancelled one never, the payment was captured once; no Redis anywhere."
    )
    return 0


if __name__ == "__main__":
    with example_errors("examples.aws_only"):
        prepare()
        sys.exit(main())
