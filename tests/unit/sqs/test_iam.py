"""The least-privilege IAM policy of `jobs sqs iam-policy`: exact actions, exact queue ARNs."""

from __future__ import annotations

import json

import pytest

from bridge import InvalidInput
from bridge.sqs.iam import arn_of, dlq_arn_from_redrive, policy

ORDERS = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"
ORDERS_ARN = "arn:aws:sqs:eu-west-1:123456789012:orders"
DLQ_ARN = "arn:aws:sqs:eu-west-1:123456789012:orders-dlq"


@pytest.mark.parametrize(
    ("url", "region", "arn"),
    [
        (ORDERS, None, ORDERS_ARN),
        ("https://eu-west-1.queue.amazonaws.com/123456789012/orders", None, ORDERS_ARN),
        (
            "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/t.fifo",
            None,
            "arn:aws-cn:sqs:cn-north-1:123456789012:t.fifo",
        ),
        (
            "https://sqs.us-gov-west-1.amazonaws.com/123456789012/q",
            None,
            "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:q",
        ),
        ("https://vpce-0abc-xyz.sqs.eu-west-1.vpce.amazonaws.com/123456789012/orders", None, ORDERS_ARN),
        # A local emulator's URL: the region comes from AWS_REGION.
        ("http://127.0.0.1:4566/123456789012/orders", "eu-west-1", ORDERS_ARN),
        (ORDERS_ARN, None, ORDERS_ARN),
    ],
)
def test_arn_from_queue_url_or_arn(url: str, region: str | None, arn: str) -> None:
    assert str(arn_of(url, field="--queue", region=region)) == arn


@pytest.mark.parametrize(
    "bad",
    [
        "orders",
        "https://example.com/orders",
        "https://sqs.eu-west-1.amazonaws.com/12345/orders",  # not a 12-digit account
        "https://sqs.eu-west-1.amazonaws.com/123456789012/bad name",
        "https://sqs.eu-west-1.amazonaws.com/123456789012/orders/extra",
        "http://127.0.0.1:4566/123456789012/orders",  # no region anywhere
        "arn:aws:s3:::bucket",
    ],
)
def test_not_a_queue_url_is_refused_naming_the_option(bad: str) -> None:
    with pytest.raises(InvalidInput) as info:
        arn_of(bad, field="--queue")
    assert str(info.value).startswith("--queue: ")


def test_both_roles_get_their_own_statement_with_exactly_the_used_actions() -> None:
    document = policy([arn_of(ORDERS, field="q")], [arn_of(DLQ_ARN, field="d")], "both")
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert document["Version"] == "2012-10-17"
    assert by_sid["JobsProducer"]["Action"] == ["sqs:GetQueueAttributes", "sqs:SendMessage"]
    assert by_sid["JobsWorker"]["Action"] == [
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
        "sqs:SendMessage",
    ]
    assert by_sid["JobsDeadLetterQueues"]["Action"] == ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    assert by_sid["JobsWorker"]["Resource"] == [ORDERS_ARN]
    assert by_sid["JobsDeadLetterQueues"]["Resource"] == [DLQ_ARN]
    text = json.dumps(document)
    assert "*" not in text  # no wildcard action or resource anywhere
    assert all(s["Effect"] == "Allow" for s in document["Statement"])


def test_producer_role_cannot_receive_or_delete() -> None:
    document = policy([arn_of(ORDERS, field="q")], role="producer")
    actions = {a for s in document["Statement"] for a in s["Action"]}
    assert actions == {"sqs:GetQueueAttributes", "sqs:SendMessage"}


def test_queues_are_listed_once_and_a_dlq_that_is_also_a_queue_is_not_repeated() -> None:
    orders = arn_of(ORDERS, field="q")
    document = policy([orders, orders], [orders], "worker")
    assert [s["Resource"] for s in document["Statement"]] == [[ORDERS_ARN]]


def test_redrive_policy_names_the_dlq() -> None:
    redrive = json.dumps({"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": "5"})
    assert str(dlq_arn_from_redrive({"RedrivePolicy": redrive})) == DLQ_ARN
    assert dlq_arn_from_redrive({}) is None


def test_no_queue_or_unknown_role_is_refused() -> None:
    with pytest.raises(InvalidInput, match="--queue"):
        policy([])
    with pytest.raises(InvalidInput, match="--role"):
        policy([arn_of(ORDERS, field="q")], role="admin")
