"""Fault tests: things break on purpose (kill -9 of workers, of the server, of beat) and no job is lost.

Sizes, chosen to keep this module at about 3 minutes on a 2-core CI machine:

* worker ``kill -9``: one killed worker per backend (system Redis, embedded, SQS on
  moto), a 5 s visibility timeout (``JOBS_VISIBILITY_TIMEOUT_SEC`` on Redis, the
  queue's ``VisibilityTimeout`` on SQS); about 20 s per backend;
* server outage: 4 producer processes x 500 keyed jobs (2,000), 2 workers of 2
  processes, a private ``redis-server`` down 5 s (``SHUTDOWN``, ``kill -9`` with
  ``appendfsync always`` and ``everysec``) or the embedded server ``kill -9``-ed;
  about 30 s each;
* beat: 50 repeats every 1,000 ms, two beats, the lock holder ``kill -9``-ed mid-burst;
  about 35 s;
* warm shutdown: 1,500 quick jobs, three workers of 4 processes each sent SIGTERM 0.3 s
  after they start, one more drains the rest; about 15 s.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import celery
import pytest
import redis

from bridge.core.ids import job_id_for
from bridge.embedded.server import EmbeddedServer
from bridge.sqs.admin import SqsAdmin
from tests.conftest import BEAT_LOCK, ROOT, Server, read_ledger, server_ms, wait_for
from tests.redis_server import RedisServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.worker]


VISIBILITY_S = 5


def deliveries(client: redis.Redis) -> list[dict]:
    return [json.loads(line) for line in client.lrange("test:deliveries", 0, -1)]


# -- worker kill -9 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend_kind",
    ["redis", "embedded", pytest.param("sqs", marks=pytest.mark.sqs)],
    indirect=True,
)
def test_worker_killed_mid_job_runs_it_again_once_and_an_idempotent_effect_stays_single(
    backend_kind, request, start_worker, make_bridge, redis_client
):
    """kill -9 of a whole worker (main process and pool) with two jobs in its hands.

    * ``ledger.record`` killed mid-handler: it runs again, once, after the
      visibility timeout (not before: nobody else got it while it was held).
    * ``@bridge.idempotent`` ``ledger.capture`` killed after its body and result,
      before the ack: the redelivery returns the stored result and the side effect
      (its ledger line) stays single. (Killed between the side effect and the end of
      the body, the body runs again: that case is the handler's to make idempotent.)
    """
    if backend_kind == "sqs":
        sqs = request.getfixturevalue("sqs")
        url = SqsAdmin(sqs.settings()).ensure_queue("killed", visibility_timeout=VISIBILITY_S)
        env = {**sqs.env(), "QUEUE_BACKEND": "sqs", "SQS_QUEUE_URL": url,
               "SQS_HEARTBEAT_SEC": "1", "SQS_EXTEND_BY_SEC": str(VISIBILITY_S)}  # fmt: skip
        bridge = make_bridge(queue_backend="sqs", jobs_backend="sqs", sqs_queue_url=url,
                             aws_region="us-east-1", aws_endpoint_url_sqs=sqs.endpoint)  # fmt: skip
    else:
        env = {"JOBS_VISIBILITY_TIMEOUT_SEC": str(VISIBILITY_S)}
        bridge = make_bridge()
    doomed = start_worker("doomed", concurrency=2, **env)
    redis_client.set("test:stall_after_body", 1)
    slow = bridge.queue.add(
        "ledger.record", {"key": "slow", "sleep_s": 3, "trace": True}, idempotency_key="slow"
    )
    paid = bridge.queue.add("ledger.capture", {"order_id": 1}, idempotency_key="order-1")
    assert wait_for(lambda: redis_client.llen("test:body_done") == 1 and len(deliveries(redis_client)) == 2)

    killed_at = server_ms(redis_client)
    doomed.kill9()
    redis_client.delete("test:stall_after_body")
    start_worker("heir", concurrency=2, **env)

    def settled() -> bool:
        seen = Counter(d["id"] for d in deliveries(redis_client))
        return seen[slow.id] == 2 and seen[paid.id] == 2 and redis_client.llen("test:ledger") >= 2

    assert wait_for(settled, timeout=VISIBILITY_S + 60), (deliveries(redis_client), read_ledger(redis_client))
    time.sleep(VISIBILITY_S + 2)  # a third delivery, if any, would show by now
    runs = Counter(d["id"] for d in deliveries(redis_client))
    assert runs == {slow.id: 2, paid.id: 2}
    ledger = Counter(line["id"] for line in read_ledger(redis_client))
    assert ledger == {slow.id: 1, paid.id: 1}  # each effect once
    assert redis_client.llen("test:started") == 1  # the idempotent body ran once
    first = {d["id"]: d["at_ms"] for d in deliveries(redis_client)[:2]}
    for again in deliveries(redis_client)[2:]:
        # Handed out again by the visibility timeout, not earlier (it was held all along),
        # and not minutes later: the restore sweep runs about every quarter of the timeout,
        # and the lock a worker killed mid-sweep leaves behind expires after 10 s (kombu's
        # own 300 s kept a dead worker's jobs away for five minutes).
        assert again["at_ms"] >= first[again["id"]] + VISIBILITY_S * 1000 - 500
        assert again["at_ms"] <= killed_at + VISIBILITY_S * 1000 + 15_000, (again, killed_at)
        assert again["at_ms"] >= killed_at
    assert bridge.app.AsyncResult(paid.id).get(timeout=10) == {"captured": 1}


# -- the server restarted under load ------------------------------------------------------------

PRODUCERS = 4
PER_PRODUCER = 500
RESTART_VISIBILITY_S = 10


def start_producers(server: Server, tmp_path: Path, **env: str) -> list[tuple[subprocess.Popen[str], Path]]:
    procs = []
    for i in range(PRODUCERS):
        log = tmp_path / f"producer-{i}.err"
        with log.open("w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.apps.producer", "--prefix", f"p{i}",
                 "--count", str(PER_PRODUCER), "--pause", "0.01"],
                cwd=ROOT, env=server.env(**env), stdout=subprocess.PIPE, stderr=err, text=True,
            )  # fmt: skip
        procs.append((proc, log))
    return procs


def producer_reports(procs: list[tuple[subprocess.Popen[str], Path]]) -> list[dict]:
    reports = []
    for proc, log in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"a producer failed:\n{log.read_text()[-3000:]}"
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def ledger_lines(ledger: Path) -> list[list[str]]:
    """The handler's own ledger: one line per run, ``<key> <delivery tag> <worker> <time>``."""
    if not ledger.exists():
        return []
    return [line.split(" ") for line in ledger.read_text().splitlines()]


def check_no_key_lost_and_reruns_only_unacked(client: redis.Redis, ledger: Path, reports: list[dict]) -> None:
    keys = {f"p{i}-{n}" for i in range(PRODUCERS) for n in range(PER_PRODUCER)}
    assert sum(r["sent"] + r["deduplicated"] for r in reports) == len(keys)
    assert any(r["unavailable"] for r in reports), "no producer saw the outage"
    assert {t for r in reports for t in r["error_types"]} == {"BackendUnavailable"}

    def ran() -> set[str]:
        return {key for key, *_ in ledger_lines(ledger)}

    def drained() -> bool:  # nothing waits in the queue, nothing is held unacked
        return len(ran()) >= len(keys) and client.llen("celery") == 0 == client.hlen("unacked")

    assert wait_for(drained, timeout=RESTART_VISIBILITY_S + 90, interval=0.5), (
        f"never ran: {sorted(keys - ran())[:20]}"
    )
    time.sleep(RESTART_VISIBILITY_S + 3)  # a redelivery of anything unacked would have run by now
    lines = ledger_lines(ledger)
    per_key = Counter(key for key, *_ in lines)
    # Nothing lost: a worker takes a job and records it as unacked in one step (reliable fetch),
    # so a job handed out in the instant the server stops comes back after the visibility timeout.
    assert sorted(keys - set(per_key)) == []
    twice = {key: n for key, n in per_key.items() if n > 1}
    tags = {key: {tag for k, tag, *_ in lines if k == key} for key in twice}
    # Each key was published once (one delivery tag): a second run is a redelivery of that message.
    assert all(len(t) == 1 for t in tags.values()), tags
    print(f"ran twice: {twice} {[line for line in lines if line[0] in twice]}")
    # A job running when the connection dropped runs on and succeeds (its ledger is a file);
    # its ack is owed and sent when the worker reconnects, so it runs once. Nothing is put
    # back while it runs (a closing channel keeps its record). What Celery never acks runs
    # again, and only after the visibility timeout: a job that finished in the very instant
    # the connection dropped, before the worker's main process knew it had started (about
    # one run in four of these tests), and before Celery 5.7 any job that finished while
    # its consumer reconnected. At most one per worker process (2 workers x 2). Celery 5.3
    # closes the old channel only once it has reconnected, when kombu's restore of the jobs
    # it had not yet started succeeds: those come back at once.
    assert sum(n - 1 for n in twice.values()) <= 4, twice
    for key in twice if celery.VERSION >= (5, 7) else ():
        times = sorted(float(at) for k, _, _, at in lines if k == key)
        assert times[1] - times[0] >= RESTART_VISIBILITY_S - 1, (key, times)  # the sweep, not a requeue


OUTAGES = {
    "SHUTDOWN": ("stop", "always"),  # SIGTERM: Redis writes out its append-only file and exits
    "kill -9, appendfsync always": ("kill9", "always"),
    "kill -9, appendfsync everysec": ("kill9", "everysec"),
}


@pytest.fixture
def redis_with_fsync(tmp_path: Path) -> Iterator[Callable[[str], RedisServerProcess]]:
    """A private append-only ``redis-server`` with the given ``appendfsync``; killed after the test."""
    servers: list[RedisServerProcess] = []

    def start(fsync: str) -> RedisServerProcess:
        server = RedisServerProcess(tmp_path / "redis", extra=["--appendfsync", fsync])
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill9()


@pytest.mark.parametrize("outage", list(OUTAGES))
def test_redis_down_under_load_loses_no_job_and_reruns_only_what_celery_never_acked(
    outage: str, redis_with_fsync: Callable[[str], RedisServerProcess], start_worker_at, tmp_path: Path
) -> None:
    """A private append-only redis-server goes away for 5 s while 4 producers add 2,000 keyed jobs.

    Two workers of two processes each; each job appends a line to a file of its own, so a
    lost or doubled job shows whatever Redis says. A kill -9 loses nothing that Redis
    acknowledged, whatever ``appendfsync`` says: Redis hands each write to the kernel
    before it replies (``everysec`` only risks the last second on a crash of the machine).
    """
    how, fsync = OUTAGES[outage]
    private_redis = redis_with_fsync(fsync)
    server = Server("redis", private_redis.url)
    client = private_redis.client()
    ledger = tmp_path / "ledger.txt"
    env = {"JOBS_VISIBILITY_TIMEOUT_SEC": str(RESTART_VISIBILITY_S), "LEDGER_FILE": str(ledger)}
    for name in ("r1", "r2"):
        start_worker_at(server, name, concurrency=2, **env)
    procs = start_producers(server, tmp_path)
    assert wait_for(lambda: len(ledger_lines(ledger)) >= 200, timeout=60)

    getattr(private_redis, how)()
    time.sleep(5)  # the outage: producers and workers see Redis gone for 5 s
    private_redis.start()

    check_no_key_lost_and_reruns_only_unacked(client, ledger, producer_reports(procs))


@pytest.fixture
def private_embedded() -> Iterator[Server]:
    home = Path(tempfile.mkdtemp(prefix="bf-"))
    embedded = EmbeddedServer(home)
    embedded.ensure_running()
    yield Server("embedded", embedded.url, home)
    embedded.stop()
    shutil.rmtree(home, ignore_errors=True)


def test_embedded_server_killed_under_load_comes_back_loses_no_job_and_reruns_only_what_celery_never_acked(
    private_embedded, start_worker_at, tmp_path
):
    """kill -9 of the embedded Valkey while 4 producers add 2,000 keyed jobs: the next access restarts it."""
    server = private_embedded
    embedded = EmbeddedServer(server.home)
    client = redis.Redis.from_url(server.url)
    ledger = tmp_path / "ledger.txt"
    env = {"JOBS_VISIBILITY_TIMEOUT_SEC": str(RESTART_VISIBILITY_S), "LEDGER_FILE": str(ledger)}
    for name in ("e1", "e2"):
        start_worker_at(server, name, concurrency=2, **env)
    procs = start_producers(server, tmp_path)
    assert wait_for(lambda: len(ledger_lines(ledger)) >= 200, timeout=60)

    pid = embedded.status().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # Nobody runs `jobs server start`: a worker's promoter or a producer's add brings it back.
    assert wait_for(lambda: embedded.status().running, timeout=30)
    assert embedded.status().pid != pid

    check_no_key_lost_and_reruns_only_unacked(client, ledger, producer_reports(procs))


# -- beat killed mid-burst ------------------------------------------------------------------------

REPEATS = 50
STEP_MS = 1000


def test_beat_killed_mid_burst_fires_no_tick_twice_and_skips_only_by_the_catch_up_rule(
    start_worker, start_beat, make_bridge, redis_client
):
    """50 repeats due every second; the beat holding the lock is kill -9-ed halfway through a tick.

    The standby takes the lock when it expires. Checked from the ledger, each run
    mapped back to its (repeat, scheduled instant) through its job id: no instant
    ran twice (the half-fired tick included); every instant before the kill and after
    the takeover ran; in between, the catch-up rule (README "Repeats"): one run for
    the latest missed instant, never a burst of the missed ones.
    """
    holder = start_beat("beat1")
    standby = start_beat("beat2", wait_for_lock=False)
    bridge = make_bridge()
    start_ms = (server_ms(redis_client) // 1000 + 2) * 1000
    start_at = datetime.fromtimestamp(start_ms / 1000, UTC)
    repeat_ids = [
        bridge.jobs.schedule(
            "ledger.record", {"key": f"r{i}"}, every_ms=STEP_MS, idempotency_key=f"r{i}", start_at=start_at
        ).id
        for i in range(REPEATS)
    ]
    # No worker yet: runs pile up in the jobs queue, so a count that is not a multiple
    # of REPEATS means a tick is under way.
    assert wait_for(lambda: redis_client.llen("app:jobs") >= 2 * REPEATS, timeout=30)
    old_token = redis_client.get(BEAT_LOCK)
    assert wait_for(lambda: redis_client.llen("app:jobs") % REPEATS != 0, timeout=20, interval=0.001)
    holder.kill9()
    killed_ms = server_ms(redis_client)
    half_fired = redis_client.llen("app:jobs")

    assert wait_for(
        lambda: redis_client.get(BEAT_LOCK) not in (None, old_token), timeout=15, interval=0.05
    ), "the standby beat did not take the lock within 15 s"
    took_over_ms = server_ms(redis_client)
    start_worker("w1", concurrency=2)
    time.sleep(4.0)  # the standby fires a few ticks (every second) before it is stopped too
    standby.stop()
    stopped_ms = server_ms(redis_client)
    assert wait_for(lambda: redis_client.llen("app:jobs") == 0, timeout=60)
    time.sleep(1.5)  # proves nothing more fires: beats are stopped and the queue is empty

    instant_of = {
        job_id_for("ledger.record", f"{rid}@{t}"): (rid, t)
        for rid in repeat_ids
        for t in range(start_ms, stopped_ms + 2 * STEP_MS, STEP_MS)
    }
    runs = read_ledger(redis_client)
    assert all(r["id"] in instant_of for r in runs), "a run that is no scheduled instant of any repeat"
    ran = Counter(instant_of[r["id"]] for r in runs)
    assert [k for k, n in ran.items() if n > 1] == [], "an instant ran twice"
    assert half_fired % REPEATS != 0  # the kill did land mid-burst

    takeover_floor = start_ms + (took_over_ms - start_ms) // STEP_MS * STEP_MS
    for rid in repeat_ids:
        fired = sorted(t for (r, t) in ran if r == rid)
        before = [t for t in range(start_ms, killed_ms - 2 * STEP_MS + 1, STEP_MS)]
        after = [t for t in range(takeover_floor + 2 * STEP_MS, stopped_ms - 2 * STEP_MS + 1, STEP_MS)]
        assert set(before) <= set(fired), f"{rid}: a tick before the kill was skipped"
        assert set(after) <= set(fired), f"{rid}: a tick after the takeover was skipped"
        gap = [t for t in fired if killed_ms < t <= took_over_ms + STEP_MS]
        # The catch-up: the latest missed instant (or the one due at the takeover), not a burst.
        assert 1 <= len(gap) <= 2, f"{rid}: fired {gap} for the outage {killed_ms}..{took_over_ms}"
        assert min(gap) >= takeover_floor - STEP_MS, f"{rid}: caught up an old instant {gap}"


# -- warm shutdown (SIGTERM) while jobs keep coming ---------------------------------------------------

QUICK_JOBS = 1_500
SIGTERMS = 3
POOL_PROCESSES = 4  # more jobs in the pool's hands at each SIGTERM than with 2: the fault shows more often
WARM_SHUTDOWN_BOUND_S = 20


def test_sigterm_while_jobs_flow_finishes_promptly_and_reruns_no_finished_job(
    start_worker, make_bridge, redis_client
):
    """1,500 quick jobs; three workers of 4 processes in turn get SIGTERM 0.3 s after they start.

    A warm shutdown lets the jobs its pool processes hold finish, and acks them; only the
    messages it reserved and never handed to a pool process go back to the queue. Each
    SIGTERM lands while jobs flow, so most often some job has just been handed to a pool
    process that has not yet said it started it: Celery's pool dropped such a job from its
    books at shutdown (``AsynPool.flush``), never read its result and never acked it, and
    the job went back to the queue and ran again; its pool process waited 30 s for its
    result to be read. A fourth worker drains the rest: every job runs, once. A warm
    shutdown takes about 2 s; 20 s leaves a busy machine room.
    """
    bridge = make_bridge()
    ids = {bridge.queue.add("ledger.record", {"key": f"q{n}"}).id for n in range(QUICK_JOBS)}
    shutdowns = []
    for n in range(SIGTERMS):
        worker = start_worker(f"term{n}", concurrency=POOL_PROCESSES, TEST_PREFETCH_MULTIPLIER="4")
        time.sleep(0.3)  # jobs are flowing through the pool by then
        sent_at = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(60)
        shutdowns.append(round(time.monotonic() - sent_at, 1))
        assert worker.proc.returncode == 0, worker.tail()
    start_worker("drain", concurrency=2)

    def drained() -> bool:  # every job ran: nothing waits in the queue, nothing is held unacked
        return redis_client.llen("test:ledger") >= QUICK_JOBS and redis_client.llen("celery") == 0 == (
            redis_client.hlen("unacked")
        )

    assert wait_for(drained, timeout=120, interval=0.5), redis_client.llen("test:ledger")
    runs = Counter(line["id"] for line in read_ledger(redis_client))
    assert {job_id: n for job_id, n in runs.items() if n > 1} == {}, f"shutdowns took {shutdowns} s"
    assert set(runs) == ids
    assert max(shutdowns) < WARM_SHUTDOWN_BOUND_S, shutdowns
