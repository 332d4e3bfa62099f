"""jobs stats, dead letters and metrics against a real Redis and real workers."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import JOBS, ROOT, read_ledger, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]
Q = "work"


def jobs_cli(server, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [JOBS, *args], cwd=ROOT, env=server.env(**env), capture_output=True,
        text=True, timeout=90,
    )  # fmt: skip


def fill_queue(start_worker, bridge, redis_client) -> None:
    """5 waiting, 2 running, 3 delayed, 1 repeat and 2 dead letters, all in queue Q."""
    start_worker("w1", concurrency=2, queues=Q)
    for i in range(2):
        bridge.queue.add("ledger.fail", {"key": f"bad-{i}"}, queue=Q)
    assert wait_for(lambda: bridge.dead_letters.count(Q) == 2, timeout=20)
    for i in range(2):
        bridge.queue.add("ledger.block", {"key": f"run-{i}"}, queue=Q)
    assert wait_for(lambda: redis_client.llen("test:blocked") == 2, timeout=20)
    for i in range(5):
        bridge.queue.add("ledger.record", {"key": f"wait-{i}"}, queue=Q)
    for i in range(3):
        bridge.queue.add("ledger.record", {"key": f"later-{i}"}, queue=Q, delay_ms=120_000)
    bridge.jobs.schedule("ledger.record", {"key": "rep"}, every_ms=3_600_000, queue=Q)


def test_stats_json_counts_every_state(start_worker, make_bridge, redis_client, server):
    bridge = make_bridge()
    fill_queue(start_worker, bridge, redis_client)
    try:
        done = jobs_cli(server, "stats", "--queues", f"{Q},celery", "--json")
        assert done.returncode == 0, done.stderr
        counts = json.loads(done.stdout)
        assert counts[Q] == {"waiting": 5, "active": 2, "delayed": 3, "scheduled": 1, "failed": 2}
        assert counts["celery"] == {"waiting": 0, "active": 0, "delayed": 0, "scheduled": 0, "failed": 0}
        assert bridge.stats([Q])[Q].active == 2

        table = jobs_cli(server, "stats", "--queues", Q).stdout.splitlines()
        assert table[0].split() == ["queue", "waiting", "active", "delayed", "scheduled", "failed"]
        assert table[1].split() == [Q, "5", "2", "3", "1", "2"]

        text = jobs_cli(server, "stats", "--queues", Q, "--prometheus").stdout
        samples = {
            (family.name, sample.labels["queue"]): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        assert samples[("bridge_queue_waiting_jobs", Q)] == 5
        assert samples[("bridge_queue_active_jobs", Q)] == 2
        assert samples[("bridge_queue_failed_jobs", Q)] == 2
    finally:
        redis_client.rpush("test:release", "go", "go")


def test_dead_letters_record_the_failure_and_retry_runs_once(start_worker, make_bridge, redis_client, server):
    start_worker("w1")
    bridge = make_bridge()
    job = bridge.queue.add("ledger.fail", {"key": "k1"}, idempotency_key="k1")
    bridge.queue.add("ledger.fail_quietly", {})
    assert wait_for(lambda: bridge.dead_letters.count("celery") == 1, timeout=20)

    listed = json.loads(jobs_cli(server, "dlq", "list", "--queue", "celery", "--json").stdout)
    assert len(listed) == 1  # the opted-out task left none
    assert json.loads(jobs_cli(server, "dlq", "list", "--json").stdout) == listed  # the default queue's
    [letter] = listed
    assert (letter["id"], letter["name"], letter["data"]) == (job.id, "ledger.fail", {"key": "k1"})
    assert (letter["exc_type"], letter["exc_message"], letter["attempts"]) == (
        "ValueError",
        "cannot process k1",
        1,
    )
    assert "ValueError" in letter["traceback"]

    redis_client.set("test:fixed", 1)
    retried = jobs_cli(server, "dlq", "retry", "--queue", "celery", "--id", job.id)
    assert (retried.returncode, retried.stdout.strip()) == (0, "retried 1")
    assert wait_for(lambda: redis_client.llen("test:ledger") == 1, timeout=20)
    assert bridge.app.AsyncResult(job.id).get(timeout=10) is None
    assert [line["id"] for line in read_ledger(redis_client)] == [job.id]
    assert bridge.dead_letters.count("celery") == 0
    again = jobs_cli(server, "dlq", "retry", "--queue", "celery", "--id", job.id)
    assert again.returncode == 2  # nothing left to retry: no second run
    assert redis_client.llen("test:ledger") == 1


def test_dead_letters_are_bounded_and_purgeable(start_worker, make_bridge, redis_client, server):
    start_worker("w1", JOBS_DLQ_MAX="3")
    bridge = make_bridge()
    for i in range(6):
        bridge.queue.add("ledger.fail", {"key": f"storm-{i}"})
    assert wait_for(
        lambda: redis_client.llen("test:blocked") == 0 and bridge.dead_letters.count("celery") == 3
    )
    purged = jobs_cli(server, "dlq", "purge", "--queue", "celery", "--yes")
    assert purged.stdout.strip() == "purged 3"
    assert bridge.dead_letters.count("celery") == 0


def test_metrics_server_serves_prometheus_text(make_bridge, redis_client, server):
    bridge = make_bridge()
    bridge.queue.add("ledger.record", {"key": "m"}, queue=Q)
    proc, url = _metrics_server(server)
    try:
        assert url.startswith("http://127.0.0.1:")
        body = urllib.request.urlopen(url, timeout=10).read().decode()
        families = {f.name: f for f in text_string_to_metric_families(body)}
        [sample] = families["bridge_queue_waiting_jobs"].samples
        assert (sample.labels, sample.value) == ({"queue": Q}, 1)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_cli_errors_are_one_line_without_traceback_or_secret(server, redis_client):
    bad_syntax = jobs_cli(server, "stats", "--queues", "a,,b")
    down = jobs_cli(server, "stats", "--queues", Q, REDIS_URL="redis://:s3cr3tpw@127.0.0.1:1/0",
                    QUEUE_BACKEND="redis")  # fmt: skip
    # An unencoded '/' in the password: the URL parser would quote the password's tail as a "port".
    malformed = jobs_cli(server, "stats", REDIS_URL="redis://:s3cr3tpw/x@127.0.0.1/0", QUEUE_BACKEND="redis")
    assert bad_syntax.returncode == 2
    assert "--queues" in bad_syntax.stderr
    assert down.returncode == 1
    assert malformed.returncode == 2
    assert "percent-encoded" in malformed.stderr
    for done in (bad_syntax, down, malformed):
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert "s3cr3tpw" not in done.stderr + done.stdout


def test_task_events_still_flow_for_flower(start_worker, make_bridge, redis_client):
    """Flower reads worker events; a job added through the bridge shows up like any other."""
    import threading

    bridge = make_bridge()
    start_worker("w1", events=True)
    seen: list[tuple[str, str]] = []
    ready = threading.Event()
    receivers: list = []
    flow = ("task-received", "task-started", "task-succeeded")

    def on_event(event: dict) -> None:
        seen.append((event["type"], event["uuid"]))
        if event["type"] == "task-succeeded":
            receivers[0].should_stop = True  # the last of the flow: stop consuming

    class Receiver(bridge.app.events.Receiver):  # type: ignore[misc, name-defined]
        def on_consume_ready(self, *args: Any, **kwargs: Any) -> None:
            super().on_consume_ready(*args, **kwargs)
            ready.set()  # its queue is bound: no event of the job can be missed from here on

    def listen() -> None:
        with bridge.app.connection_for_read() as conn:
            receivers.append(Receiver(conn, handlers=dict.fromkeys(flow, on_event)))
            with contextlib.suppress(TimeoutError):  # nothing came: the assert below says so
                receivers[0].capture(limit=None, timeout=20, wakeup=False)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(10)
    job = bridge.queue.add("ledger.record", {"key": "evented"})
    assert wait_for(lambda: ("task-succeeded", job.id) in seen, timeout=20)
    thread.join(25)
    assert [kind for kind, uuid in seen if uuid == job.id] == list(flow)  # each once, in order


def test_dlq_list_escapes_terminal_sequences_and_redacts_text_and_json(start_worker, make_bridge, server):
    start_worker("w1")
    bridge = make_bridge()
    hostile = (
        "\x1b]0;owned\x07\x1b[2J\x1b]8;;http://evil/\x1b\\link\x1b]8;;\x1b\\ "
        "redis://app:hunter2@db.internal:6379/0 then aws_secret_access_key=AKIAsecretKEY1"
    )
    bridge.queue.add("ledger.fail", {"key": hostile})
    assert wait_for(lambda: bridge.dead_letters.count("celery") == 1, timeout=20)

    text = jobs_cli(server, "dlq", "list", "--queue", "celery")
    as_json = jobs_cli(server, "dlq", "list", "--queue", "celery", "--json")
    for done in (text, as_json):
        assert done.returncode == 0, done.stderr
        assert "hunter2" not in done.stdout
        assert "AKIAsecretKEY1" not in done.stdout
        assert not any(ch in done.stdout for ch in "\x1b\x07")
    assert "\\x1b]0;owned\\x07" in text.stdout  # shown, as text, not obeyed
    [letter] = json.loads(as_json.stdout)
    assert "redis://app:***@db.internal:6379/0" in letter["exc_message"]
    assert "hunter2" not in letter["traceback"]


def _metrics_server(server, *args: str, **env: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [JOBS, "metrics-server", "--queues", Q, "--port", "0", *args],
        cwd=ROOT, env=server.env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = proc.stdout.readline()
    assert line.startswith("serving http://"), proc.stderr.read() if proc.poll() is not None else line
    return proc, line.split()[1]


def _threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("Threads:")[1].split()[0])


def _get(url: str, token: str | None = None, scheme: str = "Bearer") -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"{scheme} {token}"} if token else {})
    try:
        return urllib.request.urlopen(request, timeout=10).status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, http.client.HTTPException):  # closed unanswered: the server is busy
        return 0


def test_metrics_server_requires_its_token_and_bounds_idle_connections(server, redis_client):
    from bridge.cli.metrics import MAX_WORKERS

    proc, url = _metrics_server(server, JOBS_DASHBOARD_TOKEN="s3cret-t0ken")
    idle: list[socket.socket] = []
    try:
        assert _get(url) == 401
        assert _get(url, "wrong") == 401
        assert _get(url, "s3cret-t0ken") == 200
        assert _get(url, "s3cret-t0ken", scheme="bearer") == 200  # the scheme is case-insensitive
        assert _get(url, "s3cret-t0ken", scheme="Basic") == 401

        host, port = url.split("//")[1].split("/")[0].split(":")
        for _ in range(60):  # clients that connect and never send a byte
            idle.append(socket.create_connection((host, int(port)), timeout=5))
        time.sleep(1.0)  # let the server accept them all before counting its threads
        assert _threads(proc.pid) <= MAX_WORKERS + 4  # not a thread per idle connection
        # Each idle connection is dropped after the read timeout, and scrapes are served again.
        assert wait_for(lambda: _get(url, "s3cret-t0ken") == 200, timeout=40, interval=1.0)
        assert wait_for(lambda: _threads(proc.pid) <= 4, timeout=30)
    finally:
        for sock in idle:
            sock.close()
        proc.terminate()
        proc.communicate(timeout=10)


@pytest.mark.parametrize("token", [None, "t0k"])
def test_metrics_server_warns_when_reachable_from_other_machines_without_a_token(server, redis_client, token):
    env = {"JOBS_DASHBOARD_TOKEN": token} if token else {}
    proc, _ = _metrics_server(server, "--host", "0.0.0.0", **env)
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    assert ("no JOBS_DASHBOARD_TOKEN" in err) is (token is None), err


def test_the_text_forms_of_an_empty_app(server) -> None:
    assert jobs_cli(server, "dlq", "list", "--queue", Q).stdout == f"no dead letters in {Q}\n"
    assert jobs_cli(server, "schedules", "list").stdout == "no repeats\n"


@pytest.mark.parametrize("backend_kind", ["embedded"], indirect=True)
def test_server_status_of_a_running_server_in_text(server) -> None:
    out = jobs_cli(server, "server", "status")
    assert out.returncode == 0, out.stderr
    assert re.match(r"running  pid \d+  valkey \d+\.\d+", out.stdout), out.stdout
    assert f"socket   {server.home}/valkey.sock" in out.stdout


def test_stats_watch_redraws_until_interrupted(server, redis_client) -> None:
    redis_client.rpush(Q, "x")  # one waiting message to show
    frames = b""
    with subprocess.Popen(
        [JOBS, "stats", "--queues", Q, "--watch", "0.2"], cwd=ROOT, env=server.env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        assert proc.stderr is not None
        try:
            # Into a pipe, click drops the clear-screen sequence: each frame follows the last.
            while frames.count(b"queue ") < 3:  # drawn at least three times
                chunk = proc.stdout.read1(4096)
                assert chunk, proc.stderr.read()
                frames += chunk
            proc.send_signal(signal.SIGINT)  # Ctrl-C
            assert proc.wait(timeout=30) == 0
        finally:
            proc.kill()
    assert re.search(rf"^{Q}\s+1\s+0\s+0\s+0\s+0$", frames.decode(), re.MULTILINE), frames
