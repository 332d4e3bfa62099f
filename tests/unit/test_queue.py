"""Adds are validated before anything reaches a backend; backends resolve by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from bridge.core.backend import QueueBackend, resolve_backend
from bridge.core.ids import job_id_for
from bridge.errors import ConfigError, InvalidJob, InvalidPayload
from bridge.job import Job, JobRequest
from bridge.queue import JobQueue, make_request
from bridge.redis.backend import RedisBackend


class RecordingBackend(QueueBackend):
    """Records what reaches it; a stand-in only for checking validation order."""

    @classmethod
    def broker_settings(cls, settings: Any) -> dict[str, Any]:
        return {}

    def __init__(self) -> None:
        self.batches: list[list[JobRequest]] = []

    def enqueue(self, requests: Sequence[JobRequest]) -> list[Job]:
        self.batches.append(list(requests))
        return [Job(id=r.job_id, name=r.name, queue=r.queue or "celery") for r in requests]

    def promote_due(self) -> float | None:
        return None

    def cancel_delayed(self, job_id: str) -> bool:
        return False

    def withdraw(self, job_id: str) -> bool:
        return False

    def release_guard(self, job_id: str) -> None:
        return None


def test_make_request_returns_the_validated_request() -> None:
    req = make_request("emails.send", {"to": "a@b.c"}, idempotency_key="k", delay_ms=1500.0, priority=3)
    assert req.name == "emails.send"
    assert req.data == {"to": "a@b.c"}
    assert req.job_id == job_id_for("emails.send", "k")
    assert (req.delay_ms, req.priority, req.queue) == (1500, 3, None)


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"name": ""}, InvalidJob, "name"),
        ({"data": ["x"]}, InvalidPayload, "data"),
        ({"idempotency_key": ""}, InvalidJob, "idempotency_key"),
        ({"delay_ms": -1}, InvalidJob, "delay_ms"),
        ({"queue": " "}, InvalidJob, "queue"),
        ({"priority": 300}, InvalidJob, "priority"),
    ],
)
def test_make_request_refuses_each_bad_field(kwargs: dict[str, object], error: type, field: str) -> None:
    args: dict[str, object] = {"name": "emails.send", "data": {"to": "a@b.c"}, **kwargs}
    with pytest.raises(error) as info:
        make_request(args.pop("name"), args.pop("data"), **args)
    assert info.value.field == field


def test_add_bulk_sends_nothing_when_one_item_is_bad() -> None:
    backend = RecordingBackend()
    jobs = [("emails.send", {"n": 1}), ("emails.send", [2]), ("emails.send", {"n": 3})]
    with pytest.raises(InvalidPayload) as info:
        JobQueue(backend).add_bulk(jobs)  # type: ignore[arg-type]
    assert info.value.field == "jobs[1].data"
    assert str(info.value).startswith("jobs[1].data: ")
    assert backend.batches == []


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (("emails.send", {}, {"delay_ms": -5}), "jobs[1].delay_ms"),
        (("emails.send", {}, {"group": "x"}), "jobs[1]"),
        (("emails.send",), "jobs[1]"),
        (["emails.send", {}], "jobs[1]"),
    ],
)
def test_add_bulk_names_the_bad_item(item: object, field: str) -> None:
    backend = RecordingBackend()
    with pytest.raises(InvalidJob) as info:
        JobQueue(backend).add_bulk([("emails.send", {}), item])  # type: ignore[list-item]
    assert info.value.field == field
    assert backend.batches == []


def test_add_bulk_sends_all_good_items_in_one_batch() -> None:
    backend = RecordingBackend()
    jobs = JobQueue(backend).add_bulk(
        [("emails.send", {"n": 1}), ("emails.send", {"n": 2}, {"idempotency_key": "k2"})]
    )
    assert len(backend.batches) == 1
    assert [r.data for r in backend.batches[0]] == [{"n": 1}, {"n": 2}]
    assert jobs[1].id == job_id_for("emails.send", "k2")


def test_add_bulk_of_nothing_returns_nothing_and_calls_no_backend() -> None:
    backend = RecordingBackend()
    assert JobQueue(backend).add_bulk([]) == []
    assert backend.batches == []


def test_resolve_backend_by_name() -> None:
    assert resolve_backend("redis") is RedisBackend


def test_resolve_backend_embedded_is_the_redis_backend_on_its_own_server() -> None:
    from bridge.embedded.backend import EmbeddedBackend
    from bridge.redis.backend import RedisBackend

    assert resolve_backend("embedded") is EmbeddedBackend
    assert issubclass(EmbeddedBackend, RedisBackend)


@pytest.mark.parametrize("name", ["nope", "bullmq"])  # aliases resolve in Settings, not here
def test_resolve_backend_refuses_unknown_or_unavailable(name: str) -> None:
    with pytest.raises(ConfigError, match=f"QUEUE_BACKEND='{name}'"):
        resolve_backend(name)
