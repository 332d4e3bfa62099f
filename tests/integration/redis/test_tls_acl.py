"""TLS (``rediss://`` with certificate verification) and Redis ACL users, end to end.

Each test starts its own ``redis-server`` (TLS only, or with an ACL user and the
default user off) and points every part at it as a user would, through
``REDIS_URL``: the producer (``Bridge``), a real ``celery worker`` (broker and
result backend from ``celeryconfig``), ``bridge.lock``, repeats (redbeat) and the
``jobs stats`` command. The CA and server certificate are made by the test.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from cryptography import x509

from bridge import BackendUnavailable, Bridge, Settings, celeryconfig
from tests.conftest import JOBS, ROOT, Server, WorkerProcess, read_ledger, stop_workers, wait_for
from tests.redis_server import RedisServerProcess

pytestmark = [pytest.mark.redis, pytest.mark.worker]


@dataclass(frozen=True)
class Pki:
    """A test CA, a server certificate it signed for 127.0.0.1, and an unrelated CA."""

    ca: Path
    cert: Path
    key: Path
    other_ca: Path


def _make_pki(folder: Path) -> Pki:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    folder.mkdir(parents=True, exist_ok=True)

    def name(text: str) -> Any:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def certificate(subject: str, key: Any, issuer: str, issuer_key: Any, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            # Verification checks the host: the certificate must name 127.0.0.1.
            san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(path: Path, cert: Any) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    ca_key, server_key, other_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = certificate("bridge test CA", ca_key, "bridge test CA", ca_key, ca=True)
    key_path = folder / "server.key"
    key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return Pki(
        ca=write(folder / "ca.pem", ca),
        cert=write(
            folder / "server.pem", certificate("127.0.0.1", server_key, "bridge test CA", ca_key, False)
        ),
        key=key_path,
        other_ca=write(
            folder / "other-ca.pem", certificate("other CA", other_key, "other CA", other_key, True)
        ),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServerProcess]:
    server = RedisServerProcess(
        tmp_path_factory.mktemp("tls-redis"),
        tls=True,
        extra=["--tls-cert-file", str(pki.cert), "--tls-key-file", str(pki.key),
               "--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "no"],
    )  # fmt: skip
    server.start()
    yield server
    server.kill9()


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServerProcess]:
    server = RedisServerProcess(
        tmp_path_factory.mktemp("acl-redis"),
        extra=[
            *("--user", "alice", "on", ">secret", "~*", "&*", "+@all"),
            # Everything but CLIENT: no client tracking, so no doorbell for the worker.
            *("--user", "bob", "on", ">secret", "~*", "&*", "+@all", "-client"),
            *("--user", "default", "off"),
        ],
    )
    server.start()
    yield server
    server.kill9()


def verified_url(server: RedisServerProcess, ca: Path) -> str:
    return f"{server.url}?ssl_cert_reqs=required&ssl_ca_certs={ca}"


def make_bridge(url: str) -> Bridge:
    """A producer configured the way the README says: celeryconfig + Bridge from REDIS_URL."""
    settings = Settings.from_env(environ={"REDIS_URL": url})
    app = Celery(f"producer-{uuid.uuid4().hex[:6]}")
    app.config_from_object(celeryconfig.build(settings))
    return Bridge(app, settings=settings)


def jobs_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SQS_", "REDIS_URL"))}
    environ.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [JOBS, *args], cwd=ROOT, env=environ, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


@pytest.fixture
def worker_on(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[str, redis.Redis], WorkerProcess]]:
    """Start a real ``celery worker`` of tests.apps.ledger_app with REDIS_URL=url."""
    started: list[WorkerProcess] = []

    def start(url: str, client: redis.Redis) -> WorkerProcess:
        worker = WorkerProcess.launch("w1", tmp_path, Server("redis", url).env(), client)
        started.append(worker)
        worker.wait_ready()
        return worker

    yield start
    stop_workers(started, request)


def run_one_job(bridge: Bridge, client: redis.Redis, key: str) -> None:
    """Add a job, see the worker run it once, and read its result back through the result backend."""
    job = bridge.queue.add("ledger.record", {"key": key}, idempotency_key=key)
    assert wait_for(lambda: any(line["key"] == key for line in read_ledger(client)), timeout=30)
    assert bridge.app.AsyncResult(job.id).get(timeout=30) == {"ran": job.id, "key": key}
    assert [line["id"] for line in read_ledger(client) if line["key"] == key] == [job.id]


def test_tls_with_verification_works_for_producer_worker_lock_repeats_and_cli(
    tls_server: RedisServerProcess, pki: Pki, worker_on: Callable[[str, redis.Redis], WorkerProcess]
) -> None:
    url = verified_url(tls_server, pki.ca)
    client = redis.Redis.from_url(url)
    client.flushdb()
    worker_on(url, client)
    bridge = make_bridge(url)
    try:
        run_one_job(bridge, client, "tls-1")
        with bridge.lock("tls-nightly", ttl_ms=10_000):
            assert client.exists("bridge:lock:tls-nightly")
        bridge.jobs.schedule("ledger.record", {"key": "tick"}, every_ms=3_600_000, idempotency_key="tls")
        assert [r.idempotency_key for r in bridge.jobs.list()] == ["tls"]
    finally:
        bridge.close()
    cli = jobs_cli("stats", "--queues", "celery", "--json", REDIS_URL=url)
    assert cli.returncode == 0, cli.stderr
    assert set(json.loads(cli.stdout)["celery"]) >= {"waiting", "active", "delayed", "scheduled", "failed"}


@pytest.mark.parametrize("ca", ["other", "system"])
def test_a_certificate_that_fails_verification_is_a_clear_error(
    tls_server: RedisServerProcess, pki: Pki, ca: str
) -> None:
    # "system": no ssl_ca_certs, so the system CAs, which never signed the test CA; the
    # bridge turns verification on for a rediss:// URL that does not say (kombu would not).
    url = verified_url(tls_server, pki.other_ca) if ca == "other" else tls_server.url
    bridge = make_bridge(url)
    try:
        with pytest.raises(BackendUnavailable) as info:
            bridge.queue.add("ledger.record", {"key": "x"})
        message = str(info.value)
        assert "certificate failed verification" in message
        assert "REDIS_URL" in message
        lock = bridge.lock("tls-nightly", ttl_ms=1_000)
        with pytest.raises(BackendUnavailable, match="certificate failed verification"), lock:
            pass
    finally:
        bridge.close()
    cli = jobs_cli("stats", "--queues", "celery", REDIS_URL=url)
    assert cli.returncode == 1
    assert "certificate failed verification" in cli.stderr
    assert "Traceback" not in cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1


def test_acl_user_works_for_producer_and_worker_and_a_wrong_password_is_refused_clearly(
    acl_server: RedisServerProcess, worker_on: Callable[[str, redis.Redis], WorkerProcess]
) -> None:
    url = f"redis://alice:secret@127.0.0.1:{acl_server.port}/0"
    client = redis.Redis.from_url(url)
    client.flushdb()
    worker_on(url, client)
    bridge = make_bridge(url)
    try:
        run_one_job(bridge, client, "acl-1")
        with bridge.lock("acl-nightly", ttl_ms=10_000):
            assert client.exists("bridge:lock:acl-nightly")
    finally:
        bridge.close()

    wrong = f"redis://alice:Wr0ng-Pw-42@127.0.0.1:{acl_server.port}/0"
    bad = make_bridge(wrong)
    try:
        with pytest.raises(BackendUnavailable) as info:
            bad.queue.add("ledger.record", {"key": "x"})
    finally:
        bad.close()
    assert "refused the credentials" in str(info.value)
    assert "Wr0ng-Pw-42" not in str(info.value)
    cli = jobs_cli("stats", "--queues", "celery", REDIS_URL=wrong)
    assert cli.returncode == 1
    assert "refused the credentials" in cli.stderr
    assert "Wr0ng-Pw-42" not in cli.stdout + cli.stderr


def test_a_user_without_client_tracking_still_gets_every_job_and_one_warning(
    acl_server: RedisServerProcess, worker_on: Callable[[str, redis.Redis], WorkerProcess]
) -> None:
    """No doorbell (``-client``): a job on a priority sublist still runs, found by the 1 s wait."""
    url = f"redis://bob:secret@127.0.0.1:{acl_server.port}/0"
    client = redis.Redis.from_url(url)
    client.flushdb()
    worker = worker_on(url, client)
    bridge = make_bridge(url)
    try:
        for n in range(3):
            time.sleep(0.3)  # idle: the worker is in its wait
            bridge.queue.add("ledger.record", {"key": f"bob-{n}"}, priority=9)
            assert wait_for(lambda n=n: len(read_ledger(client)) == n + 1, timeout=30), worker.tail(40)
    finally:
        bridge.close()
    assert worker.log.read_text(errors="replace").count("refuses client tracking") == 1, worker.tail(40)


def existing_app(**conf: Any) -> Bridge:
    """An app as Celery's docs write one, its broker a rediss:// URL, adopting the bridge."""
    app = Celery(f"existing-{uuid.uuid4().hex[:6]}")
    app.conf.update(conf)
    return Bridge(app)


def test_an_apps_rediss_broker_is_verified_though_kombu_alone_would_not(
    tls_server: RedisServerProcess,
    pki: Pki,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in ("REDIS_URL", "QUEUE_BACKEND", "JOBS_BACKEND", "LOCK_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    redis.Redis.from_url(verified_url(tls_server, pki.ca)).flushdb()  # the server is the module's
    # Stated nothing about certificates: kombu would use CERT_NONE; the bridge refuses the self-signed server.
    unstated = existing_app(broker_url=tls_server.url)
    try:
        with pytest.raises(BackendUnavailable, match="certificate failed verification"):
            unstated.queue.add("ledger.record", {"key": "x"})
        with pytest.raises(BackendUnavailable, match="certificate failed verification"):
            unstated.lock("tls-store", ttl_ms=1_000).acquire()
    finally:
        unstated.close()

    # The app's own CA in broker_use_ssl: producer, lock store and repeats (redbeat) all verify with it.
    ssl_options = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": str(pki.ca)}
    trusted = existing_app(broker_url=tls_server.url, broker_use_ssl=ssl_options)
    try:
        assert not trusted.queue.add("ledger.record", {"key": "ca"}, idempotency_key="ca").deduplicated
        with trusted.lock("tls-store", ttl_ms=1_000):
            pass
        trusted.jobs.schedule("ledger.record", {"key": "t"}, every_ms=3_600_000, idempotency_key="ca")
        assert [r.idempotency_key for r in trusted.jobs.list()] == ["ca"]
    finally:
        trusted.close()

    # Verification off, said explicitly: it works, and the bridge says so once.
    caplog.set_level(logging.WARNING, logger="bridge")
    for _ in range(2):
        opted_out = existing_app(broker_url=tls_server.url + "?ssl_cert_reqs=none")
        try:
            opted_out.queue.add("ledger.record", {"key": "off"})
        finally:
            opted_out.close()
    warnings = [r.getMessage() for r in caplog.records if "verification is OFF" in r.getMessage()]
    assert len(warnings) == 1, warnings
