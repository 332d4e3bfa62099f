"""SQS queue administration: create or check a queue and its dead-letter queue, and count it.

Credentials come from the standard AWS chain (environment, profile, instance
role), never from code; ``AWS_ENDPOINT_URL_SQS`` points at a local emulator.
Every botocore error is wrapped with the queue URL and the AWS error code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from bridge.core.aws import aws_client
from bridge.core.redact import redact
from bridge.errors import BackendUnavailable, InvalidInput
from bridge.settings import Settings

__all__ = ["QueueInfo", "SqsAdmin"]

# SQS limits: at most 12 hours of visibility, 1 to 1000 receives before redrive.
MAX_VISIBILITY_SEC = 43_200


@dataclass(frozen=True)
class QueueInfo:
    """Approximate counts of one queue, as SQS reports them."""

    url: str
    visible: int
    in_flight: int
    delayed: int
    dlq: QueueInfo | None = None
    max_receive_count: int | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class SqsAdmin:
    """Queue administration through boto3 (installed with the ``sqs`` extra)."""

    def __init__(self, settings: Settings, *, config: Any = None) -> None:
        """``config``: a ``botocore.config.Config`` (timeouts, retries) for the client."""
        self.client = aws_client(
            "sqs", "SQS", region=settings.aws_region, endpoint_url=settings.aws_endpoint_url_sqs,
            config=config,
        )  # fmt: skip

    @contextmanager
    def _aws(self, what: str, url: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            message = exc.response.get("Error", {}).get("Message", "")
            raise BackendUnavailable(
                f"{what} on {redact(url)} failed: AWS {code}: {redact(message)}"
            ) from None
        except BotoCoreError as exc:
            raise BackendUnavailable(f"{what} on {redact(url)} failed: {redact(str(exc))}") from None

    def ensure_queue(
        self,
        name_or_url: str,
        *,
        fifo: bool = False,
        dlq: str | None = None,
        max_receive_count: int = 5,
        visibility_timeout: int | None = None,
    ) -> str:
        """Create the queue (and its DLQ with a RedrivePolicy) or bring an existing one in line.

        Idempotent: run it again and nothing changes. Returns the queue URL.
        """
        if visibility_timeout is not None and not 0 <= visibility_timeout <= MAX_VISIBILITY_SEC:
            raise InvalidInput("--visibility-timeout", f"must be 0 to {MAX_VISIBILITY_SEC} seconds.")
        if not 1 <= max_receive_count <= 1000:
            raise InvalidInput("--max-receive-count", "must be 1 to 1000 (SQS's range).")
        name = name_or_url.rstrip("/").rsplit("/", 1)[-1]
        if fifo != name.endswith(".fifo"):
            raise InvalidInput("--fifo", f"a FIFO queue's name ends in '.fifo' and only then: {name!r}.")
        attributes: dict[str, str] = {}
        if fifo:
            attributes["FifoQueue"] = "true"
        if visibility_timeout is not None:
            attributes["VisibilityTimeout"] = str(visibility_timeout)
        url = self._create(name, attributes)
        if dlq is not None:
            if fifo != dlq.endswith(".fifo"):
                raise InvalidInput(
                    "--dlq", "a FIFO queue's dead-letter queue must be FIFO too (and vice versa)."
                )
            dlq_url = self._create(dlq, {"FifoQueue": "true"} if fifo else {})
            with self._aws("GetQueueAttributes", dlq_url):
                arn = self.client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
                    "Attributes"
                ]["QueueArn"]
            policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receive_count)})
            with self._aws("SetQueueAttributes", url):
                self.client.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": policy})
        return url

    def _create(self, name: str, attributes: dict[str, str]) -> str:
        with self._aws("CreateQueue", name):
            try:
                url: str = self.client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            except self.client.exceptions.QueueNameExists:
                # It exists with other attributes: bring the mutable ones in line.
                url = self.client.get_queue_url(QueueName=name)["QueueUrl"]
                mutable = {k: v for k, v in attributes.items() if k != "FifoQueue"}
                if mutable:
                    self.client.set_queue_attributes(QueueUrl=url, Attributes=mutable)
        return url

    def attributes(self, url: str, *names: str) -> dict[str, str]:
        """The queue's attributes ``names`` (those it has), e.g. ``RedrivePolicy``."""
        with self._aws("GetQueueAttributes", url):
            reply = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=list(names))
        return dict(reply.get("Attributes", {}))

    def max_message_bytes(self, url: str) -> int:
        """The queue's ``MaximumMessageSize`` in bytes."""
        with self._aws("GetQueueAttributes", url):
            attrs = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["MaximumMessageSize"])
        return int(attrs["Attributes"]["MaximumMessageSize"])

    def counts(self, url: str) -> QueueInfo:
        """Approximate visible / in-flight / delayed counts of a queue and of its DLQ."""
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
            "RedrivePolicy",
        ]
        with self._aws("GetQueueAttributes", url):
            attrs = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        dlq = None
        max_receive = None
        if "RedrivePolicy" in attrs:
            policy = json.loads(attrs["RedrivePolicy"])
            max_receive = int(policy["maxReceiveCount"])
            dlq_name = policy["deadLetterTargetArn"].rsplit(":", 1)[-1]
            with self._aws("GetQueueUrl", dlq_name):
                dlq_url = self.client.get_queue_url(QueueName=dlq_name)["QueueUrl"]
            dlq = self.counts(dlq_url)
        return QueueInfo(
            url=url,
            visible=int(attrs.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
            delayed=int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
            dlq=dlq,
            max_receive_count=max_receive,
        )
