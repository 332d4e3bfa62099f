"""A client made on first use is made once, even when threads race for the first use.

Producer threads sharing one Bridge (a web server's threads, a thread pool adding jobs) each
reach for the guard store, the lock store or an AWS client the first time at about the same
moment. Each loser of an unguarded race made a client of its own, then dropped it with its
connection open: a leaked socket per thread, and locks or guards taken on a client the
Bridge no longer closes. The factory here is slowed down so the race is lost every time
when nothing guards it (a pure unit: no server is reached, the factories are stand-ins).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from celery import Celery

from bridge import Bridge
from bridge.broker.guard import GuardStore
from bridge.dynamodb.table import DynamoTable
from bridge.settings import Settings
from bridge.sqs.eventbridge import EventBridgeScheduler

THREADS = 8


def slow_factory(made: list[object]) -> Callable[..., object]:
    def make(*args: Any, **kwargs: Any) -> object:
        time.sleep(0.05)  # long enough for every racing thread to find no client yet
        client = object()
        made.append(client)
        return client

    return make


def race(first_use: Callable[[], object]) -> set[int]:
    """Call ``first_use`` from THREADS threads released at once; the ids of what they got."""
    start = threading.Barrier(THREADS)
    got: list[object] = []

    def run() -> None:
        start.wait()
        got.append(first_use())

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == THREADS
    return {id(client) for client in got}


def test_the_guard_store_makes_one_redis_client(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []
    monkeypatch.setattr("bridge.broker.guard.redis_client", slow_factory(made))
    store = GuardStore(Settings(redis_url="redis://127.0.0.1:6379/9", guard_store="redis"), "the broker")
    assert race(lambda: store.client) == {id(made[0])}
    assert len(made) == 1


def test_the_lock_store_makes_one_redis_client(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []
    monkeypatch.setattr("bridge.bridge.redis_client", slow_factory(made))
    app = Celery("once", set_as_current=False, broker="amqp://guest:guest@127.0.0.1:5672//")
    settings = Settings(
        queue_backend="broker", jobs_backend="broker", lock_backend="redis",
        redis_url="redis://127.0.0.1:6379/9",
    )  # fmt: skip
    bridge = Bridge(app, settings=settings)
    assert race(lambda: bridge.store) == {id(made[0])}
    assert len(made) == 1


def test_the_dynamodb_table_makes_one_boto3_client(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []
    monkeypatch.setattr("bridge.dynamodb.table.aws_client", slow_factory(made))
    table = DynamoTable("jobs", region="us-east-1")
    assert race(lambda: table.client) == {id(made[0])}
    assert len(made) == 1


def test_eventbridge_repeats_make_one_boto3_client(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []
    monkeypatch.setattr("bridge.sqs.eventbridge.aws_client", slow_factory(made))
    settings = Settings(
        queue_backend="sqs", jobs_backend="sqs", aws_region="us-east-1",
        sqs_queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
    )  # fmt: skip
    scheduler = EventBridgeScheduler(Celery("once", set_as_current=False), settings)
    assert race(lambda: scheduler.client) == {id(made[0])}
    assert len(made) == 1
