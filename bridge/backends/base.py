"""The small contract every queue backend fulfils."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from bridge.job import Job, JobRequest

__all__ = ["QueueBackend"]


class QueueBackend(ABC):
    """Where jobs go: atomic dedupe-and-enqueue, delays, and the worker-side duties."""

    @abstractmethod
    def enqueue(self, requests: Sequence[JobRequest]) -> list[Job]:
        """Send each request unless its idempotency key already stands.

        Each item is atomic on its own (claim and send together); a batch is sent
        in as few round trips as the backend allows. Returns one Job per request,
        in order.
        """

    @abstractmethod
    def promote_due(self) -> float | None:
        """Move delayed jobs that are due onto their queues.

        Safe to call from any number of processes at once. Returns the seconds
        until the next delayed job is due (0 when more are due now), or None when
        no job is waiting.
        """

    @abstractmethod
    def cancel_delayed(self, job_id: str) -> bool:
        """Remove a job that still waits for its delay; True if one was removed."""

    @abstractmethod
    def withdraw(self, job_id: str) -> bool:
        """Remove a tracked job from its queue if no worker has taken it; True if removed."""

    @abstractmethod
    def release_guard(self, job_id: str) -> None:
        """Free a job's idempotency key (used when dedupe lasts until the job finishes)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections held by this process."""
