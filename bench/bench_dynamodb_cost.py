"""DynamoDB requests per add, run, cancel, hop, lock and @idempotent body, counted (``GUARD_STORE=dynamodb``).

Run from the repository root (moto's server is started in this process on a free
loopback port; no Redis is used)::

    .venv/bin/python bench/bench_dynamodb_cost.py            # 200 operations of each kind
    .venv/bin/python bench/bench_dynamodb_cost.py --ops 1000

It does not time anything: it counts the DynamoDB API calls the bridge's code
makes, with a ``before-call`` hook registered on the bridge's own DynamoDB clients
(``client.meta.events``: per client, nothing patched process-wide), and divides
by the number of operations. Each operation is the code path production runs:

* ``add (new key)`` / ``add (duplicate key)`` / ``add (no key)``: ``queue.add``;
* ``cancel``: ``jobs.cancel`` of a pending one-off (its tombstone);
* ``run``: what a worker asks of the store per message it receives (the
  tombstone check of ``SqsBackend.is_cancelled``), and with
  ``JOBS_DEDUPE_UNTIL=finish`` the key's release when the job finishes;
* ``EventBridge run``: the ``bridge.sqs_run`` task's enqueue of the run, plus the
  tombstone checks of the run message and of the job it sends;
* ``delay hop``: one 15-minute leg of a delay over SQS's 15 minutes: the
  ``bridge.sqs_hop`` task run with Celery's ``apply`` (it sends the next hop), plus
  the tombstone check of the hop's message as it arrives;
* ``@idempotent body``: one delivery of a ``@bridge.idempotent`` task, run with
  Celery's ``apply`` (a first delivery; a repeated one is counted too);
* ``lock``: one ``with bridge.lock(...)`` (acquire and release, not contended).

Every item the bridge writes is under 1 KB, so each write is one write request
unit and each (strongly consistent) read one read request unit. The report gives
reads and writes per operation, and the on-demand cost per million operations at
the prices in ``--wru-price``/``--rru-price`` (USD per million request units).
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# On-demand, us-east-1, Standard table class: AWS's price list after its 1 Nov 2024 cut.
WRU_PRICE = 0.625
RRU_PRICE = 0.125
READS = {"GetItem"}
WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


class Requests:
    """Counts DynamoDB API calls on the clients it is attached to."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-call.dynamodb", self._seen)

    def _seen(self, model: Any = None, **_: Any) -> None:
        self.calls[model.name] += 1

    def measure(self, ops: int, action: Callable[[int], Any]) -> tuple[float, float, Counter[str]]:
        self.calls.clear()
        for i in range(ops):
            action(i)
        reads = sum(n for name, n in self.calls.items() if name in READS)
        writes = sum(n for name, n in self.calls.items() if name in WRITES)
        return reads / ops, writes / ops, Counter(self.calls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=200, help="operations of each kind (default 200)")
    parser.add_argument("--wru-price", type=float, default=WRU_PRICE, help="USD per million write units")
    parser.add_argument("--rru-price", type=float, default=RRU_PRICE, help="USD per million read units")
    args = parser.parse_args()

    from celery import Celery
    from moto.server import ThreadedMotoServer

    from bridge import Bridge, Settings, celeryconfig
    from bridge.dynamodb.table import DynamoTable
    from bridge.sqs.admin import SqsAdmin
    from bridge.sqs.hops import HOP_TASK, hop_id
    from bridge.sqs.runs import RUN_TASK

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    for name in ("REDIS_URL", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_DYNAMODB"):
        os.environ.pop(name, None)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        base = Settings(aws_region="us-east-1", aws_endpoint_url_sqs=endpoint)
        url = SqsAdmin(base).ensure_queue("cost")
        settings = Settings(
            queue_backend="sqs", jobs_backend="sqs", sqs_queue_url=url, aws_region="us-east-1",
            aws_endpoint_url_sqs=endpoint, guard_store="dynamodb", dynamodb_table="cost",
            aws_endpoint_url_dynamodb=endpoint, lock_backend="dynamodb", bridge_home=Path("/nonexistent"),
        )  # fmt: skip
        DynamoTable.of(settings).ensure()
        app = Celery("cost")
        app.config_from_object(celeryconfig.build(settings))
        app.conf.task_always_eager = False
        bridge = Bridge(app, settings=settings)
        backend: Any = bridge.backend

        @app.task(name="cost.capture")
        @bridge.idempotent()
        def capture(order_id: int) -> int:
            return order_id

        requests = Requests()
        requests.attach(backend.store.client.table.client)
        requests.attach(bridge.store.table.client)  # type: ignore[union-attr]
        run = uuid.uuid4().hex
        ops = args.ops
        rows: list[tuple[str, float, float, Counter[str]]] = []

        def row(label: str, action: Callable[[int], Any]) -> None:
            rows.append((label, *requests.measure(ops, action)))

        row("add (new key)", lambda i: bridge.queue.add("cost.noop", {"i": i}, idempotency_key=f"{run}-{i}"))
        row(
            "add (duplicate key)",
            lambda i: bridge.queue.add("cost.noop", {"i": i}, idempotency_key=f"{run}-{i}"),
        )
        row("add (no key)", lambda i: bridge.queue.add("cost.noop", {"i": i}))
        row("cancel (one-off)", lambda i: bridge.jobs.cancel(name="cost.noop", idempotency_key=f"{run}-{i}"))
        row("run (received)", lambda i: backend.is_cancelled(f"{run}-job-{i}"))
        row("run, JOBS_DEDUPE_UNTIL=finish", lambda i: (backend.is_cancelled(f"{run}-f-{i}"),
                                                        backend.release_guard(f"{run}-f-{i}")))  # fmt: skip
        sqs_run = app.tasks[RUN_TASK]

        def eventbridge_run(i: int) -> None:
            run_id = f"repeat-{run}@2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z"
            backend.is_cancelled(run_id)  # the run message, as it arrives
            sqs_run.apply(
                kwargs={"repeat": "r", "name": "cost.noop", "data": {}, "queue": "cost"}, task_id=run_id
            )
            backend.is_cancelled(f"job-of-{run_id}")  # the job it sent, as it arrives

        row("EventBridge run", eventbridge_run)
        sqs_hop = app.tasks[HOP_TASK]

        def delay_hop(i: int) -> None:
            job_id = f"{run}-h{i}"
            backend.is_cancelled(hop_id(job_id, 1))  # the hop's message, as it arrives
            far = backend.now_ms() + 20 * 60_000  # still more than 15 minutes to go: the next hop is sent
            kwargs = {"job_id": job_id, "name": "cost.noop", "data": {}, "queue": "cost", "priority": None,
                      "due_ms": far, "hop": 1}  # fmt: skip
            sqs_hop.apply(kwargs=kwargs, task_id=hop_id(job_id, 1))

        row("delay hop (each 15 minutes of a longer delay)", delay_hop)
        row(
            "@idempotent body (first delivery)",
            lambda i: capture.apply(kwargs={"order_id": i}, task_id=f"{run}-c{i}"),
        )
        row("@idempotent body (repeated delivery)",
            lambda i: capture.apply(kwargs={"order_id": i}, task_id=f"{run}-c{i}"))  # fmt: skip

        def locked(i: int) -> None:
            with bridge.lock(f"cost-{i % 10}", ttl_ms=10_000):
                pass

        row("lock (acquire + release)", locked)
        bridge.close()
    finally:
        moto.stop()

    print(f"{ops} operations each; USD per million operations at on-demand ${args.wru_price}/M writes, "
          f"${args.rru_price}/M reads\n")  # fmt: skip
    print("| operation | reads | writes | calls | USD per million |")
    print("|---|---:|---:|---|---:|")
    for label, reads, writes, calls in rows:
        cost = reads * args.rru_price + writes * args.wru_price
        names = ", ".join(f"{name} {n / ops:g}" for name, n in sorted(calls.items())) or "none"
        print(f"| {label} | {reads:g} | {writes:g} | {names} | {cost:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
