"""SQS: the bridge's producer and drain throughput against plain Celery on kombu's SQS transport,
and the visibility heartbeat's API calls per held message per beat.

Run from the repository root (moto's server is started on a free loopback port;
the system Redis holds the guards and the run counter)::

    .venv/bin/python bench/bench_sqs.py                    # 300 jobs x 3 rounds
    .venv/bin/python bench/bench_sqs.py --jobs 500 --rounds 5

moto answers about 50 requests/s here, so the absolute rates are moto's; the
ratios, bridge / plain Celery in the same run, are what this measures.

1. **Producer**, in this process, per round: plain Celery
   ``app.send_task`` (kombu's SQS transport, the same settings), the bridge's
   ``queue.add`` without a key, and ``queue.add`` with an idempotency key (one
   more ``SET NX`` in Redis per add), each into a fresh queue. After 10 untimed
   warm-up sends each, the three take turns in blocks of 20 sends (rotating who
   goes first) until each has sent ``--jobs``; each one's time is the sum of its
   blocks. Target: bridge >= 0.9x plain (overhead <= 10%).
2. **Drain**, per round: ``--jobs`` messages in a fresh queue, then a real
   ``celery -A bench.sqs_app worker -c 2`` with ``BENCH_BRIDGE=0`` (plain Celery)
   or ``1`` (the app binds a Bridge: tombstone check on receipt, the visibility
   heartbeat); timed on the Redis clock from the worker's ``worker_ready`` to the
   last run counted with the queue empty. Target: bridge >= 0.9x plain.
3. **Heartbeat**: ``M`` messages received with kombu and held unacked (as a
   worker's prefetch holds them) in a queue whose visibility timeout equals the
   beat; the bridge's heartbeat runs ``--beats`` beats of 2 s extending by 8 s
   (the defaults' 30 s / 120 s, scaled down). Reports API calls / (M x beats)
   and checks that no held message became visible. Target: <= 0.15.

Database ``--redis-url`` (default ``redis://127.0.0.1:6379/11``) is flushed; the
benchmark refuses to run if it holds keys it did not write.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis
from celery import Celery

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/bench_sqs.py` puts bench/, not the root, on the path
    sys.path.insert(0, str(ROOT))

from _common import rates_table, refuse_foreign_keys, stop_process_group, target_cells  # noqa: E402

from bridge import (  # noqa: E402
    Bridge,
    Settings,
    celeryconfig,
)
from bridge.sqs.admin import SqsAdmin  # noqa: E402
from bridge.sqs.heartbeat import Heartbeat  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
TASK_NAME = "bench.noop"  # as in bench/sqs_app.py (not imported: it reads the environment)
COUNTER = "bench:done"
READY = "bench:ready:"
TARGET = 0.9
HEARTBEAT_TARGET = 0.15
BEAT_S, EXTEND_S = 2, 8
PRODUCE_BLOCK = 20  # sends per turn in the producer measurement
OWN_KEY_PREFIXES = ("bench:", "bridge:", "celery-task-meta-")
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


class Moto:
    """moto's server on a free loopback port."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        "FAILED: moto's server did not start (pip install 'moto[server]')"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Bench:
    def __init__(self, redis_url: str, jobs: int) -> None:
        os.environ.update(AWS_ENV)  # the AWS chain's variables, as a user's producer gets them
        self.redis_url = redis_url
        self.jobs = jobs
        self.client = redis.Redis.from_url(redis_url)
        refuse_foreign_keys(self.client, redis_url, OWN_KEY_PREFIXES)
        self.moto = Moto()
        self.logs = Path(tempfile.mkdtemp(prefix="bench-sqs-"))
        self.admin = SqsAdmin(self.settings())
        self.produce: dict[str, list[float]] = {"plain": [], "bridge": [], "bridge+key": []}
        self.drain: dict[str, list[float]] = {"plain": [], "bridge": []}
        self.heartbeat: list[tuple[int, int, int, bool]] = []  # (held, beats, calls, stayed hidden)

    def settings(self, url: str | None = None) -> Settings:
        return Settings(
            redis_url=self.redis_url, queue_backend="sqs", jobs_backend="sqs", lock_backend="redis",
            sqs_queue_url=url or "http://127.0.0.1/000000000000/unused", aws_region="us-east-1",
            aws_endpoint_url_sqs=self.moto.endpoint,
        )  # fmt: skip

    def app(self, url: str) -> Celery:
        app = Celery("bench-sqs-producer")
        app.config_from_object(celeryconfig.build(self.settings(url)))
        return app

    # -- producer ------------------------------------------------------------------

    def measure_producer(self, tag: str) -> None:
        # A fresh queue per measurement: moto's SendMessage slows down as a queue grows.
        sends: dict[str, Callable[[int], Any]] = {}
        bridges: list[Bridge] = []
        for name in self.produce:
            url = self.admin.ensure_queue(f"produce-{tag}-{name.replace('+', '-')}")
            if name == "plain":
                app, queue = self.app(url), url.rsplit("/", 1)[-1]
                sends[name] = lambda i, app=app, queue=queue: app.send_task(
                    TASK_NAME, kwargs={"i": i}, queue=queue
                )
            else:
                bridges.append(Bridge(self.app(url), settings=self.settings(url)))
                add, keyed = bridges[-1].queue.add, name == "bridge+key"
                sends[name] = lambda i, add=add, keyed=keyed: add(
                    TASK_NAME, {"i": i}, idempotency_key=f"{tag}-{i}" if keyed else None
                )
        for name in sends:
            for i in range(10):  # warm-up: connections, the queue's size lookup
                sends[name](-1 - i)
        # moto's speed drifts by 20% within seconds: the variants take turns in blocks of
        # PRODUCE_BLOCK sends (the first of each turn rotating), so a drift hits all alike.
        spent = dict.fromkeys(sends, 0.0)
        names = list(sends)
        for turn, first in enumerate(range(0, self.jobs, PRODUCE_BLOCK)):
            block = range(first, min(first + PRODUCE_BLOCK, self.jobs))
            for name in names[turn % len(names) :] + names[: turn % len(names)]:
                start = time.perf_counter()
                for i in block:
                    sends[name](i)
                spent[name] += time.perf_counter() - start
        for name in names:
            rate = self.jobs / spent[name]
            self.produce[name].append(rate)
            print(f"  producer {tag} {name:<11} {rate:>7,.1f} jobs/s", flush=True)
        for bridge in bridges:
            bridge.close()

    # -- drain -------------------------------------------------------------------------

    def measure_drain(self, tag: str, with_bridge: bool) -> float:
        name = "bridge" if with_bridge else "plain"
        url = self.admin.ensure_queue(f"drain-{tag}-{name}", visibility_timeout=60)
        app = self.app(url)
        queue = url.rsplit("/", 1)[-1]
        for i in range(self.jobs):
            app.send_task(TASK_NAME, kwargs={"i": i}, queue=queue)
        self.client.delete(COUNTER)
        hostname = f"drain-{tag}-{name}@bench"
        log = self.logs / f"{hostname}.log"
        env = {k: v for k, v in os.environ.items() if k not in ("QUEUE_BACKEND", "JOBS_BACKEND")}
        env.update(AWS_ENV, QUEUE_BACKEND="sqs", SQS_QUEUE_URL=url, REDIS_URL=self.redis_url,
                   AWS_ENDPOINT_URL_SQS=self.moto.endpoint, BENCH_REDIS_URL=self.redis_url,
                   BENCH_BRIDGE="1" if with_bridge else "0", PYTHONPATH=str(ROOT))  # fmt: skip
        args = [sys.executable, "-m", "celery", "-A", "bench.sqs_app", "worker", "-n", hostname, "-c", "2",
                "-P", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat",
                "--loglevel=WARNING"]  # fmt: skip
        with log.open("wb") as out:
            worker = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)  # fmt: skip
        try:
            ready_us = self._wait(lambda: self.client.get(READY + hostname), worker, log, "ready")
            done_us = self._wait(lambda: self._drained(url), worker, log, "drained")
        finally:
            stop_process_group(worker)
        rate = self.jobs / ((int(done_us) - int(ready_us)) / 1_000_000)
        self.drain[name].append(rate)
        print(f"  drain    {tag} {name:<11} {rate:>7,.1f} jobs/s", flush=True)
        return rate

    def _drained(self, url: str) -> int | None:
        done = int(self.client.get(COUNTER) or 0)
        if done > self.jobs:
            raise SystemExit(f"FAILED: {done} runs of {self.jobs} jobs (some ran twice)")
        if done < self.jobs:
            return None
        seconds, micros = self.client.time()
        info = self.admin.counts(url)
        return int(seconds) * 1_000_000 + int(micros) if info.visible + info.in_flight == 0 else None

    def _wait(self, probe: Callable[[], Any], worker: subprocess.Popen[bytes], log: Path, what: str) -> Any:
        deadline = time.monotonic() + max(120.0, self.jobs / 5)
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            if worker.poll() is not None:
                break
            time.sleep(0.02)
        text = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
        raise SystemExit(f"FAILED: worker not {what}:\n{text}")

    # -- heartbeat ----------------------------------------------------------------------

    def measure_heartbeat(self, held: int, beats: int) -> None:
        from kombu import Consumer

        url = self.admin.ensure_queue(f"held-{held}", visibility_timeout=BEAT_S)
        app = self.app(url)
        queue = url.rsplit("/", 1)[-1]
        for i in range(held):
            app.send_task(TASK_NAME, kwargs={"i": i}, queue=queue)
        received: list[Any] = []
        with app.connection_for_read() as conn:
            channel = conn.channel()
            channel.basic_qos(0, held, False)
            consumer = Consumer(
                channel, [app.amqp.queues[queue]], callbacks=[lambda _b, m: received.append(m)]
            )
            with consumer:
                deadline = time.monotonic() + 60
                while len(received) < held and time.monotonic() < deadline:
                    with contextlib.suppress(socket.timeout, TimeoutError):
                        conn.drain_events(timeout=1)
                heartbeat = Heartbeat(channel, self.admin.client, BEAT_S, EXTEND_S, visibility_s=BEAT_S)
                for _ in range(beats):
                    heartbeat.beat()
                    time.sleep(BEAT_S)
                hidden = self.admin.counts(url).visible == 0  # nothing reappeared while held
                for message in received:
                    message.ack()
        self.heartbeat.append((held, beats, heartbeat.calls, hidden))
        print(f"  heartbeat held={held:<3} calls={heartbeat.calls} hidden={hidden}", flush=True)

    def close(self) -> None:
        self.moto.stop()
        self.client.flushdb()
        self.client.close()


def report(bench: Bench, jobs: int, rounds: int, beats: int) -> str:
    med = {name: statistics.median(rates) for name, rates in bench.produce.items()}
    producer = rates_table(
        "producer", "plain Celery",
        [("plain Celery send_task", med["plain"], bench.produce["plain"], None),
         ("bridge queue.add", med["bridge"], bench.produce["bridge"], TARGET),
         ("bridge queue.add with key", med["bridge+key"], bench.produce["bridge+key"], TARGET)],
    )  # fmt: skip
    dmed = {name: statistics.median(rates) for name, rates in bench.drain.items()}
    drain = rates_table(
        "worker", "plain Celery",
        [("plain Celery worker", dmed["plain"], bench.drain["plain"], None),
         ("worker with Bridge(app)", dmed["bridge"], bench.drain["bridge"], TARGET)],
    )  # fmt: skip
    lines = ["| held messages | beats | API calls | calls / message / beat | target | met | stayed hidden |",
             "|---:|---:|---:|---:|---:|:---:|:---:|"]  # fmt: skip
    for held, n, calls, hidden in bench.heartbeat:
        per = calls / (held * n)
        cells = target_cells(per, HEARTBEAT_TARGET, at_least=False).replace("x", "", 2)
        lines.append(f"| {held} | {n} | {calls} | {cells} | {'yes' if hidden else 'NO'} |")
    env = [
        f"- CPU cores (os.cpu_count): {os.cpu_count()}",
        f"- Python {platform.python_version()} ({platform.system()} {platform.machine()})",
        f"- celery {version('celery')}, kombu {version('kombu')}, boto3 {version('boto3')}, "
        f"moto {version('moto')}, pycurl {version('pycurl')}",
    ]
    return "\n\n".join([
        f"{jobs} jobs per measurement, {rounds} rounds, medians; heartbeat: {beats} beats of {BEAT_S} s, "
        f"{EXTEND_S} s extensions, queue visibility {BEAT_S} s",
        "\n".join(env), producer, drain, "\n".join(lines),
    ])  # fmt: skip


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=300, help="jobs per measurement (default 300)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; order alternates (default 3)")
    parser.add_argument(
        "--held", default="1,8,40", help="held-message counts for the heartbeat (default 1,8,40)"
    )
    parser.add_argument("--beats", type=int, default=6, help="heartbeat beats per count (default 6)")
    parser.add_argument(
        "--redis-url", default=DEFAULT_REDIS_URL, help=f"flushed (default {DEFAULT_REDIS_URL})"
    )
    args = parser.parse_args(argv)
    try:
        args.held = [int(n) for n in args.held.split(",")]
    except ValueError:
        parser.error("--held must be comma-separated integers, such as 1,8,40")
    if min([args.jobs, args.rounds, args.beats, *args.held]) <= 0:
        parser.error("--jobs, --rounds, --beats and --held must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args.redis_url, args.jobs)
    try:
        for r in range(args.rounds):
            bench.measure_producer(f"r{r}")
            first = r % 2 == 0
            for with_bridge in (not first, first):
                bench.measure_drain(f"r{r}", with_bridge)
        for held in args.held:
            bench.measure_heartbeat(held, args.beats)
    finally:
        bench.close()
    print()
    print(report(bench, args.jobs, args.rounds, args.beats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
