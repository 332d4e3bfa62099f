"""Secrets never printed: a password in REDIS_URL and AWS secrets, with errors forced everywhere.

Every ``jobs`` command runs as a subprocess and every public API entry point runs
in-process, each failing on purpose (a wrong password against a real server, a
closed port, a malformed URL, an unknown queue). The secret must appear in no
stdout, stderr, exception text, traceback or log record. A real ``celery worker``
started with the bad URL must not print it either.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import traceback
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from bridge import Bridge, BridgeError, Settings, celeryconfig
from tests.conftest import JOBS, ROOT, MotoSqs, Server, WorkerProcess, wait_for
from tests.redis_server import RedisServerProcess, free_port

pytestmark = [pytest.mark.redis]

REDIS_PASSWORD = "S3cr3tPw-XYZ"
AWS_SECRET = "AwsS3cretKey-XYZ0123456789"
AWS_TOKEN = "AwsS3ssionT0ken-XYZ"
SECRETS = (REDIS_PASSWORD, AWS_SECRET, AWS_TOKEN)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"secret printed in:\n{text}"


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServerProcess]:
    """A real server whose password is not REDIS_PASSWORD: every connection is refused."""
    server = RedisServerProcess(tmp_path_factory.mktemp("pw-redis"), extra=["--requirepass", "the-right-one"])
    server.start()
    yield server
    server.kill9()


@pytest.fixture(scope="module")
def wrong_password_url(guarded_server: RedisServerProcess) -> str:
    return f"redis://:{REDIS_PASSWORD}@127.0.0.1:{guarded_server.port}/0"


@pytest.fixture(scope="module")
def closed_port_url() -> str:
    return f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0"


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SQS_", "REDIS_URL", "QUEUE_"))}
    env.update(PYTHONPATH=str(ROOT), AWS_ACCESS_KEY_ID="AKIAEXAMPLE", AWS_SECRET_ACCESS_KEY=AWS_SECRET,
               AWS_SESSION_TOKEN=AWS_TOKEN, AWS_REGION="us-east-1")  # fmt: skip
    env.update(extra)
    return env


def jobs_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [JOBS, *args], cwd=ROOT, env=cli_env(**env), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


REDIS_COMMANDS = [
    ["schedules", "list"],
    ["schedules", "cancel", "--name", "reports.daily", "--every-ms", "5000"],
    ["stats", "--queues", "celery,app:jobs"],
    ["stats", "--json"],
    ["stats", "--prometheus"],
    ["dlq", "list", "--queue", "celery"],
    ["dlq", "retry", "--queue", "celery", "--all"],
    ["dlq", "purge", "--queue", "celery", "--yes"],
]


@pytest.mark.parametrize("args", REDIS_COMMANDS, ids=" ".join)
def test_redis_commands_refused_by_the_server_print_no_password(
    wrong_password_url: str, args: list[str]
) -> None:
    result = jobs_cli(*args, REDIS_URL=wrong_password_url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "refused the credentials" in result.stderr
    assert "Traceback" not in result.stderr
    assert_no_secret(result.stdout, result.stderr)


@pytest.mark.parametrize(
    "url",
    [
        "closed port",
        f"http://:{REDIS_PASSWORD}@127.0.0.1:6379/0",  # not a Redis URL
        f"rediss://:{REDIS_PASSWORD}@127.0.0.1:6380/0?ssl_cert_reqs=maybe",
        f"rediss://:{REDIS_PASSWORD}@127.0.0.1:6380/0?ssl_ca_certs=/nonexistent/ca.pem",
    ],
)
def test_unreachable_or_malformed_redis_url_prints_no_password(closed_port_url: str, url: str) -> None:
    result = jobs_cli("stats", REDIS_URL=closed_port_url if url == "closed port" else url)
    assert result.returncode in (1, 2)
    assert result.stderr.startswith("jobs: ")
    assert "Traceback" not in result.stderr
    assert_no_secret(result.stdout, result.stderr)


@pytest.mark.parametrize("command", ["status", "start", "stop"])
def test_server_commands_print_no_password(tmp_path: Path, wrong_password_url: str, command: str) -> None:
    too_deep = tmp_path / ("d" * 120)  # the socket path would exceed the unix limit: a ConfigError
    result = jobs_cli("server", command, REDIS_URL=wrong_password_url, BRIDGE_HOME=str(too_deep))
    assert result.returncode == 2
    assert "BRIDGE_HOME" in result.stderr
    assert_no_secret(result.stdout, result.stderr)


def test_metrics_server_prints_no_password(
    guarded_server: RedisServerProcess, wrong_password_url: str
) -> None:
    # A port in use: one line, exit 2.
    busy = jobs_cli("metrics-server", "--port", str(guarded_server.port), REDIS_URL=wrong_password_url)
    assert busy.returncode == 2
    assert "Traceback" not in busy.stderr
    assert_no_secret(busy.stdout, busy.stderr)
    # Serving: a scrape while the server refuses the password answers 503 with the reason.
    proc = subprocess.Popen(
        [JOBS, "metrics-server", "--port", "0"], cwd=ROOT,
        env=cli_env(REDIS_URL=wrong_password_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = first.split()[1]
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(url, timeout=30)
        body = info.value.read().decode()
        assert info.value.code == 503
        assert "refused the credentials" in body
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert_no_secret(first, body, out, err)


@pytest.mark.sqs
@pytest.mark.parametrize(
    "args",
    [
        ["sqs", "ensure-queue", "not a valid name!"],
        ["stats-sqs", "--queue-url", "{endpoint}/123456789012/missing"],
        ["sqs", "iam-policy", "--queue", "{endpoint}/123456789012/missing"],
        ["sqs", "iam-policy", "--queue", "not-a-queue-url"],
    ],
    ids=" ".join,
)
def test_sqs_commands_print_no_aws_secret(
    moto_server: MotoSqs, wrong_password_url: str, args: list[str]
) -> None:
    argv = [a.format(endpoint=moto_server.endpoint) for a in args]
    result = jobs_cli(*argv, REDIS_URL=wrong_password_url, AWS_ENDPOINT_URL_SQS=moto_server.endpoint)
    assert result.stderr.strip(), "the forced error says something"
    assert "Traceback" not in result.stderr
    assert_no_secret(result.stdout, result.stderr)


# -- the public API, in-process ---------------------------------------------------------------


def _bridge_for(url: str) -> Bridge:
    settings = Settings(redis_url=url, queue_backend="redis", jobs_backend="redis", lock_backend="redis")
    app = Celery(f"secrets-{uuid.uuid4().hex[:6]}")
    app.config_from_object(celeryconfig.build(settings))
    return Bridge(app, settings=settings)


def _guarded_task(bridge: Bridge) -> None:
    @bridge.app.task(name="secrets.guarded", shared=False)  # not pushed into the other tests' apps
    @bridge.idempotent()
    def guarded() -> int:
        return 1

    guarded.apply(throw=True)  # runs the task (and its guard) here, as a worker would


def _lock(bridge: Bridge) -> None:
    with bridge.lock("nightly", ttl_ms=1_000):
        pass


API_CALLS: dict[str, Callable[[Bridge], Any]] = {
    "queue.add": lambda b: b.queue.add("emails.send", {"to": "a@b.c"}, idempotency_key="k1"),
    "queue.add delayed": lambda b: b.queue.add("emails.send", {}, delay_ms=60_000),
    "add_bulk": lambda b: b.queue.add_bulk([("emails.send", {"n": 1}), ("emails.send", {"n": 2})]),
    "jobs.schedule cron": lambda b: b.jobs.schedule(
        "reports.daily", {}, cron="0 6 * * *", idempotency_key="s"
    ),
    "jobs.schedule one-off": lambda b: b.jobs.schedule("emails.send", {}, delay_ms=1000, idempotency_key="r"),
    "jobs.cancel repeat": lambda b: b.jobs.cancel(
        name="reports.daily", idempotency_key="s", cron="0 6 * * *"
    ),
    "jobs.cancel one-off": lambda b: b.jobs.cancel(name="emails.send", idempotency_key="r"),
    "jobs.list": lambda b: b.jobs.list(),
    "lock": _lock,
    "idempotent task": _guarded_task,
    "stats": lambda b: b.stats(["celery"]),
}


def _all_text(exc: BaseException, caplog: pytest.LogCaptureFixture) -> list[str]:
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    formatter = logging.Formatter()
    for record in caplog.records:
        texts.append(record.getMessage())
        if record.exc_info:
            texts.append(formatter.formatException(record.exc_info))
    return texts


@pytest.mark.parametrize("call", list(API_CALLS), ids=str)
def test_api_entry_points_refused_by_the_server_show_no_password(
    wrong_password_url: str, caplog: pytest.LogCaptureFixture, call: str
) -> None:
    caplog.set_level(logging.DEBUG)
    bridge = _bridge_for(wrong_password_url)
    try:
        with pytest.raises(BridgeError) as info:
            API_CALLS[call](bridge)
    finally:
        bridge.close()
    assert "refused the credentials" in str(info.value)
    assert_no_secret(*_all_text(info.value, caplog))


def test_api_on_a_closed_port_shows_no_password(
    closed_port_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bridge = _bridge_for(closed_port_url)
    try:
        # queue.add on a closed port (kombu's retry path) is covered by the `jobs stats` case above.
        for call in ("lock", "jobs.list", "idempotent task"):
            with pytest.raises(BridgeError) as info:
                API_CALLS[call](bridge)
            assert_no_secret(*_all_text(info.value, caplog))
    finally:
        bridge.close()


def test_bridge_refuses_bad_urls_without_showing_the_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app = Celery("secrets-amqp")
    app.conf.broker_url = f"amqp://guest:{REDIS_PASSWORD}@127.0.0.1:5672//"
    settings = Settings(redis_url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0", queue_backend="redis")
    with pytest.raises(BridgeError) as info:
        Bridge(app, settings=settings)  # the redis backend needs a Redis broker
    assert "broker_url" in str(info.value)
    assert_no_secret(*_all_text(info.value, caplog))
    with pytest.raises(BridgeError) as info:
        Settings.from_env(environ={"REDIS_URL": f"http://:{REDIS_PASSWORD}@127.0.0.1/0"})
    assert_no_secret(*_all_text(info.value, caplog))


@pytest.mark.sqs
def test_sqs_queue_add_to_a_missing_queue_shows_no_aws_secret(
    sqs: MotoSqs, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from bridge.embedded.server import EmbeddedServer

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", AWS_TOKEN)
    caplog.set_level(logging.DEBUG, logger="bridge")
    home = Path(tempfile.mkdtemp(prefix="bs-"))  # the guard store's embedded server (no REDIS_URL)
    settings = sqs.settings(
        queue_backend="sqs", jobs_backend="sqs", sqs_queue_url=f"{sqs.endpoint}/123456789012/missing",
        sqs_heartbeat_sec=0, bridge_home=home,
    )  # fmt: skip
    app = Celery("secrets-sqs")
    app.config_from_object(celeryconfig.build(settings))
    bridge = Bridge(app, settings=settings)
    try:
        with pytest.raises(BridgeError) as info:
            bridge.queue.add("emails.send", {"to": "a@b.c"})
    finally:
        bridge.close()
        EmbeddedServer(home).stop()
        shutil.rmtree(home, ignore_errors=True)
    assert_no_secret(*_all_text(info.value, caplog))


@pytest.mark.worker
def test_a_worker_with_a_wrong_password_logs_no_password(wrong_password_url: str, tmp_path: Path) -> None:
    env = Server("redis", wrong_password_url).env(
        AWS_SECRET_ACCESS_KEY=AWS_SECRET, AWS_SESSION_TOKEN=AWS_TOKEN
    )
    args = ["worker", "-n", "secrets@bridge-test", "-c", "1", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "--loglevel=DEBUG"]  # fmt: skip
    worker: WorkerProcess = WorkerProcess.spawn(args, tmp_path / "worker.log", env, name="secrets")
    try:
        # The banner is printed, then the consumer's first connection is refused and logged.
        assert wait_for(lambda: "Cannot connect" in worker.log.read_text(errors="replace"), timeout=45), (
            worker.tail()
        )
    finally:
        worker.stop()
    log = worker.log.read_text(errors="replace")
    assert "transport:" in log
    assert ":**@127.0.0.1" in log  # Celery's banner, password masked
    assert_no_secret(log)


def test_socket_helper_port_is_really_closed(closed_port_url: str) -> None:
    # Guards the closed-port cases above: nothing may listen there, or they test nothing.
    port = int(closed_port_url.rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
