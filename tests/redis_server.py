"""A private ``redis-server`` on a free loopback port, for tests that must stop, kill or reconfigure it.

The shared Redis on 127.0.0.1:6379 is never restarted by a test: fault tests
(a Redis restart under load) and TLS/ACL tests start their own server here.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("redis-server is not installed; .ci/run installs Debian's redis-server")
    return found


@dataclass
class RedisServerProcess:
    """``redis-server`` in ``workdir`` with append-only persistence, so a restart keeps acknowledged writes.

    ``extra`` holds more ``--option value`` arguments (TLS, ACL users, ...).
    """

    workdir: Path
    port: int = field(default_factory=free_port)
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    #: Serve TLS only, on ``port`` (the plain-text port is closed); give the certificate
    #: options (``--tls-cert-file`` ...) in ``extra``.
    tls: bool = False

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.workdir / "redis.log"

    def start(self, timeout: float = 10) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(), "--bind", "127.0.0.1",
            *(["--port", "0", "--tls-port", str(self.port)] if self.tls else ["--port", str(self.port)]),
            "--dir", str(self.workdir), "--save", "", "--appendonly", "yes", "--appendfsync", "always",
            "--logfile", str(self.log), *self.extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self._answers():
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start:\n{self.tail()}")

    def _answers(self) -> bool:
        if self.port == 0:
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis.from_url(self.url, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        """A clean shutdown (SIGTERM: Redis flushes its append-only file)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait(10)

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class SentinelGroup:
    """A primary, one replica and three sentinels (``redis-server --sentinel``) on loopback ports.

    ``url`` is kombu's form, ``sentinel://127.0.0.1:p1;sentinel://...``; the primary is
    ``MASTER``. Sentinels notice a dead primary after one second and promote the replica.
    """

    workdir: Path
    MASTER = "mymaster"
    primary: RedisServerProcess = field(init=False)
    replica: RedisServerProcess = field(init=False)
    sentinels: list[subprocess.Popen[bytes]] = field(default_factory=list)
    sentinel_ports: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.primary = RedisServerProcess(self.workdir / "primary")
        self.replica = RedisServerProcess(self.workdir / "replica")

    @property
    def url(self) -> str:
        return ";".join(f"sentinel://127.0.0.1:{port}" for port in self.sentinel_ports)

    def start(self, timeout: float = 30) -> None:
        self.primary.start()
        self.replica.extra = ["--replicaof", "127.0.0.1", str(self.primary.port)]
        self.replica.start()
        for n in range(3):
            port = free_port()
            folder = self.workdir / f"sentinel{n}"
            folder.mkdir(parents=True)
            config = folder / "sentinel.conf"  # sentinels rewrite their config: one file each
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\nlogfile {folder / 'sentinel.log'}\n"
                f"sentinel monitor {self.MASTER} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.MASTER} 1000\n"
                f"sentinel failover-timeout {self.MASTER} 5000\n"
                f"sentinel parallel-syncs {self.MASTER} 1\n"
            )
            args = [redis_server_binary(), str(config), "--sentinel"]
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            self.sentinels.append(proc)
            self.sentinel_ports.append(port)
        # Ready for a failover: every sentinel sees the replica and the two other sentinels.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._sees_the_group(port) for port in self.sentinel_ports) and self.in_sync():
                return
            time.sleep(0.2)
        raise RuntimeError(f"the sentinel group did not form:\n{self.primary.tail()}\n{self.replica.tail()}")

    def _sees_the_group(self, port: int) -> bool:
        try:
            with redis.Redis(port=port, socket_timeout=1) as sentinel:
                replicas = sentinel.execute_command("SENTINEL", "REPLICAS", self.MASTER)
                others = sentinel.execute_command("SENTINEL", "SENTINELS", self.MASTER)
        except redis.RedisError:
            return False
        return len(replicas) == 1 and len(others) == 2

    def in_sync(self) -> bool:
        """The replica has every write the primary acknowledged (asynchronous replication caught up)."""
        try:
            offset = self.primary.client().info("replication")["master_repl_offset"]
            return bool(self.replica.client().info("replication").get("slave_repl_offset", -1) >= offset)
        except redis.RedisError:
            return False

    def primary_port(self) -> int:
        with redis.Redis(port=self.sentinel_ports[0], socket_timeout=1) as sentinel:
            _, port = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER)
        return int(port)

    def stop(self) -> None:
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.replica.kill9()
        self.primary.kill9()
