"""Apps whose task_serializer is not JSON: the bridge sends their jobs in that serializer, workers run them.

The bridge's own records (guards, delayed-set bookkeeping) stay JSON; the job
message is exactly what Celery's own producer writes for the app.
"""

from __future__ import annotations

import base64
import json

import pytest
import redis
from celery import Celery
from kombu.serialization import registry

from bridge import Bridge
from tests.conftest import CeleryProcess, Server, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]

CONTENT_TYPES = {
    "pickle": "application/x-python-serialize",
    "msgpack": "application/x-msgpack",
    "yaml": "application/x-yaml",
}


def producer(server: Server, serializer: str) -> Bridge:
    app = Celery("serial", set_as_current=False)
    app.conf.update(
        broker_url=server.url, result_backend=server.url, task_serializer=serializer,
        result_serializer=serializer, accept_content=[serializer], result_accept_content=[serializer],
    )  # fmt: skip
    return Bridge(app)


@pytest.mark.parametrize("serializer", sorted(CONTENT_TYPES))
def test_jobs_travel_in_the_apps_serializer_and_run_once(
    system_redis: Server, redis_client: redis.Redis, tmp_path, serializer: str
) -> None:
    bridge = producer(system_redis, serializer)
    first = bridge.queue.add("serial.record", {"key": "a", "n": 1}, idempotency_key="a")
    again = bridge.queue.add("serial.record", {"key": "a", "n": 1}, idempotency_key="a")
    assert again.deduplicated
    assert again.id == first.id

    (raw,) = redis_client.lrange("celery", 0, -1)  # one message: the duplicate sent nothing
    message = json.loads(raw)
    assert message["content-type"] == CONTENT_TYPES[serializer]
    body = base64.b64decode(message["body"])
    args, kwargs, _embed = registry.loads(body, message["content-type"], message["content-encoding"],
                                          accept=[message["content-type"]])  # fmt: skip
    assert (list(args), kwargs) == ([], {"key": "a", "n": 1})

    bridge.queue.add("serial.record", {"key": "later"}, delay_ms=500, idempotency_key="later")
    env = system_redis.env(TEST_SERIALIZER=serializer, TEST_BROKER_URL=system_redis.url)
    # Celery refuses a pickle-accepting worker that runs as root (CI does) unless told so.
    env["C_FORCE_ROOT"] = "1"
    env.pop("REDIS_URL")
    env.pop("QUEUE_BACKEND")
    args = [
        "worker",
        "-c",
        "1",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=INFO",
    ]
    worker = CeleryProcess.spawn(args, tmp_path / "worker.log", env, app="tests.apps.serializer_app")
    try:
        runs = lambda: [json.loads(r) for r in redis_client.lrange("test:serial:runs", 0, -1)]  # noqa: E731
        assert wait_for(lambda: len(runs()) >= 2, timeout=45), worker.tail()
        assert sorted(r["key"] for r in runs()) == ["a", "later"]
        assert next(r for r in runs() if r["key"] == "a")["id"] == first.id
        result = bridge.app.AsyncResult(first.id)
        assert result.get(timeout=10) == {"ran": "a"}  # stored and read back in the app's serializer
    finally:
        worker.stop()
        bridge.close()
