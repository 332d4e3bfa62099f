"""The jobs command as installed (the `jobs` script and `celery -A APP jobs`): how it finds the app.

-A APP, --redis-url, --version, no embedded server started by a read, purge's
confirmation, --json on the commands that change state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge import __version__
from tests.conftest import ROOT

pytestmark = [pytest.mark.redis]

BIN = Path(sys.executable).parent


def run(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "QUEUE_BACKEND", "BRIDGE_HOME")}
    environ.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run([*args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=90)


def test_version() -> None:
    out = run(str(BIN / "jobs"), "--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"jobs (celery-jobs-bridge) {__version__}"


def test_without_an_app_it_starts_no_embedded_server_and_says_what_to_do(tmp_path: Path) -> None:
    out = run(str(BIN / "jobs"), "stats", "--queues", "celery", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("jobs: configuration error: no -A APP given, no REDIS_URL set")
    assert "jobs server start" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / ".bridge").exists()


def test_with_an_embedded_server_started_on_purpose_it_reads_that_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    try:
        started = run(str(BIN / "jobs"), "server", "start", "--json", BRIDGE_HOME=str(home))
        assert started.returncode == 0, started.stderr
        assert json.loads(started.stdout)["running"] is True
        out = run(str(BIN / "jobs"), "stats", "--queues", "celery", "--json", BRIDGE_HOME=str(home))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["celery"]["waiting"] == 0
        assert out.stderr.strip() == f"jobs: no -A APP given; read the embedded server in {home}"
    finally:
        stopped = run(str(BIN / "jobs"), "server", "stop", "--json", BRIDGE_HOME=str(home))
    assert json.loads(stopped.stdout) == {"stopped": True}


@pytest.mark.parametrize("where", ["before", "after"])
def test_redis_url_option_and_its_password_stay_hidden(redis_client, server, where: str) -> None:
    """``--redis-url`` before the command or after it (``jobs stats --redis-url URL``)."""

    def jobs(url: str, *args: str) -> subprocess.CompletedProcess[str]:
        option = ["--redis-url", url]
        return run(str(BIN / "jobs"), *(option if where == "before" else []), *args,
                   *(option if where == "after" else []))  # fmt: skip

    redis_client.rpush("celery", "x")
    out = jobs(server.url, "stats", "--queues", "celery", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["celery"]["waiting"] == 1
    assert out.stderr.strip() == f"jobs: no -A APP given; read --redis-url {server.url}"
    with_password = jobs(server.url.replace("redis://", "redis://default:not-the-password@"), "stats")
    assert "not-the-password" not in with_password.stdout + with_password.stderr


@pytest.mark.parametrize("how", ["jobs -A", "jobs stats -A", "celery -A"])
def test_the_apps_bridge_is_used_with_its_own_settings(redis_client, server, how: str) -> None:
    """The docs app keeps its broker in its own config module; -A finds its Bridge (and its queue counts),
    named before the command or after it, as ``celery worker -A proj`` takes it."""
    app = "tests.apps.docs_app"
    env = {"DOCS_BROKER_URL": server.url, "DOCS_RESULTS_DIR": "/tmp"}
    redis_client.rpush("celery", "x")  # one message waiting in the app's default queue
    command = {
        "jobs -A": [str(BIN / "jobs"), "-A", app, "stats"],
        "jobs stats -A": [str(BIN / "jobs"), "stats", "-A", app],
        "celery -A": [str(BIN / "celery"), "-A", app, "jobs", "stats"],
    }[how]
    out = run(*command, "--queues", "celery", "--json", **env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["celery"]["waiting"] == 1
    assert "no -A APP given" not in out.stderr


def test_stats_counts_the_queues_the_apps_config_names_by_default(redis_client, server) -> None:
    """Without --queues, ``jobs stats`` counts the app's own queues: its default queue, the jobs
    queue, ``task_queues`` and the queues ``task_routes`` names (not ``celery``, which it never uses)."""
    redis_client.rpush("feeds", "x", "y")  # two messages waiting in a routed queue
    out = run(
        str(BIN / "jobs"), "-A", "tests.apps.routed_app", "stats", "--json", ROUTED_BROKER_URL=server.url
    )
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout)
    assert list(counts) == ["default", "app:jobs", "media", "feeds"]
    assert counts["feeds"]["waiting"] == 2


def test_an_app_that_does_not_load_is_one_line() -> None:
    out = run(str(BIN / "jobs"), "-A", "no.such.module", "stats")
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "jobs: configuration error: -A no.such.module: cannot load the app: "
        "ModuleNotFoundError: No module named 'no'"
    ]


@pytest.mark.parametrize("where", ["-A before", "-A after", "both after"])
def test_a_and_redis_url_together_are_refused(where: str) -> None:
    app, url = ["-A", "tests.apps.docs_app"], ["--redis-url", "redis://x/0"]
    before, after = {
        "-A before": ([*app, *url], []),
        "-A after": (url, app),
        "both after": ([], [*url, *app]),
    }[where]
    out = run(str(BIN / "jobs"), *before, "stats", *after)
    assert out.returncode == 2
    assert "give -A APP or --redis-url, not both" in out.stderr


def test_purge_asks_first_and_without_a_terminal_needs_yes(make_bridge, redis_client, server) -> None:
    bridge = make_bridge()
    letters = bridge.dead_letters
    from bridge.redis.deadletters import DeadLetter

    letters.record(DeadLetter(id="j1", name="t", queue="celery", data={}, exc_type="E", exc_message="m",
                              traceback="", attempts=1, failed_at=0.0))  # fmt: skip
    refused = run(str(BIN / "jobs"), "--redis-url", server.url, "dlq", "purge", "--queue", "celery")
    assert refused.returncode == 2
    assert "confirm with --yes" in refused.stderr
    assert letters.count("celery") == 1  # nothing deleted
    done = run(
        str(BIN / "jobs"), "--redis-url", server.url, "dlq", "purge", "--queue", "celery", "--yes", "--json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"purged": 1}
    assert letters.count("celery") == 0


def test_state_changing_commands_print_json(make_bridge, redis_client, server) -> None:
    bridge = make_bridge()
    bridge.jobs.schedule("ledger.record", {}, every_ms=5000, idempotency_key="k")
    base = [str(BIN / "jobs"), "--redis-url", server.url]
    cancel = [*base, "schedules", "cancel", "--name", "ledger.record", "--key", "k", "--every-ms", "5000"]
    cancelled = run(*cancel, "--json")
    assert json.loads(cancelled.stdout) == {"cancelled": True}
    again = run(*cancel, "--json")
    assert json.loads(again.stdout) == {"cancelled": False}
    retried = run(*base, "dlq", "retry", "--queue", "celery", "--all", "--json")
    assert json.loads(retried.stdout) == {"retried": 0}


def test_a_read_only_command_does_not_claim_a_retry_is_safe_for_an_add() -> None:
    out = run(str(BIN / "jobs"), "--redis-url", "redis://127.0.0.1:1/0", "stats", "--queues", "celery")
    assert out.returncode == 1
    assert "idempotency_key" not in out.stderr
    assert "Check that the server is running" in out.stderr


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (
            ["stats", "--queues", "jobs"],
            "jobs stats counts Redis, embedded and broker queues; for SQS run jobs stats-sqs",
        ),
        (
            ["dlq", "list", "--queue", "jobs"],
            "this backend keeps no dead letters here; for SQS use the queue's DLQ",
        ),
    ],
)
def test_on_sqs_the_redis_only_commands_point_at_the_sqs_ones(
    command: list[str], says: str, system_redis, tmp_path: Path
) -> None:
    sqs_env = {
        "QUEUE_BACKEND": "sqs", "JOBS_BACKEND": "sqs", "LOCK_BACKEND": "redis",
        "SQS_QUEUE_URL": "http://127.0.0.1:1/000000000000/jobs", "AWS_REGION": "us-east-1",
        "REDIS_URL": system_redis.url, "BRIDGE_HOME": str(tmp_path / "home"),
    }  # fmt: skip
    out = run(str(BIN / "jobs"), *command, **sqs_env)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"jobs: configuration error: {says}"), out.stderr
    assert not (tmp_path / "home").exists()  # nothing was started on the way to the refusal
