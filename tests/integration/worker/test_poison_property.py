"""Any list item at all on a worker's queue: taken off, rejected as a dead letter, and the worker carries on.

hypothesis generates batches of items a queue can hold: raw bytes (UTF-8 or not),
JSON values, kombu envelopes with bodies of any shape, and Celery task messages
whose args, kwargs or embed have the wrong type. One real worker takes every batch;
after each, a good job added behind it must run exactly once, the worker must still
be running, every bad item must be a rejected dead letter, and nothing may be left
unacked for kombu's sweep to hand out again.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import read_ledger, wait_for
from tests.integration.worker.test_rejected import task_headers

pytestmark = [pytest.mark.redis, pytest.mark.worker]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def envelope(body: bytes, headers: dict[str, Any] | None, content_type: str = "application/json") -> bytes:
    """A kombu message as kombu's Redis transport stores it, around ``body``."""
    properties = {"delivery_tag": str(uuid.uuid4()), "body_encoding": "base64", "priority": 0,
                  "delivery_info": {"exchange": "", "routing_key": "celery"}}  # fmt: skip
    message = {"body": base64.b64encode(body).decode(), "content-encoding": "utf-8",
               "content-type": content_type, "headers": headers or {}, "properties": properties}  # fmt: skip
    return json.dumps(message).encode()


@st.composite
def wrong_task_bodies(draw: st.DrawFn) -> bytes:
    """A Celery task message whose body is JSON, but not ``[list, object, object]``."""
    body = draw(
        json_values.filter(
            lambda v: not (
                isinstance(v, list) and len(v) == 3 and isinstance(v[0], list)
                and isinstance(v[1], dict) and isinstance(v[2], dict | None)
            )
        )
    )  # fmt: skip
    return envelope(json.dumps(body).encode(), task_headers())


poison = st.one_of(
    st.binary(min_size=1, max_size=64),  # random bytes: mostly not UTF-8, never a message
    json_values.map(lambda v: json.dumps(v).encode()),  # JSON that is no kombu message
    st.binary(max_size=32).map(lambda body: envelope(body, task_headers())),  # a body that does not decode
    wrong_task_bodies(),
    st.binary(max_size=32).map(lambda body: envelope(body, task_headers(), "application/x-python-serialize")),
)

SETTINGS = settings(
    max_examples=int(os.environ.get("BRIDGE_POISON_EXAMPLES", "8")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def test_any_list_item_is_rejected_and_the_worker_carries_on(
    start_worker, make_bridge, redis_client: redis.Redis
):
    bridge = make_bridge()
    worker = start_worker("w1")
    expected_letters = 0

    @SETTINGS
    @given(items=st.lists(poison, min_size=1, max_size=6))
    def check(items: list[bytes]) -> None:
        nonlocal expected_letters
        runs_before = len(read_ledger(redis_client))
        for item in items:
            redis_client.lpush("celery", item)
        good = bridge.queue.add("ledger.record", {"key": "behind-the-poison"})
        assert wait_for(lambda: len(read_ledger(redis_client)) == runs_before + 1, timeout=30), worker.tail()
        assert read_ledger(redis_client)[-1]["id"] == good.id
        assert worker.proc.poll() is None, worker.tail()
        expected_letters += len(items)
        letters = bridge.dead_letters.entries("celery", limit=10_000)
        assert len(letters) == expected_letters, [(e.exc_type, e.exc_message[:80]) for e in letters[:5]]
        assert all(letter.rejected for letter in letters)
        assert wait_for(lambda: redis_client.hlen("unacked") == 0, timeout=10)
        assert redis_client.llen("celery") == 0

    check()
    assert len(read_ledger(redis_client)) == len({line["id"] for line in read_ledger(redis_client)})
