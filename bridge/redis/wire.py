"""Hand-packed commands on a redis-py connection, with their replies read off the socket.

Why this is ours: an add is one round trip, and redis-py's generic command path (encoding
and packing each argument, its retry wrapper, its pure-Python reply parser) costs about as
much Python as the rest of the add. The add sends commands it packed itself and reads
replies of two kinds only, a bulk string or an error, so a few lines do the reading.
redis-py still makes the connection (TLS, credentials, ``SELECT``, Sentinel) and sends.

The private redis-py name this module uses is ``Connection._sock``, the connected socket (in
every redis-py release since 2.x; the fetch and its doorbell, :mod:`bridge.redis.fetch` and
:mod:`bridge.redis.bell`, also read it, to notice a reconnect). On the add's own connection,
replies are read only by this module, so redis-py's own reply buffer stays empty; a
connection that may be out of step (a timeout, an unexpected reply) is dropped, never reused.
"""

from __future__ import annotations

import select
import socket
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["bulk", "is_stale", "send_and_read"]


def bulk(word: bytes) -> bytes:
    """One RESP bulk string (an argument of a packed command)."""
    return b"$%d\r\n%b\r\n" % (len(word), word)


def is_stale(connection: Any) -> bool:
    """Whether an idle connection has something to read: the server closed it, or it is out of step.

    redis-py's own check (``can_read``) does the same with a zero-timeout read that raises
    and catches an exception each time; a zero-timeout ``poll`` costs a tenth of it.
    """
    sock = connection._sock
    if sock is None:
        return False
    if not hasattr(select, "poll"):  # pragma: no cover - Windows
        return bool(connection.can_read())
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def send_and_read(connection: Any, commands: list[bytes]) -> list[bytes | ResponseError]:
    """Send packed commands in one write and read one reply each, in order.

    Each reply must be a bulk string or an error; an error reply is returned, not raised
    (the connection is in step, and the caller decides). On anything else the connection is
    dropped and the error raised: redis-py's ``ConnectionError`` or ``TimeoutError``.
    """
    if connection._sock is None:
        # connect(), not the connect-on-send inside send_packed_command: a Sentinel-managed
        # connection overrides connect() to ask the sentinels for the primary again.
        connection.connect()
    connection.send_packed_command([b"".join(commands)], check_health=False)
    try:
        reader = _Replies(connection._sock)
        replies = [reader.next() for _ in commands]
        if reader.buffer:
            raise RedisConnectionError("Redis sent more than one reply per command.")
        return replies
    except BaseException:
        connection.disconnect()
        raise


class _Replies:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def next(self) -> bytes | ResponseError:
        end = self._line_end()
        kind, head = self.buffer[:1], self.buffer[1:end]
        if kind == b"$":
            start = end + 2
            stop = start + int(head)
            while len(self.buffer) < stop + 2:
                self._fill()
            value = self.buffer[start:stop]
            self.buffer = self.buffer[stop + 2 :]
            return value
        if kind == b"-":
            self.buffer = self.buffer[end + 2 :]
            message = head.decode("utf-8", "replace")
            return NoScriptError(message) if message.startswith("NOSCRIPT") else ResponseError(message)
        raise RedisConnectionError(f"unexpected Redis reply {self.buffer[:40]!r}.")

    def _line_end(self) -> int:
        while (end := self.buffer.find(b"\r\n")) < 0:
            self._fill()
        return end

    def _fill(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:  # the socket's own timeout (redis-py's socket_timeout)
            raise RedisTimeoutError("Timeout reading from socket") from None
        except OSError as exc:
            raise RedisConnectionError(f"Error while reading from socket: {exc}") from None
        if not chunk:
            raise RedisConnectionError("Connection closed by server.")
        self.buffer += chunk
