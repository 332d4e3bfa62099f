"""Shared fixtures: a real server (flushed around each test) and real celery workers.

The server is the system Redis by default; a test parametrised with
``@pytest.mark.parametrize("backend_kind", BACKENDS, indirect=True)`` runs once
against the system Redis and once against the embedded Valkey server. A missing
service fails the run under CI=true and is skipped, loudly, elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from bridge import Bridge, Settings, celeryconfig
from bridge.core.connect import redis_client as client_for
from tests.redis_server import RedisServerProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
TEST_REDIS_URL = os.environ.get("BRIDGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
#: The installed ``jobs`` command, as users run it (not ``python -m bridge.cli``).
JOBS = str(Path(sys.executable).with_name("jobs"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

if os.environ.get("COVERAGE_PROCESS_CONFIG"):
    # Coverage measures the worker and beat processes too (setup.cfg [coverage:run] patch). They
    # run in other directories, so every measured process writes its data file beside this one's,
    # where pytest-cov combines them at the end of the run.
    os.environ.setdefault("COVERAGE_FILE", str(ROOT / ".coverage"))


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Mark a test whose body failed, so its fixtures can collect more evidence on teardown; under CI,
    turn a skip into a failure."""
    outcome: Any = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        # Under CI nothing is skipped silently: a skip means a part is missing, which is a failure.
        why = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI: skipped ({why})"


def _service_missing(what: str) -> None:
    message = f"{what} is not reachable; start it (see .ci/run) or set BRIDGE_TEST_REDIS_URL"
    if IN_CI:
        pytest.fail(f"CI: {message}", pytrace=False)
    print(f"\n*** SKIPPING: {message} ***", file=sys.stderr)
    pytest.skip(message)


BACKENDS = ["redis", "embedded"]


@dataclass(frozen=True)
class Server:
    """The server a test runs against, and how a process is pointed at it."""

    kind: str
    url: str  # redis-py URL, or kombu's sentinel:// URL
    home: Path | None = None  # BRIDGE_HOME of the embedded server
    sentinel_master: str | None = None  # the primary's name, for a sentinel:// URL

    def client(self) -> redis.Redis:
        return client_for(self.url, sentinel_master=self.sentinel_master)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {"promote_interval_ms": 100}
        if self.kind == "embedded":
            values.update(queue_backend="embedded", jobs_backend="embedded", lock_backend="embedded")
            values["bridge_home"] = self.home
        else:
            values.update(queue_backend="redis", jobs_backend="redis", lock_backend="redis")
            values["redis_url"] = self.url
            values["redis_sentinel_master"] = self.sentinel_master
        values.update(overrides)
        return Settings(**values)

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a worker, beat or example process using this server."""
        env = dict(os.environ)
        for name in ("REDIS_URL", "REDIS_SENTINEL_MASTER", "QUEUE_BACKEND", "JOBS_BACKEND", "LOCK_BACKEND",
                     "BRIDGE_HOME"):  # fmt: skip
            env.pop(name, None)
        if self.kind == "embedded":
            env.update(QUEUE_BACKEND="embedded", BRIDGE_HOME=str(self.home))
        else:
            env.update(REDIS_URL=self.url, QUEUE_BACKEND="redis")
        if self.sentinel_master:
            env.update(REDIS_SENTINEL_MASTER=self.sentinel_master)
        env.update(JOBS_PROMOTE_INTERVAL_MS="100", PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        env.update(extra)
        return env


@pytest.fixture(scope="session")
def system_redis() -> Server:
    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError:
        _service_missing(f"Redis at {TEST_REDIS_URL}")
    return Server("redis", TEST_REDIS_URL)


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[Server]:
    """One embedded server for the session, in a short /tmp folder (unix socket paths are short)."""
    from bridge.embedded.server import EmbeddedServer

    home = Path(tempfile.mkdtemp(prefix="bt-"))
    server = EmbeddedServer(home)
    server.ensure_running()
    yield Server("embedded", server.url, home)
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "redis"))


@pytest.fixture
def server(backend_kind: str, request: pytest.FixtureRequest) -> Server:
    fixture = "embedded_server" if backend_kind == "embedded" else "system_redis"
    return request.getfixturevalue(fixture)  # type: ignore[no-any-return]


@pytest.fixture
def redis_url(server: Server) -> str:
    return server.url


@pytest.fixture
def redis_client(server: Server) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def make_bridge(redis_client: redis.Redis, server: Server) -> Iterator[Callable[..., Bridge]]:
    """Build a producer-side app + Bridge like a user would (no environment needed)."""
    made: list[Bridge] = []

    def make(conf: dict[str, Any] | None = None, **overrides: Any) -> Bridge:
        settings = server.settings(**overrides)
        app = Celery(f"producer-{uuid.uuid4().hex[:6]}")
        app.config_from_object(celeryconfig.build(settings))
        app.conf.update(conf or {})
        made.append(Bridge(app, settings=settings))
        return made[-1]

    yield make
    for b in made:
        b.close()


@dataclass
class CeleryProcess:
    """A real ``celery`` process (worker or beat), in its own process group."""

    proc: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def spawn(
        cls, args: list[str], log: Path, env: dict[str, str], app: str = "tests.apps.ledger_app", **extra: Any
    ) -> Any:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", app, *args],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        return cls(proc, log, **extra)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def dump_stacks(self) -> None:
        """Ask every process of the group for its threads' stacks (tests/apps/ledger_app registers them)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGUSR2)
            time.sleep(0.5)

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()

    def kill9(self) -> None:
        """kill -9 the process and its children (pool processes), as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@dataclass
class WorkerProcess(CeleryProcess):
    """A real ``celery worker``."""

    name: str = "w1"
    client: redis.Redis | None = None

    @property
    def hostname(self) -> str:
        return f"{self.name}@bridge-test"

    @classmethod
    def launch(
        cls, name: str, log_dir: Path, env: dict[str, str], client: redis.Redis, concurrency: int = 1,
        queues: str | None = None, events: bool = False,
    ) -> WorkerProcess:  # fmt: skip
        """Spawn ``celery -A tests.apps.ledger_app worker`` named ``<name>@bridge-test``."""
        args = ["worker", "-n", f"{name}@bridge-test", "-c", str(concurrency), "-P", "prefork",
                "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"]  # fmt: skip
        if queues:
            args += ["-Q", queues]
        if events:
            args.append("-E")  # task events, as Flower needs
        worker: WorkerProcess = cls.spawn(args, log_dir / f"{name}.log", env, name=name, client=client)
        return worker

    def wait_ready(self, timeout: float = 45) -> None:
        assert self.client is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.ConnectionError):  # the worker may be (re)starting it
                if self.client.exists(f"test:ready:{self.hostname}"):
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"worker {self.hostname} not ready:\n{self.tail()}")


@pytest.fixture
def start_worker(
    redis_client: redis.Redis, server: Server, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``celery -A tests.apps.ledger_app worker`` processes; all are stopped after the test."""
    workers: list[WorkerProcess] = []

    def start(
        name: str = "w1",
        concurrency: int = 1,
        queues: str | None = None,
        wait: bool = True,
        events: bool = False,
        **env: str,
    ) -> WorkerProcess:
        worker = WorkerProcess.launch(
            name, tmp_path, server.env(**env), redis_client, concurrency, queues=queues, events=events
        )
        workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    stop_workers(workers, request)


def stop_workers(workers: list[WorkerProcess], request: pytest.FixtureRequest) -> None:
    """Stop a test's workers; for a failed test, with every thread's stack in their logs first."""
    failed = request.node.stash.get(FAILED, False)
    for worker in workers:
        if failed:
            worker.dump_stacks()
        worker.stop()
        # pytest shows a test's teardown output only when it failed: then the worker's log is there.
        print(f"--- last lines of {worker.hostname}'s log ---\n{worker.tail(200 if failed else 60)}")


@dataclass(frozen=True)
class MotoSqs:
    """moto's SQS server on a loopback port, and the environment that points at it."""

    endpoint: str

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_SQS": self.endpoint,
        }

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {"aws_region": "us-east-1", "aws_endpoint_url_sqs": self.endpoint}
        values.update(overrides)
        return Settings(**values)


def start_moto(command: list[str], what: str, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start a moto server (``command``, the port appended) on ``port`` (default: a free one); wait until
    it answers."""
    import urllib.request

    port = port or free_port()
    try:
        proc = subprocess.Popen([sys.executable, *command, str(port)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    except OSError:
        _service_missing(f"{what} (pip install 'moto[server]')")
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            return proc, endpoint
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                _service_missing(f"{what} on {endpoint}")
            time.sleep(0.1)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoSqs]:
    """Start moto's server (``moto[server]``) on a free 127.0.0.1 port for the session."""
    proc, endpoint = start_moto(["-m", "moto.server", "-H", "127.0.0.1", "-p"], "moto's SQS server")
    yield MotoSqs(endpoint)
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def sqs(moto_server: MotoSqs, monkeypatch: pytest.MonkeyPatch) -> MotoSqs:
    """moto's server, reset before each test (its reset endpoint; PurgeQueue is rate-limited).

    The test process gets the emulator's dummy credentials the way a user's does:
    through the AWS chain's environment variables.
    """
    import urllib.request

    request = urllib.request.Request(moto_server.endpoint + "/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    return moto_server


BEAT_LOCK = "bridge:repeat::lock"


@pytest.fixture
def start_beat(
    redis_client: redis.Redis, server: Server, tmp_path: Path
) -> Iterator[Callable[..., CeleryProcess]]:
    """Start ``celery -A tests.apps.ledger_app beat`` processes; all are stopped after the test."""
    beats: list[CeleryProcess] = []

    def start(name: str = "beat1", wait_for_lock: bool = True, **env: str) -> CeleryProcess:
        args = ["beat", "--loglevel=INFO", "-s", str(tmp_path / f"{name}-schedule")]
        beat: CeleryProcess = CeleryProcess.spawn(args, tmp_path / f"{name}.log", server.env(**env))
        beats.append(beat)
        if wait_for_lock and not wait_for(lambda: bool(redis_client.exists(BEAT_LOCK)), timeout=30):
            raise AssertionError(f"beat {name} took no lock:\n{beat.tail()}")
        return beat

    yield start
    for beat in beats:
        beat.stop()
        print(f"--- last lines of {beat.log.name} ---\n{beat.tail()}")  # shown only if the test failed


def read_ledger(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(line) for line in client.lrange("test:ledger", 0, -1)]


def wait_for(predicate: Callable[[], bool], timeout: float = 30, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def server_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


AMQP_URL = os.environ.get("BRIDGE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture
def amqp_url() -> str:
    """The real RabbitMQ (BRIDGE_TEST_AMQP_URL), checked to answer: missing fails under CI."""
    from kombu import Connection

    try:
        with Connection(AMQP_URL, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception:
        _service_missing(f"RabbitMQ at {AMQP_URL}")
    return AMQP_URL


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServerProcess]:
    """A ``redis-server`` of this test's own (free loopback port, append-only file), stopped afterwards."""
    server = RedisServerProcess(tmp_path / "redis")
    server.start()
    yield server
    server.kill9()


@pytest.fixture
def start_worker_at(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., WorkerProcess]]:
    """``start_worker`` for a server of the test's own (a ``private_redis``): ``start(server, name, ...)``.

    Readiness is read from that server; all workers are stopped after the test.
    """
    workers: list[WorkerProcess] = []

    def start(
        server: Server, name: str = "w1", concurrency: int = 1, wait: bool = True, **env: str
    ) -> WorkerProcess:
        client = server.client()
        worker = WorkerProcess.launch(name, tmp_path, server.env(**env), client, concurrency)
        workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    stop_workers(workers, request)
    for worker in workers:
        if worker.client is not None:
            worker.client.close()
