"""The SQS path's guard store in DynamoDB (``GUARD_STORE=dynamodb``): no Redis to run.

Same contract as the Redis one (:class:`bridge.broker.guard.GuardStore`): the add
claims its key with one conditional put and the backend deletes the claim if the
send fails; tombstones, hop and run claims are records with an expiry. Keys are
the Redis store's (``bridge:guard:<job id>``, ...), so both read the same.
"""

from __future__ import annotations

import logging

from bridge.dynamodb.store import DynamoStore
from bridge.dynamodb.table import DynamoTable, now_ms
from bridge.settings import Settings

__all__ = ["DynamoGuardStore"]

logger = logging.getLogger("bridge")


class DynamoGuardStore:
    """Guards, tombstones and claims in the ``DYNAMODB_TABLE`` table, shared by every machine."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = DynamoStore(DynamoTable.of(settings))

    @property
    def url(self) -> str:
        """The store as errors name it."""
        return self.client.table.where

    def now_ms(self) -> int:
        """This host's clock (DynamoDB has none; see :func:`bridge.dynamodb.table.now_ms`)."""
        return now_ms()

    def claim(self, job_id: str, queue: str, ttl_ms: int) -> str | None:
        """Claim a job's key; None when claimed, else the queue of the job that stands."""
        standing = self.client.claim(f"bridge:guard:{job_id}", queue, ttl_ms)
        return None if standing is None else (standing or queue)

    def release(self, job_id: str) -> None:
        self.client.delete(f"bridge:guard:{job_id}")

    def close(self) -> None:
        self.client.close()
