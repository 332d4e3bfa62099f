"""Malformed messages on a worker's queue: rejected unrun, counted, visible; the worker carries on.

Bad messages are written the way anything else on the broker would write them:
through kombu's own producer (the Redis transport's list format: a JSON object
with the body, its content type and encoding, headers and properties), or as raw
list items with redis-py.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from bridge import Bridge, celeryconfig
from tests.conftest import BACKENDS, JOBS, ROOT, read_ledger, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def publish(bridge: Bridge, body: bytes, content_type: str, headers: dict[str, Any], **props: Any) -> None:
    """Put a message on the worker's queue ("celery") with kombu's producer, body as given."""
    with bridge.app.connection_for_write() as conn:
        conn.Producer().publish(
            body, routing_key="celery", content_type=content_type, content_encoding="binary", headers=headers,
            **props,
        )  # fmt: skip


def task_headers(task: str = "ledger.record") -> dict[str, Any]:
    """Celery protocol 2 headers, as app.send_task would write them."""
    job_id = str(uuid.uuid4())
    return {"lang": "py", "task": task, "id": job_id, "root_id": job_id, "argsrepr": "()", "kwargsrepr": "{}"}


class _Exploit:
    """Unpickling runs ``code``: the proof that a pickle body was (or was not) deserialised."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (self.code,))


def exploit_body(marker: Path, url: str) -> bytes:
    code = (
        f"__import__('pathlib').Path({str(marker)!r}).write_text('ran')\n"
        f"with __import__('redis').Redis.from_url({url!r}) as client: client.set('test:pwned', 1)"
    )
    return pickle.dumps(((), {"key": _Exploit(code)}, {"callbacks": None}))


def jobs_cli(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [JOBS, *args], cwd=ROOT, env=server.env(), capture_output=True,
        text=True, timeout=90,
    )  # fmt: skip


@pytest.mark.parametrize("backend_kind", BACKENDS, indirect=True)
def test_malformed_messages_are_rejected_unrun_counted_and_the_worker_carries_on(
    start_worker, make_bridge, redis_client: redis.Redis, server, tmp_path: Path
):
    bridge = make_bridge()
    worker = start_worker("w1")
    marker = tmp_path / "unpickled"
    sent: dict[str, str] = {}  # message id -> the rejection the dead letter must name

    garbage = task_headers()
    publish(bridge, b"\xff\x00 not json {", "application/json", garbage)
    sent[garbage["id"]] = "DecodeError"

    pickled = task_headers()
    publish(bridge, exploit_body(marker, server.url), "application/x-python-serialize", pickled)
    sent[pickled["id"]] = "ContentDisallowed"

    for content_type in ("application/x-yaml", "text/plain"):
        wrong = task_headers()
        publish(bridge, b"key: value\n", content_type, wrong)
        sent[wrong["id"]] = "ContentDisallowed"

    no_task = str(uuid.uuid4())  # valid JSON, but no task name anywhere
    publish(bridge, json.dumps({"hello": "world"}).encode(), "application/json", {}, correlation_id=no_task)
    sent[no_task] = "NotATaskMessage"

    unknown = task_headers("no.such.task")
    publish(bridge, json.dumps([[], {}, {}]).encode(), "application/json", unknown)
    sent[unknown["id"]] = "NotRegistered"

    # Task messages whose body is not [args, kwargs, embed]: Celery's unpacking stopped the worker.
    for body in ({"not": "a task"}, [], [[], [], {}], ["a", {}, {}]):
        shaped_wrong = task_headers()
        publish(bridge, json.dumps(body).encode(), "application/json", shaped_wrong)
        sent[shaped_wrong["id"]] = "InvalidTaskError"

    # Not kombu messages at all: each of these alone used to stop the worker.
    redis_client.lpush("celery", b"\x00 this is not JSON")
    redis_client.lpush("celery", json.dumps({"hello": 1}))
    redis_client.lpush("celery", b"\xff\xfe\x80 not even UTF-8")
    redis_client.lpush("celery", pickle.dumps({"raw": "pickle"}))
    # Shaped like one (the worker's fetch records it as unacked), but its body is not base64.
    properties = {"delivery_tag": str(uuid.uuid4()), "body_encoding": "base64",
                  "delivery_info": {"exchange": "", "routing_key": "celery"}}  # fmt: skip
    envelope = {"body": "not base64!", "content-encoding": "utf-8", "content-type": "application/json",
                "headers": task_headers(), "properties": properties}  # fmt: skip
    redis_client.lpush("celery", json.dumps(envelope))

    good = bridge.queue.add("ledger.record", {"key": "after-the-bad-ones"})
    assert wait_for(lambda: len(read_ledger(redis_client)) >= 1, timeout=30), worker.tail()

    # Nothing bad ran; the good job, queued behind all of them, did.
    assert [line["id"] for line in read_ledger(redis_client)] == [good.id]
    assert not marker.exists()
    assert not redis_client.exists("test:pwned")
    assert worker.proc.poll() is None, worker.tail()

    # Counted and visible: one dead letter each, with its id and the reason.
    letters = {e.id: e for e in bridge.dead_letters.entries("celery")}
    assert len(letters) == len(sent) + 5
    for message_id, kind in sent.items():
        assert letters[message_id].exc_type == kind
        assert letters[message_id].rejected
        assert letters[message_id].attempts == 0
    assert "application/x-python-serialize" in letters[pickled["id"]].exc_message
    assert letters[unknown["id"]].name == "no.such.task"
    malformed = [e for e in letters.values() if e.exc_type == "MalformedMessage"]
    assert len(malformed) == 5
    # Nothing rejected is left unacked, for kombu's sweep to hand out again and again.
    assert redis_client.hlen("unacked") == 0 == redis_client.zcard("unacked_index")
    assert bridge.stats(["celery"])["celery"].failed == len(letters)

    log = worker.log.read_text(errors="replace")
    for message_id in letters:
        assert f"WARNING/MainProcess] bridge: rejected message {message_id!r}" in log

    listed = jobs_cli(server, "dlq", "list", "--queue", "celery", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {e["id"] for e in json.loads(listed.stdout)} == set(letters)

    # A rejected message was never decoded, so there is nothing to retry: refused, and kept.
    retry = jobs_cli(server, "dlq", "retry", "--queue", "celery", "--id", pickled["id"])
    assert retry.returncode == 2
    assert "cannot be retried" in retry.stderr
    assert bridge.dead_letters.count("celery") == len(letters)


def test_json_only_end_to_end_a_pickle_message_is_never_deserialised(
    start_worker, make_bridge, redis_client: redis.Redis, server, tmp_path: Path
):
    settings = server.settings()
    assert celeryconfig.build(settings)["accept_content"] == ["json"]
    bridge = make_bridge()
    worker = start_worker("w1")
    marker = tmp_path / "unpickled"
    body = exploit_body(marker, server.url)
    headers = task_headers()

    publish(bridge, body, "application/x-python-serialize", headers)
    assert wait_for(lambda: bridge.dead_letters.count("celery") == 1, timeout=30), worker.tail()
    good = bridge.queue.add("ledger.record", {"key": "next"})
    assert wait_for(lambda: len(read_ledger(redis_client)) == 1, timeout=30), worker.tail()

    assert [line["id"] for line in read_ledger(redis_client)] == [good.id]
    assert not marker.exists()
    assert not redis_client.exists("test:pwned")
    [letter] = bridge.dead_letters.entries("celery")
    assert (letter.id, letter.exc_type, letter.data) == (headers["id"], "ContentDisallowed", {})

    # The control: the same body, unpickled here, does create the marker and the key.
    pickle.loads(body)  # the test's own payload: proves the check above means something
    assert marker.read_text() == "ran"
    assert redis_client.exists("test:pwned")


def test_ten_megabyte_poison_items_are_rejected_once_each_and_the_worker_carries_on(
    start_worker, make_bridge, redis_client: redis.Redis
):
    """10 MB of random bytes, and a 10 MB task message whose body is not a task: rejected, logged once."""
    bridge = make_bridge()
    worker = start_worker("w1")
    size = 10 * 1024 * 1024
    redis_client.lpush("celery", os.urandom(size))
    huge = task_headers()
    publish(bridge, json.dumps({"blob": "x" * size}).encode(), "application/json", huge)

    good = bridge.queue.add("ledger.record", {"key": "after-the-huge-ones"})
    assert wait_for(lambda: len(read_ledger(redis_client)) >= 1, timeout=60), worker.tail()
    assert [line["id"] for line in read_ledger(redis_client)] == [good.id]
    assert worker.proc.poll() is None, worker.tail()

    letters = bridge.dead_letters.entries("celery")
    assert sorted(e.exc_type for e in letters) == ["InvalidTaskError", "MalformedMessage"]
    assert huge["id"] in {e.id for e in letters}
    assert redis_client.llen("celery") == 0
    assert redis_client.hlen("unacked") == 0
    log = worker.log.read_text(errors="replace")
    assert log.count("bridge: rejected message") == 2, worker.tail(20)
    assert len(log) < 1_000_000  # what was rejected is named and quoted briefly, not logged whole
    # Dead letters keep a short excerpt of the item, not 10 MB each.
    assert 0 < sum(len(raw) for raw in redis_client.lrange("bridge:dead:celery", 0, -1)) < 100_000
