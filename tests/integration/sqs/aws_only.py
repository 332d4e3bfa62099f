"""SQS, DynamoDB and EventBridge Scheduler only: no Redis for the bridge (the ``aws`` fixture).

The test Redis holds only the test ledger (``TEST_LEDGER_URL``); the ``nowhere``
fixture gives an empty ``BRIDGE_HOME`` that shows no embedded server started.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from bridge import Bridge, Settings
from tests.conftest import MotoSqs

TABLE = "jobs-guards"
ROLE = "arn:aws:iam::123456789012:role/jobs-scheduler"


@dataclass(frozen=True)
class AwsOnly:
    """moto's SQS and Scheduler (``sqs``), and a moto for DynamoDB (``dynamodb``, its endpoint)."""

    sqs: MotoSqs
    dynamodb: str

    def settings(self, url: str, home: Path, **overrides: Any) -> dict[str, Any]:
        """Settings for SQS_QUEUE_URL=url, guards and locks in DynamoDB, repeats by EventBridge."""
        values: dict[str, Any] = dict(
            queue_backend="sqs", jobs_backend="sqs", sqs_queue_url=url, aws_region="us-east-1",
            aws_endpoint_url_sqs=self.sqs.endpoint, redis_url=None, guard_store="dynamodb",
            dynamodb_table=TABLE, aws_endpoint_url_dynamodb=self.dynamodb, lock_backend="dynamodb",
            jobs_scheduler="eventbridge", jobs_scheduler_role_arn=ROLE,
            aws_endpoint_url_scheduler=self.sqs.endpoint, bridge_home=home,
        )  # fmt: skip
        values.update(overrides)
        return values

    def env(self, url: str, home: Path, ledger_url: str, **extra: str) -> dict[str, str]:
        """The same as a worker's environment; the ledger goes to the test Redis."""
        return {
            **self.sqs.env(), "REDIS_URL": "", "QUEUE_BACKEND": "sqs", "SQS_QUEUE_URL": url,
            "GUARD_STORE": "dynamodb", "DYNAMODB_TABLE": TABLE, "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb,
            "LOCK_BACKEND": "dynamodb", "JOBS_SCHEDULER": "eventbridge", "JOBS_SCHEDULER_ROLE_ARN": ROLE,
            "AWS_ENDPOINT_URL_SCHEDULER": self.sqs.endpoint, "BRIDGE_HOME": str(home),
            "TEST_LEDGER_URL": ledger_url, **extra,
        }  # fmt: skip

    def table_keys(self, prefix: str) -> list[str]:
        """The keys of the guard table's items that start with ``prefix``."""
        client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=self.dynamodb)
        items = client.scan(TableName=TABLE)["Items"]
        return sorted(item["pk"]["S"] for item in items if item["pk"]["S"].startswith(prefix))


def producer_bridge(settings: Settings) -> Bridge:
    """A producer's app and Bridge, as a process of its own builds them."""
    from celery import Celery

    from bridge import celeryconfig

    app = Celery("aws-producer")
    app.config_from_object(celeryconfig.build(settings))
    return Bridge(app, settings=settings)
