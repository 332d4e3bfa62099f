"""A run or a hop that arrives while DynamoDB is unreachable is put back, and runs once when it is back.

The worker's guard table is on a moto server of the test's own, stopped while the
message arrives and started again (on the same port, the table made anew) after the
worker has tried it: the run's dedupe claim, or the hop's forward claim, cannot be
made, so the message must neither be dropped nor run without its claim.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import boto3
import pytest

from bridge.core.ids import job_id_for
from bridge.dynamodb.table import DynamoTable, now_ms
from bridge.sqs.admin import SqsAdmin
from bridge.sqs.eventbridge import SCHEDULED_TIME
from tests.conftest import WorkerProcess, read_ledger, start_moto, wait_for
from tests.integration.sqs.aws_only import TABLE
from tests.integration.sqs.test_eventbridge import scheduler
from tests.integration.sqs.test_hops import publish_hop
from tests.redis_server import free_port

pytestmark = [pytest.mark.sqs, pytest.mark.worker]

VISIBILITY_S = 5


@dataclass
class StoppableDynamo:
    """A moto server for DynamoDB on a fixed port that the test stops and starts again."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it (empty: moto keeps nothing) and make the guard table, as ensure-table does."""
        self.proc, _ = start_moto(["-m", "tests.serial_moto"], "moto's server for DynamoDB", port=self.port)
        DynamoTable(TABLE, region="us-east-1", endpoint_url=self.endpoint).ensure()

    def keys(self, prefix: str) -> list[str]:
        client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=self.endpoint)
        items = client.scan(TableName=TABLE)["Items"]
        return sorted(item["pk"]["S"] for item in items if item["pk"]["S"].startswith(prefix))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def flaky_dynamodb(sqs) -> Iterator[StoppableDynamo]:
    store = StoppableDynamo()
    store.start()
    yield store
    store.stop()


def put_back(worker: WorkerProcess, task: str) -> bool:
    """Whether the worker's log shows a delivery of ``task`` put back for want of the guard store."""
    pattern = rf"Task {re.escape(task)}\[[^\]]+\] reject requeue=True: .*DynamoDB table"
    return re.search(pattern, worker.log.read_text(errors="replace")) is not None


def in_queue(url: str, sqs) -> int:
    """Messages in the queue, visible or held (in flight) or delayed."""
    client = boto3.client("sqs", region_name="us-east-1", endpoint_url=sqs.endpoint)
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
             "ApproximateNumberOfMessagesDelayed"]  # fmt: skip
    attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attrs[name]) for name in names)


def test_an_eventbridge_run_delivered_while_dynamodb_is_down_runs_once_when_it_is_back(
    sqs, aws, nowhere, flaky_dynamodb, start_worker, make_bridge, redis_client, server
):
    """EventBridge's message for a run arrives while the table cannot be reached: the run is not lost
    (the message goes back to the queue) and, once DynamoDB answers, its job runs exactly once."""
    url = SqsAdmin(sqs.settings()).ensure_queue("runs-outage", visibility_timeout=VISIBILITY_S)
    env = aws.env(url, nowhere, server.url, AWS_ENDPOINT_URL_DYNAMODB=flaky_dynamodb.endpoint)
    worker = start_worker("awsw", concurrency=2, **env)
    bridge = make_bridge(**aws.settings(url, nowhere))
    repeat = bridge.jobs.schedule("ledger.record", {"key": "tick"}, every_ms=60_000)
    target = scheduler(sqs).get_schedule(
        Name=repeat.id, GroupName=bridge.jobs_backend.repeat_scheduler().group
    )
    at = "2026-01-05T06:00:00Z"

    flaky_dynamodb.stop()
    boto3.client("sqs", region_name="us-east-1", endpoint_url=sqs.endpoint).send_message(
        QueueUrl=url, MessageBody=target["Target"]["Input"].replace(SCHEDULED_TIME, at)
    )
    assert wait_for(lambda: put_back(worker, "bridge.sqs_run"), timeout=60), worker.tail()
    assert read_ledger(redis_client) == []  # nothing was sent without its claim
    assert in_queue(url, sqs) == 1  # the run's one message is still in the queue: not dropped, not copied

    flaky_dynamodb.start()
    assert wait_for(lambda: redis_client.llen("test:ledger") >= 1, timeout=60), worker.tail()
    assert wait_for(lambda: in_queue(url, sqs) == 0, timeout=VISIBILITY_S * 4 + 30), in_queue(url, sqs)
    time.sleep(2.0)  # the queue is empty: a second run would show by now
    job_id = job_id_for("ledger.record", f"{repeat.id}@{at}")
    assert [line["id"] for line in read_ledger(redis_client)] == [job_id]
    assert flaky_dynamodb.keys("bridge:guard:") == [f"bridge:guard:{job_id}"]  # enqueued under its claim


def test_a_hop_delivered_while_dynamodb_is_down_forwards_once_when_it_is_back(
    sqs, aws, nowhere, flaky_dynamodb, start_worker, make_bridge, redis_client, server
):
    """A long delay's hop arrives while the table cannot be reached: it is put back, not forwarded
    without its claim, and once DynamoDB answers the job is sent, and runs, once."""
    url = SqsAdmin(sqs.settings()).ensure_queue("hops-outage", visibility_timeout=VISIBILITY_S)
    env = aws.env(url, nowhere, server.url, AWS_ENDPOINT_URL_DYNAMODB=flaky_dynamodb.endpoint)
    worker = start_worker("awsw", concurrency=2, **env)
    bridge = make_bridge(**aws.settings(url, nowhere))

    flaky_dynamodb.stop()
    publish_hop(bridge, "job-late", url, due_ms=now_ms() + 2_000, hop=3)
    assert wait_for(lambda: put_back(worker, "bridge.sqs_hop"), timeout=60), worker.tail()
    assert read_ledger(redis_client) == []  # nothing was forwarded without its claim
    assert in_queue(url, sqs) == 1  # the hop is still in the queue: not dropped, not copied

    flaky_dynamodb.start()
    assert wait_for(lambda: redis_client.llen("test:ledger") >= 1, timeout=60), worker.tail()
    assert wait_for(lambda: in_queue(url, sqs) == 0, timeout=VISIBILITY_S * 4 + 30), in_queue(url, sqs)
    time.sleep(2.0)  # the queue is empty: a second copy of the job would show by now
    assert [line["id"] for line in read_ledger(redis_client)] == ["job-late"]
    assert flaky_dynamodb.keys("bridge:hop:") == ["bridge:hop:job-late:3"]  # forwarded under its claim
