"""A repeat as a backend's own scheduler stores it, for repeats that no ``celery beat`` fires.

With ``JOBS_SCHEDULER=beat`` repeats live in celery-redbeat's store
(:mod:`bridge.jobs`). A backend whose broker has a scheduler of its own
(SQS: EventBridge Scheduler) offers a :class:`RepeatScheduler` instead, and
``bridge.jobs`` hands it the repeat as a :class:`RepeatSpec`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from bridge.core.timetable import Timetable

__all__ = ["RepeatScheduler", "RepeatSpec"]


@dataclass(frozen=True)
class RepeatSpec:
    """One repeat: what runs (task, data, queue), when (timetable), under which id."""

    id: str
    name: str
    idempotency_key: str | None
    data: dict[str, Any]
    queue: str
    timetable: Timetable


class RepeatScheduler(ABC):
    """Stores repeats where the broker's own scheduler fires them."""

    @abstractmethod
    def upsert(self, spec: RepeatSpec) -> None:
        """Create the repeat, or update the one with the same id in place."""

    @abstractmethod
    def remove(self, repeat_id: str) -> bool:
        """Delete the repeat; True if one was there."""

    @abstractmethod
    def specs(self) -> list[RepeatSpec]:
        """Every repeat of this app."""
