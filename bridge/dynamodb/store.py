"""The few key-value operations the bridge's records need, as conditional DynamoDB writes.

:class:`DynamoStore` offers the subset of redis-py's API that the SQS path,
``@bridge.idempotent`` and ``bridge.lock`` use (``get``, ``set`` with ``nx``/``px``,
``delete``, ``exists``, ``lock``), so those callers keep one code path for both
stores. Each call is one DynamoDB request:

* ``get``/``exists``: a strongly consistent ``GetItem`` (a tombstone written a
  moment ago on another machine must be seen);
* ``set(nx=True)``: a ``PutItem`` conditioned on the key being absent or past its
  ``until`` (expired records count as absent at once, however late TTL is);
* ``claim``: the same conditional put, returning the standing value from the
  failed condition itself (``ReturnValuesOnConditionCheckFailure``): a duplicate
  costs one request, not two;
* ``delete``: a ``DeleteItem``.
"""

from __future__ import annotations

import math
from typing import Any

from bridge.dynamodb.lease import DynamoLease
from bridge.dynamodb.table import KEY, TTL_ATTRIBUTE, TTL_CUSHION_SEC, DynamoTable, now_ms

__all__ = ["DynamoStore"]

_ABSENT_OR_EXPIRED = "attribute_not_exists(pk) OR #until < :now"


class DynamoStore:
    """Records with an expiry in the guard table (see :mod:`bridge.dynamodb.table`)."""

    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def _item(self, key: str, value: Any, px: int | None) -> dict[str, Any]:
        item: dict[str, Any] = {KEY: {"S": key}, "v": {"S": _text(value)}}
        if px is not None:
            until = now_ms() + int(px)
            item["until"] = {"N": str(until)}
            item[TTL_ATTRIBUTE] = {"N": str(math.ceil(until / 1000) + TTL_CUSHION_SEC)}
        return item

    def get(self, key: str) -> bytes | None:
        """The record's value, or None when it is absent or past its ``until``."""
        with self.table.aws(f"reading {key!r}"):
            item = self.table.client.get_item(TableName=self.table.name, Key={KEY: {"S": key}},
                                              ConsistentRead=True).get("Item")  # fmt: skip
        if not item or _expired(item) or "v" not in item:
            return None
        return str(item["v"]["S"]).encode()

    def exists(self, key: str) -> int:
        return int(self.get(key) is not None)

    def set(self, key: str, value: Any, *, nx: bool = False, px: int | None = None) -> bool:
        """Write the record (for ``px`` ms); with ``nx``, only if none stands. True if written."""
        if nx:
            return self.claim(key, value, px) is None
        with self.table.aws(f"writing {key!r}"):
            self.table.client.put_item(TableName=self.table.name, Item=self._item(key, value, px))
        return True

    def claim(self, key: str, value: Any, px: int | None) -> str | None:
        """Write the record unless one stands: None when written, else the standing value."""
        client = self.table.client
        with self.table.aws(f"claiming {key!r}"):
            try:
                client.put_item(
                    TableName=self.table.name,
                    Item=self._item(key, value, px),
                    ConditionExpression=_ABSENT_OR_EXPIRED,
                    ExpressionAttributeNames={"#until": "until"},
                    ExpressionAttributeValues={":now": {"N": str(now_ms())}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except client.exceptions.ConditionalCheckFailedException as exc:
                standing = exc.response.get("Item") or {}
                return str(standing.get("v", {}).get("S", ""))
        return None

    def delete(self, key: str) -> int:
        with self.table.aws(f"deleting {key!r}"):
            self.table.client.delete_item(TableName=self.table.name, Key={KEY: {"S": key}})
        return 1

    def lock(
        self,
        name: str,
        timeout: float,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        thread_local: bool = False,
    ) -> DynamoLease:
        """A lease on ``name`` with redis-py ``Lock``'s methods (``thread_local`` is moot here)."""
        return DynamoLease(self.table, name, ttl_ms=math.ceil(timeout * 1000), sleep_s=sleep,
                           blocking=blocking, blocking_timeout_s=blocking_timeout)  # fmt: skip

    def close(self) -> None:
        self.table.close()


def _expired(item: dict[str, Any]) -> bool:
    until = item.get("until")
    return until is not None and int(until["N"]) <= now_ms()


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
