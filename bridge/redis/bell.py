"""The doorbell: an idle worker hears at once of a message on any list it consumes.

An idle channel of the reliable fetch waits with ``BLMOVE key key`` on one list, the
first queue's plain key (:mod:`bridge.redis.fetch`). Redis has no blocking command
that watches several lists without popping from them, and a pop would leave the
message only in the reply on the wire, the loss the atomic take is there to close.
Without more, a message on any other list (that queue's priority sublists, the other
queues, such as ``app:jobs`` where repeats and scheduled jobs go) waited for the
``BLMOVE`` to time out: up to a second.

The doorbell is a second connection per channel that Redis tells about every write to
those lists: client-side caching's broadcast mode (``CLIENT TRACKING ON BCAST PREFIX
...``, Redis >= 6) sends an invalidation for each write to a key that starts with one
of the prefixes, to the connection itself (RESP3) or to its subscription to
``__redis__:invalidate`` (RESP2). When it rings, the bell unblocks the channel's
``BLMOVE`` (``CLIENT UNBLOCK``, from a pool connection), and the channel takes the
message on its own connection as it does after any wait: one fetch path, kombu's
credit and pausing untouched. Nothing is popped by the bell.

The prefixes are the other queues' names (their priority sublists start with them)
and the waited queue's name followed by kombu's separator. A key of another kind that
starts with a queue's name (``celery-task-meta-...`` for a second queue named
``celery``) rings the bell for nothing: one take that finds nothing.

A server that refuses tracking (Redis < 6, an ACL without ``CLIENT`` or
``SUBSCRIBE``) leaves the channel as it was: other lists are looked at after each
wait of ``brpop_timeout`` (1 s). The bell is registered in kombu's poller under a
type of its own (``BELL``); kombu reads it through ``_fd_to_chan`` and
``chan.handlers[type]``, the same private map it uses for ``BRPOP`` and ``LISTEN``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["Doorbell", "bell_prefixes", "close_bell", "ring_for"]

logger = logging.getLogger("bridge.reliable_fetch")

_INVALIDATE = "__redis__:invalidate"
_refused_logged = False


def bell_prefixes(waited_queue: str, queues: list[str], sep: str, keyprefix: str) -> tuple[str, ...]:
    """Key prefixes that cover every list of ``queues`` except ``waited_queue``'s plain key.

    Redis refuses prefixes that overlap in one ``CLIENT TRACKING`` call; the shorter one
    covers the longer, so only it is kept.
    """
    wanted = sorted({keyprefix + (queue + sep if queue == waited_queue else queue) for queue in queues})
    kept: list[str] = []
    for prefix in wanted:  # sorted: a prefix comes before every key it covers
        if not any(prefix.startswith(shorter) for shorter in kept):
            kept.append(prefix)
    return tuple(kept)


class _AlwaysConsume:
    """The poller asks ``chan.qos.can_consume()`` before reading: the bell is always read.

    Left unread while the worker has no credit, it would keep its socket readable and
    spin the poller; reading it only unblocks a wait, it takes nothing.
    """

    @staticmethod
    def can_consume() -> bool:
        return True


class Doorbell:
    """One channel's second connection, told of every write to the lists it does not wait on."""

    qos = _AlwaysConsume()

    def __init__(self, channel: Any, prefixes: tuple[str, ...], wake: Callable[[Any], bool]) -> None:
        self.channel = channel
        self.prefixes = prefixes
        self.wake = wake  # ends the channel's wait; True if there was one to end
        # From the channel's plain pool, not its asynchronous one: kombu's poller treats the
        # disconnect of an asynchronous connection as the loss of the broker connection and
        # stops polling (kombu 5.3), so closing a doorbell would stop the worker's fetch.
        self.connection: Any = channel.pool.make_connection()
        self.handlers = {"BELL": self.ring}
        self.closed = False

    def open(self) -> None:
        """Start tracking; a ``ResponseError`` means the server or the ACL refuses it."""
        connection = self.connection
        connection.connect()
        prefixes = [word for prefix in self.prefixes for word in ("PREFIX", prefix)]
        if str(getattr(connection, "protocol", 2)) == "3":  # invalidations come as pushes, inline
            connection.send_command("CLIENT", "TRACKING", "ON", "BCAST", *prefixes)
            connection.read_response()  # redis-py raises an error reply: the refusal
            return
        connection.send_command("CLIENT", "ID")
        own_id = connection.read_response()
        connection.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", own_id, "BCAST", *prefixes)
        connection.read_response()
        connection.send_command("SUBSCRIBE", _INVALIDATE)
        connection.read_response()

    def ring(self) -> None:
        """Read every invalidation waiting, then wake the channel's wait (kombu's poller calls it)."""
        if self.closed:
            return
        connection = self.connection
        try:
            connection.read_response(push_request=True)
            while connection.can_read(timeout=0):
                connection.read_response(push_request=True)
        except self.channel.connection_errors:
            connection.disconnect()
            raise  # as kombu's own reads do: the consumer reconnects
        self.wake(self.channel)

    def _poll_error(self, type_: str) -> None:
        self.ring()  # an error event: the read raises the connection error kombu handles

    def close(self) -> None:
        self.closed = True
        sock = self.connection._sock
        cycle = getattr(self.channel.connection, "cycle", None)
        if cycle is not None and sock is not None:
            cycle._chan_to_sock.pop((self, self, "BELL"), None)
            with contextlib.suppress(KeyError, ValueError, OSError, AttributeError):
                cycle.poller.unregister(sock)
        self.connection.disconnect()


def ring_for(channel: Any, prefixes: tuple[str, ...], wake: Callable[[Any], bool]) -> Doorbell | None:
    """The channel's doorbell for ``prefixes``, opened and in kombu's poller; None if refused."""
    global _refused_logged
    bell: Doorbell | None = channel.__dict__.get("_bridge_bell")
    if bell is not None and bell.prefixes == prefixes and not bell.closed:
        return bell
    if channel.__dict__.get("_bridge_bell_refused"):
        return None
    close_bell(channel)
    bell = Doorbell(channel, prefixes, wake)
    try:
        bell.open()
    except channel.ResponseError as exc:
        bell.close()
        channel.__dict__["_bridge_bell_refused"] = True
        if not _refused_logged:
            _refused_logged = True
            logger.warning(
                "bridge: this Redis refuses client tracking (%s); an idle worker notices a job on "
                "a priority or on a queue other than its first within 1 s instead of at once. "
                "Use Redis >= 6 and allow CLIENT and SUBSCRIBE for the worker's user.",
                str(exc).splitlines()[0][:200],
            )
        return None
    except BaseException:
        bell.close()
        raise
    channel.__dict__["_bridge_bell"] = bell
    # kombu's poller maps the socket to (bell, "BELL") and calls bell.handlers["BELL"].
    channel.connection.cycle._register(bell, bell, "BELL")
    return bell


def close_bell(channel: Any) -> None:
    bell = channel.__dict__.pop("_bridge_bell", None)
    if bell is not None:
        bell.close()
