"""The guard table: its client, its layout, and ``jobs dynamodb ensure-table``.

One table holds everything the SQS path keeps outside the queue: dedupe guards,
cancel tombstones, hop and run claims, ``@idempotent`` records and leases, locks.
Its layout is a single string partition key:

========  ====  ==============================================================
``pk``    S     the record's key, the same string the Redis store uses
``v``     S     its value (the standing job's queue, a result as JSON, ...)
``until`` N     when the record stops counting, in epoch ms (absent: never)
``ttl``   N     epoch seconds after which DynamoDB may delete the item
``owner`` S     a lease's holder (locks and running ``@idempotent`` bodies)
``fence`` N     a lock's fencing token, one higher at every acquisition
========  ====  ==============================================================

Expiry is decided by ``until`` in every condition and read, never by DynamoDB's
TTL, whose deletion runs up to days late by design; ``ttl`` only keeps the table
from growing. Capacity is on demand: nothing to size, billed per request.

Credentials come from the standard AWS chain; ``AWS_ENDPOINT_URL_DYNAMODB`` points
at a local emulator. Every botocore error is wrapped into ``BackendUnavailable``
naming the table and the AWS error code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bridge.core.aws import aws_client
from bridge.core.redact import redact
from bridge.errors import BackendUnavailable, ConfigError

__all__ = ["KEY", "TTL_ATTRIBUTE", "DynamoTable", "now_ms"]

KEY = "pk"
TTL_ATTRIBUTE = "ttl"
# How long past its own end a record may linger before DynamoDB's TTL removes it: a
# cushion, so a late reader never meets a half-expired item it would misread.
TTL_CUSHION_SEC = 3600


def now_ms() -> int:
    """The clock of DynamoDB records: this host's (DynamoDB has none to ask; hosts on AWS keep
    theirs within a millisecond of UTC through the Amazon Time Sync Service)."""
    return time.time_ns() // 1_000_000


class DynamoTable:
    """A boto3 DynamoDB client bound to one table, created on first use."""

    def __init__(self, name: str, *, region: str | None = None, endpoint_url: str | None = None) -> None:
        self.name = name
        self.region = region
        self.endpoint_url = endpoint_url
        self._client: Any = None
        self._client_lock = threading.Lock()  # threads racing for the first call make one client

    @classmethod
    def of(cls, settings: Any) -> DynamoTable:
        """The table named by ``DYNAMODB_TABLE`` (settings are checked to name one)."""
        if not settings.dynamodb_table:
            raise ConfigError("DYNAMODB_TABLE is not set; name the guard table (jobs dynamodb ensure-table).")
        return cls(
            settings.dynamodb_table,
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url_dynamodb,
        )

    @property
    def where(self) -> str:
        """The table as errors name it."""
        return f"DynamoDB table {self.name!r}" + (
            f" at {redact(self.endpoint_url)}" if self.endpoint_url else ""
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = aws_client(
                        "dynamodb", "DynamoDB", region=self.region, endpoint_url=self.endpoint_url
                    )
        return self._client

    @contextmanager
    def aws(self, what: str) -> Iterator[None]:
        """Translate botocore's errors into BackendUnavailable naming ``what`` and the table."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            hint = (
                "; create it with `jobs dynamodb ensure-table`"
                if error.get("Code") == "ResourceNotFoundException"
                else ""
            )
            raise BackendUnavailable(
                f"{what} on {self.where} failed: AWS {error.get('Code', '?')}: "
                f"{redact(error.get('Message', ''))}{hint}."
            ) from None
        except BotoCoreError as exc:
            raise BackendUnavailable(f"{what} on {self.where} failed: {redact(str(exc))}.") from None

    def ensure(self) -> dict[str, Any]:
        """Create the table (on-demand capacity, TTL on ``ttl``) or bring an existing one in line.

        Idempotent: run it again and nothing changes. Returns what stands:
        ``{"table", "arn", "created", "billing", "ttl_attribute"}``.

        Raises:
            ConfigError: a table of that name exists with another key schema.
            BackendUnavailable: DynamoDB refused or could not be reached.
        """
        client = self.client
        created = False
        with self.aws("creating the guard table"):
            try:
                description = client.describe_table(TableName=self.name)["Table"]
            except client.exceptions.ResourceNotFoundException:
                try:
                    client.create_table(
                        TableName=self.name,
                        KeySchema=[{"AttributeName": KEY, "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": KEY, "AttributeType": "S"}],
                        BillingMode="PAY_PER_REQUEST",
                    )
                    created = True
                except client.exceptions.ResourceInUseException:
                    pass  # another ensure-table created it meanwhile
                client.get_waiter("table_exists").wait(TableName=self.name, WaiterConfig={"Delay": 1})
                description = client.describe_table(TableName=self.name)["Table"]
        schema = [(k["AttributeName"], k["KeyType"]) for k in description.get("KeySchema", [])]
        if schema != [(KEY, "HASH")]:
            raise ConfigError(
                f"DynamoDB table {self.name!r} exists with the key schema {schema}, not the guard table's "
                f"[({KEY!r}, 'HASH')] (a string partition key {KEY!r}); choose another DYNAMODB_TABLE."
            )
        with self.aws("enabling TTL on the guard table"):
            ttl = client.describe_time_to_live(TableName=self.name)["TimeToLiveDescription"]
            if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                client.update_time_to_live(
                    TableName=self.name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
                )
            elif ttl.get("AttributeName") != TTL_ATTRIBUTE:
                raise ConfigError(
                    f"DynamoDB table {self.name!r} has TTL on {ttl.get('AttributeName')!r}; the guard table "
                    f"needs it on {TTL_ATTRIBUTE!r}: disable that TTL or choose another DYNAMODB_TABLE."
                )
        billing = (description.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
        return {
            "table": self.name,
            "arn": description.get("TableArn"),
            "created": created,
            "billing": billing,
            "ttl_attribute": TTL_ATTRIBUTE,
        }

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
