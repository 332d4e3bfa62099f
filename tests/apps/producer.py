"""A producer process for fault and load tests: adds ``ledger.cheap`` jobs with idempotency keys.

Run as ``python -m tests.apps.producer --prefix p0 --start 0 --count 500`` with the
app's environment (REDIS_URL or BRIDGE_HOME, ...). Keys are ``<prefix>-<n>``.

* ``--chunk 1`` (the default): one ``queue.add`` per job, ``--pause`` seconds apart.
* ``--chunk N``: ``queue.add_bulk`` of N jobs at a time.
* ``--failing N``: then N more jobs, keyed ``<prefix>-fail-<n>``, that fail for good.

On :class:`bridge.errors.BackendUnavailable` it does what the README tells users
to do: wait a moment and retry the same add with the same key. Any other error
ends the process with its traceback. At the end it prints one JSON line:
``{"sent": ..., "deduplicated": ..., "unavailable": ..., "error_types": [...]}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from bridge.errors import BackendUnavailable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--chunk", type=int, default=1)
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--failing", type=int, default=0, help="then add this many jobs that fail for good")
    parser.add_argument("--retry-for", type=float, default=60.0, help="give up after this many seconds down")
    args = parser.parse_args(argv)

    from tests.apps.ledger_app import bridge  # the app's environment is read here

    stats: dict[str, Any] = {"sent": 0, "deduplicated": 0, "unavailable": 0, "error_types": set()}

    def item(n: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
        key = f"{args.prefix}-{n}"
        return ("ledger.cheap", {"key": key}, {"idempotency_key": key})

    def failing(n: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
        key = f"{args.prefix}-fail-{n}"
        return ("ledger.cheap", {"key": key, "fail": True}, {"idempotency_key": key})

    end = args.start + args.count
    batches = [
        [item(n) for n in range(i, min(i + args.chunk, end))] for i in range(args.start, end, args.chunk)
    ]
    if args.failing:
        batches.append([failing(n) for n in range(args.failing)])
    for batch in batches:
        down_since: float | None = None
        while True:
            try:
                if len(batch) == 1:
                    name, data, options = batch[0]
                    jobs = [bridge.queue.add(name, data, **options)]
                else:
                    jobs = bridge.queue.add_bulk(batch)
                break
            except BackendUnavailable as exc:
                # The documented pattern: the same add, the same key, a moment later.
                stats["unavailable"] += 1
                stats["error_types"].add(type(exc).__name__)
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since > args.retry_for:
                    raise
                time.sleep(0.2)
        for job in jobs:
            stats["deduplicated" if job.deduplicated else "sent"] += 1
        if args.pause:
            time.sleep(args.pause)
    bridge.close()
    stats["error_types"] = sorted(stats["error_types"])
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
