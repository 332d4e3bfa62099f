"""A lease in the guard table: ``bridge.lock`` and running ``@idempotent`` bodies on DynamoDB.

Conditional writes do what redis-py's Lock does with Lua scripts:

* **acquire**: one ``UpdateItem`` that sets the holder's random token and the
  lease's end, conditioned on no holder or an ended lease, and raises the
  **fencing token** (``fence``) in the same write. A holder passes its fence to
  whatever it protects; a resource that remembers the highest fence it saw
  refuses a holder whose lease ended while it stalled. The first fence of a lock
  is the current time in ms, so fences keep growing even after TTL removed an
  unused lock's item (a lock cannot be taken 1000 times a millisecond).
* **extend** and **release**: conditioned on the token still holding an unexpired
  lease, so a holder whose lease ended never extends or releases another's.

A lease ends at its own end time (``until``), checked in every condition:
DynamoDB's TTL only tidies up, a day later.
"""

from __future__ import annotations

import math
import secrets
import time
from typing import Any

from bridge.core.lease import LeaseNotOwned
from bridge.dynamodb.table import KEY, TTL_ATTRIBUTE, DynamoTable, now_ms

__all__ = ["DynamoLease"]

# A lock's item stays this long after its lease ended before TTL may remove it.
_TIDY_AFTER_SEC = 86_400
_HELD = "#owner = :token AND #until > :now"
_NAMES = {"#owner": "owner", "#until": "until", "#ttl": TTL_ATTRIBUTE, "#fence": "fence"}


class DynamoLease:
    """One holder's lease on a lock in the guard table; methods as redis-py's ``Lock``."""

    def __init__(
        self, table: DynamoTable, name: str, *, ttl_ms: int, sleep_s: float = 0.1, blocking: bool = True,
        blocking_timeout_s: float | None = None,
    ) -> None:  # fmt: skip
        self.table = table
        self.name = name
        self.ttl_ms = ttl_ms
        self.sleep_s = sleep_s
        self.blocking = blocking
        self.blocking_timeout_s = blocking_timeout_s
        self.token = secrets.token_hex(16)
        self.fence: int | None = None

    def _update(self, expression: str, condition: str, values: dict[str, Any], **extra: Any) -> Any:
        return self.table.client.update_item(
            TableName=self.table.name,
            Key={KEY: {"S": self.name}},
            UpdateExpression=expression,
            ConditionExpression=condition,
            # DynamoDB refuses names an expression does not use: only those it uses.
            ExpressionAttributeNames={n: a for n, a in _NAMES.items() if n in expression or n in condition},
            ExpressionAttributeValues=values,
            **extra,
        )

    def _ends(self, ttl_ms: int) -> dict[str, Any]:
        until = now_ms() + ttl_ms
        return {":until": {"N": str(until)}, ":ttl": {"N": str(math.ceil(until / 1000) + _TIDY_AFTER_SEC)}}

    def _try_acquire(self) -> bool:
        client = self.table.client
        now = now_ms()
        with self.table.aws(f"acquiring lock {self.name!r}"):
            try:
                reply = self._update(
                    "SET #owner = :token, #until = :until, #ttl = :ttl, "
                    "#fence = if_not_exists(#fence, :now) + :one",
                    "attribute_not_exists(#owner) OR #until <= :now",
                    {
                        ":token": {"S": self.token},
                        ":now": {"N": str(now)},
                        ":one": {"N": "1"},
                        **self._ends(self.ttl_ms),
                    },
                    ReturnValues="UPDATED_NEW",
                )
            except client.exceptions.ConditionalCheckFailedException:
                return False
        self.fence = int(reply["Attributes"]["fence"]["N"])
        return True

    def acquire(self) -> bool:
        """Take the lease; with ``blocking``, poll every ``sleep_s`` until ``blocking_timeout_s``."""
        deadline = None if self.blocking_timeout_s is None else time.monotonic() + self.blocking_timeout_s
        while True:
            if self._try_acquire():
                return True
            if not self.blocking or (deadline is not None and time.monotonic() >= deadline):
                return False
            time.sleep(self.sleep_s)

    def extend(self, additional_time: float, replace_ttl: bool = False) -> bool:
        """Make the lease end ``additional_time`` seconds from now (redis-py's ``replace_ttl``)."""
        client = self.table.client
        with self.table.aws(f"extending lock {self.name!r}"):
            try:
                self._update("SET #until = :until, #ttl = :ttl", _HELD,
                             {":token": {"S": self.token}, ":now": {"N": str(now_ms())},
                              **self._ends(math.ceil(additional_time * 1000))})  # fmt: skip
            except client.exceptions.ConditionalCheckFailedException:
                raise LeaseNotOwned(self.name) from None
        return True

    def release(self) -> None:
        """End the lease now; LeaseNotOwned if it had already ended (or another holds it)."""
        client = self.table.client
        with self.table.aws(f"releasing lock {self.name!r}"):
            try:
                # The item stays (with its fence) for TTL to tidy; only the holder goes.
                self._update("SET #until = :now, #ttl = :ttl REMOVE #owner", _HELD,
                             {":token": {"S": self.token}, ":now": {"N": str(now_ms())},
                              ":ttl": self._ends(0)[":ttl"]})  # fmt: skip
            except client.exceptions.ConditionalCheckFailedException:
                raise LeaseNotOwned(self.name) from None

    def owned(self) -> bool:
        """Whether this holder's lease stands (a consistent read)."""
        with self.table.aws(f"reading lock {self.name!r}"):
            item = self.table.client.get_item(TableName=self.table.name, Key={KEY: {"S": self.name}},
                                              ConsistentRead=True).get("Item") or {}  # fmt: skip
        return (
            item.get("owner", {}).get("S") == self.token and int(item.get("until", {}).get("N", 0)) > now_ms()
        )
