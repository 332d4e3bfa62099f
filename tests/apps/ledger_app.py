"""A Celery app for integration tests: handlers write what ran into a Redis ledger.

Workers are started as real processes with ``celery -A tests.apps.ledger_app worker``;
REDIS_URL (and any bridge variable) comes from the environment the test sets.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import time
from typing import Any

import redis
from celery import Celery, signals

from bridge import Bridge

app = Celery("ledger")
app.config_from_object("celeryconfig")
if os.environ.get("TEST_KEYPREFIX"):  # one tenant of several on one database
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "global_keyprefix": os.environ["TEST_KEYPREFIX"],
    }
if os.environ.get("TEST_PREFETCH_MULTIPLIER"):  # an app's own config, as Celery's docs write it (4)
    app.conf.worker_prefetch_multiplier = int(os.environ["TEST_PREFETCH_MULTIPLIER"])
bridge = Bridge(app)

LEDGER = "test:ledger"
RECORD_STARTED = "test:record_started"  # ledger.record runs with sleep_s, as they start


_ledger: redis.Redis | None = None


def client() -> redis.Redis:
    """Where the ledger is written: the server under test (system Redis or the embedded one), the
    app's own; or, for an app with no Redis of its own (guards in DynamoDB), TEST_LEDGER_URL's."""
    global _ledger
    if os.environ.get("TEST_LEDGER_URL"):
        if _ledger is None:
            _ledger = redis.Redis.from_url(os.environ["TEST_LEDGER_URL"])
        return _ledger
    return bridge.backend.client  # type: ignore[attr-defined, no-any-return]


def server_ms() -> int:
    seconds, micros = client().time()
    return int(seconds) * 1000 + int(micros) // 1000


@app.task(name="ledger.record", bind=True)
def record(self: Any, key: str | None = None, sleep_s: float = 0, **data: Any) -> dict[str, Any]:
    """Write one ledger line per run: id, key, worker and the server time it ran."""
    started = server_ms()
    if sleep_s:
        # A long run also says when it starts: a redelivery shows before the first run ends.
        client().rpush(RECORD_STARTED, json.dumps({"id": self.request.id, "key": key, "at_ms": started}))
        time.sleep(sleep_s)
    line = {
        "id": self.request.id,
        "key": key,
        "worker": self.request.hostname,
        "at_ms": started,
        "data": data,
    }
    client().rpush(LEDGER, json.dumps(line))
    return {"ran": self.request.id, "key": key}


@signals.worker_ready.connect
def _announce_ready(sender: Any = None, **_: Any) -> None:
    client().set(f"test:ready:{sender.hostname}", os.getpid())


@signals.worker_init.connect
@signals.worker_process_init.connect
def _dump_stacks_on_sigusr2(**_: Any) -> None:
    # A test that fails sends SIGUSR2 to its workers: every thread's stack goes to
    # the log, so a hung job shows where it hangs.
    faulthandler.register(signal.SIGUSR2, file=sys.__stderr__, all_threads=True)  # not the LoggingProxy


@app.task(name="ledger.capture", bind=True)
@bridge.idempotent(lease_ms=2_000)
def capture(self: Any, order_id: int, sleep_s: float = 0) -> dict[str, Any]:
    """A payment capture: its side effect (the ledger line) must happen once per job."""
    client().rpush("test:started", json.dumps({"id": self.request.id, "pid": os.getpid()}))
    if sleep_s:
        time.sleep(sleep_s)
    client().rpush(LEDGER, json.dumps({"id": self.request.id, "key": f"order-{order_id}"}))
    return {"captured": order_id}


@signals.task_postrun.connect
def _record_capture_outcomes(
    sender: Any = None, task_id: str | None = None, state: str | None = None, retval: Any = None, **_: Any
) -> None:
    """Every delivery of ledger.capture, as it ends: the test sees each one, not only the body's run."""
    if getattr(sender, "name", None) == "ledger.capture":
        outcome = {"id": task_id, "state": state, "retval": retval if state == "SUCCESS" else None}
        client().rpush("test:outcomes", json.dumps(outcome))


@app.task(
    name="ledger.flaky", bind=True, autoretry_for=(RuntimeError,), max_retries=3, default_retry_delay=0.3
)
@bridge.idempotent(key=lambda order_id: f"flaky-{order_id}")
def flaky(self: Any, order_id: int) -> str:
    """Fails on its first attempt; the retry must be allowed to run the body."""
    if client().incr(f"test:attempts:{order_id}") == 1:
        raise RuntimeError("first attempt fails")
    client().rpush(LEDGER, json.dumps({"id": self.request.id, "key": f"flaky-{order_id}"}))
    return "ok"


@app.task(name="ledger.fail", bind=True)
def fail(self: Any, key: str | None = None) -> None:
    """Fails for good unless test:fixed is set: a dead letter."""
    if not client().exists("test:fixed"):
        raise ValueError(f"cannot process {key}")
    client().rpush(LEDGER, json.dumps({"id": self.request.id, "key": key}))


@app.task(name="ledger.fail_quietly", bridge_dead_letter=False)
def fail_quietly() -> None:
    """Fails, but opted out of dead letters."""
    raise ValueError("nobody keeps this")


@app.task(name="ledger.block", bind=True)
def block(self: Any, key: str | None = None) -> None:
    """Holds its worker slot until the test pushes to test:release (or 60 s pass)."""
    client().rpush("test:blocked", self.request.id)
    client().blpop(["test:release"], timeout=60)


@app.task(name="ledger.retry_once", bind=True, max_retries=3)
def retry_once(self: Any, key: str) -> None:
    """Retries once; each attempt records the SQS message group it arrived in."""
    group = (self.request.properties or {}).get("MessageGroupId")
    client().rpush("test:groups", json.dumps({"retries": self.request.retries, "group": group}))
    if self.request.retries == 0:
        raise self.retry(countdown=0)
    client().rpush(LEDGER, json.dumps({"id": self.request.id, "key": key}))


@app.task(name="ledger.cheap", bind=True, ignore_result=True)
def cheap(self: Any, key: str, fail: bool = False) -> None:
    """As cheap as a ledger handler gets (no result stored): one RPUSH of a line.

    The line is ``"<key> <delivery tag> <worker> <time>"``.

    The delivery tag is kombu's id of the published message: a redelivery of the same
    message repeats it, a second publish of the same key would not. ``fail=True``
    fails for good (a dead letter) without writing anything.

    With ``LEDGER_FILE`` set the line goes to that append-only file instead: the fault
    tests stop the server under the worker, and a ledger on that server would fail (and
    so put back) a job whose write went through but whose reply never came.
    """
    if fail:
        raise ValueError(f"cannot process {key}")
    tag = (self.request.properties or {}).get("delivery_tag", "")
    line = f"{key} {tag} {self.request.hostname} {time.time():.3f}"
    path = os.environ.get("LEDGER_FILE")
    if path:
        # One write(2) of one line with O_APPEND: lines of concurrent processes never interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
        return
    client().rpush("test:runs", line)


@signals.task_prerun.connect
def _trace_delivery(task_id: str = "", task: Any = None, kwargs: Any = None, **_: Any) -> None:
    """Fault tests count deliveries of ledger.capture and of jobs sent with ``trace=True``."""
    if getattr(task, "name", None) == "ledger.capture" or (kwargs or {}).get("trace"):
        line = {"id": task_id, "pid": os.getpid(), "at_ms": server_ms()}
        client().rpush("test:deliveries", json.dumps(line))


@signals.task_postrun.connect
def _stall_before_ack(task_id: str = "", task: Any = None, **_: Any) -> None:
    """With test:stall_after_body set, ledger.capture stalls after its body and result, before the ack."""
    if getattr(task, "name", None) == "ledger.capture" and client().exists("test:stall_after_body"):
        client().rpush("test:body_done", task_id)
        time.sleep(60)  # the test kills the worker in this window


@app.task(name="ledger.kombu_state")
def kombu_state() -> dict[str, Any]:
    """What this worker process runs: its broker transport, and any kombu/Celery class the bridge changed.

    Scans the classes of the modules a worker's fetch, acks and consumer live in for a
    function defined in the bridge: a class-wide patch would show up here.
    """
    import importlib
    import inspect

    patched = []
    for module_name in ("kombu.transport.redis", "kombu.transport.virtual.base", "kombu.messaging",
                        "kombu.connection", "celery.worker.consumer.consumer", "celery.worker.request",
                        "celery.app.base", "celery.app.amqp"):  # fmt: skip
        module = importlib.import_module(module_name)
        for cls_name, cls in vars(module).items():
            if not inspect.isclass(cls) or cls.__module__ != module_name:
                continue
            for attr, value in vars(cls).items():
                function = getattr(value, "__func__", value)
                if getattr(function, "__module__", "").startswith("bridge"):
                    patched.append(f"{module_name}.{cls_name}.{attr}")
    return {"broker_transport": app.conf.broker_transport, "patched": patched}
