"""A server that goes away under a connected Bridge: every operation says so, and loses nothing.

Each backend's operations are called after their server was stopped (a private
``redis-server``, or an AMQP port nothing listens on). Each raises
``BackendUnavailable`` naming the operation and the server (password redacted), never
a redis-py, kombu or botocore exception; the state a user would check afterwards (a
due job, a dead letter) is still there for the retry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from celery import Celery

from bridge import BackendUnavailable, Bridge, Settings
from bridge.redis.deadletters import DeadLetter
from tests.redis_server import RedisServerProcess

pytestmark = [pytest.mark.redis]


# Every backend named: a default left out would start an embedded server in this folder.
BROKER = {"queue_backend": "broker", "jobs_backend": "broker", "lock_backend": "redis"}
GONE = "Check that the server is running and the URL is right"


def raises_naming(call: Callable[[], Any], what: str, where: str | None) -> str:
    with pytest.raises(BackendUnavailable) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{what} failed" + (f" at {where}" if where else "")), message
    assert GONE in message, message
    return message


def bridged(name: str, **settings: Any) -> Bridge:
    from bridge import celeryconfig

    values = Settings(**settings)
    app = Celery(name, set_as_current=False)
    app.config_from_object(celeryconfig.build(values))
    return Bridge(app, settings=values)


def test_every_redis_backend_operation_names_itself_when_redis_is_gone(private_redis: RedisServerProcess):
    url = private_redis.url
    bridge = bridged(
        "gone-redis", redis_url=url, queue_backend="redis", jobs_backend="redis", lock_backend="redis"
    )
    try:
        # Connected, script loaded, a delayed job and a held lock standing: then the server goes.
        bridge.queue.add("t", {}, idempotency_key="k", delay_ms=60_000)
        lock = bridge.lock("singleton", ttl_ms=60_000)
        lock.acquire()
        private_redis.kill9()

        backend: Any = bridge.backend
        raises_naming(lambda: bridge.queue.add("t", {}, idempotency_key="k2"), "queue.add", url)
        raises_naming(
            lambda: bridge.jobs.cancel(name="t", idempotency_key="k"), "cancelling a delayed job", url
        )
        raises_naming(lambda: backend.withdraw("some-job"), "withdrawing a queued job", url)
        raises_naming(lambda: backend.release_guard("some-job"), "releasing an idempotency guard", url)
        raises_naming(lambda: backend.delayed_count("celery"), "counting delayed jobs", url)
        raises_naming(lambda: backend.promote_due(), "promoting delayed jobs", url)
        raises_naming(lambda: bridge.stats(["celery"]), "jobs stats", url)
        raises_naming(lock.release, "releasing lock 'singleton'", None)
    finally:
        bridge.close()


@pytest.mark.rabbitmq
def test_every_broker_backend_operation_names_its_guard_store_when_it_is_gone(
    private_redis: RedisServerProcess, amqp_url: str
):
    store = private_redis.url
    app = Celery("gone-store", set_as_current=False)
    app.conf.update(broker_url=amqp_url)
    bridge = Bridge(app, settings=Settings(redis_url=store, **BROKER))
    try:
        bridge.queue.add("amqp.record", {"key": "d"}, idempotency_key="d", delay_ms=60_000)
        private_redis.kill9()

        backend: Any = bridge.backend
        raises_naming(lambda: bridge.queue.add("amqp.record", {}, idempotency_key="k"), "queue.add", None)
        raises_naming(
            lambda: bridge.queue.add("amqp.record", {}, idempotency_key="k", delay_ms=5_000),
            "queue.add",
            store,
        )
        raises_naming(backend.promote_due, "promoting delayed jobs", store)
        cancel = lambda: bridge.jobs.cancel(name="amqp.record", idempotency_key="d")  # noqa: E731
        raises_naming(cancel, "cancelling a delayed job", store)
        raises_naming(lambda: backend.delayed_count("celery"), "counting delayed jobs", store)
        raises_naming(lambda: backend.release_guard("some-job"), "releasing an idempotency guard", store)
        raises_naming(lambda: bridge.stats(["celery"]), "jobs stats", store)
    finally:
        bridge.close()


@pytest.mark.rabbitmq
def test_with_the_broker_gone_a_due_job_and_a_dead_letter_stay_for_the_retry(
    private_redis: RedisServerProcess, amqp_url: str
):
    down = "amqp://guest:guest@127.0.0.1:1//"  # nothing listens on port 1
    app = Celery("gone-broker", set_as_current=False)
    app.conf.update(broker_url=down, task_publish_retry=False, broker_connection_timeout=1,
                    broker_connection_max_retries=0)  # fmt: skip
    bridge = Bridge(app, settings=Settings(redis_url=private_redis.url, **BROKER))
    try:
        backend: Any = bridge.backend
        bridge.queue.add("amqp.record", {"key": "due"}, idempotency_key="due", delay_ms=1)  # the store only
        time.sleep(0.05)  # past its 1 ms delay
        raises_naming(backend.promote_due, "publishing a due job", "amqp://guest:***@127.0.0.1:1//")
        assert backend.client.hlen("bridge:broker:jobs") == 1  # kept ("promoting"): published when back

        letters = bridge.dead_letters
        assert letters is not None
        letters.record(DeadLetter(id="j1", name="amqp.record", queue="celery", data={"key": "x"},
                                  exc_type="E", exc_message="m", traceback="", attempts=1,
                                  failed_at=0.0))  # fmt: skip
        raises_naming(lambda: letters.retry("celery", "j1"), "retrying a dead letter", None)
        assert [e.id for e in letters.entries("celery")] == ["j1"]  # put back, not lost

        raises_naming(lambda: bridge.stats(["celery"]), "jobs stats", None)
    finally:
        bridge.close()


@pytest.mark.sqs
def test_an_sqs_cancel_with_its_guard_store_gone_says_the_tombstone_was_not_written(
    private_redis: RedisServerProcess, sqs
):
    from bridge.sqs.admin import SqsAdmin

    url = SqsAdmin(sqs.settings()).ensure_queue("gone-store")
    bridge = bridged(
        "gone-sqs",
        queue_backend="sqs",
        jobs_backend="sqs",
        lock_backend="redis",
        redis_url=private_redis.url,
        sqs_queue_url=url,
        aws_region="us-east-1",
        aws_endpoint_url_sqs=sqs.endpoint,
    )
    try:
        bridge.queue.add("t", {}, idempotency_key="k")
        private_redis.kill9()
        cancel = lambda: bridge.jobs.cancel(name="t", idempotency_key="k")  # noqa: E731
        raises_naming(cancel, "cancelling an SQS job (writing its tombstone)", None)
    finally:
        bridge.close()
