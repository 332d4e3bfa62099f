"""The bridged app's own kombu Redis transport: kombu's, with the reliable fetch and its guards.

A subclass of kombu's Redis ``Transport`` (and of its ``Channel`` and ``QoS``),
selected for the bridged app only through Celery's ``broker_transport`` setting
(:func:`select_transport`). Every other kombu user in the process, another app, a
control client, a test's own publisher, keeps kombu's classes untouched.

What the subclasses change, each explained where it is written:

* **fetch** (:mod:`bridge.redis.fetch`): a job is taken and recorded as unacked
  in one script, and acks a lost connection could not send are owed, not lost; an
  idle channel's doorbell (:mod:`bridge.redis.bell`) wakes it for a job on any list;
* **closed channels** raise redis-py's ``ConnectionError`` instead of an
  ``AttributeError`` Celery treats as fatal (:meth:`BridgeChannelMixin._connparams`);
* **list items that are not kombu messages** are rejected, not fatal
  (:meth:`BridgeTransportMixin._deliver`, with :mod:`bridge.redis.rejected`).

kombu's private methods this module overrides, the one place the bridge does:
``Channel._brpop_start``/``_brpop_read`` (kombu's poller calls them to send and read
a fetch: the reliable fetch is a different pair of commands), ``Channel._connparams``
(every connection of a channel is made from it: the one place to refuse a closed
channel) and ``Transport._deliver`` (the only point between a decoded list item and
the consumer's callbacks). They are kombu's hooks for exactly this in its own
subclasses (``SentinelChannel`` overrides ``_get_pool``); tested by kombu's own Redis
suite (``peers/kombu_suite.py``).

``redis://``, ``rediss://`` and ``sentinel://`` URLs keep their form: Celery
passes ``broker_transport`` to kombu with the URL. kombu picks the transport of a
``redis+socket://`` URL from its ``redis+`` prefix and ignores the setting, so
for the bridged app that URL is spelled ``socket://`` (the same socket) with
:class:`SocketTransport`, which hands the unparsed URL to the channel, as kombu
does for ``redis+socket://``.
"""

from __future__ import annotations

import json
from typing import Any

from celery import Celery, bootsteps
from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import base as virtual

from bridge.redis import bell, fetch
from bridge.redis.rejected import envelope_problem
from bridge.worker.rejected import RejectedMessages

__all__ = [
    "SentinelTransport",
    "SocketTransport",
    "Transport",
    "install_transport",
    "select_transport",
    "use_rejects",
]

_MODULE = __name__


class BridgeQoS(kombu_redis.QoS):
    """kombu's QoS, aware of jobs the fetch already recorded as unacked."""

    def append(self, message: Any, delivery_tag: str) -> None:
        if fetch.taken_by_us(self, delivery_tag):
            # In memory only: the take recorded it in Redis, in the same step as the pop.
            virtual.QoS.append(self, message, delivery_tag)
            return
        super().append(message, delivery_tag)  # type: ignore[no-untyped-call]

    def ack(self, delivery_tag: str) -> None:
        fetch.ack(self, delivery_tag, super().ack)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        fetch.forget(self, delivery_tag)
        super().reject(delivery_tag, requeue=requeue)  # type: ignore[no-untyped-call]

    def restore_unacked(self, client: Any = None) -> Any:
        # kombu puts every delivered message back on its queue when the channel closes,
        # which Celery does when the connection drops. A job still running would then run a
        # second time as soon as a worker reconnects; the bridge keeps its record instead,
        # and its ack or restore is owed when it ends (``fetch.ack``). Messages reserved
        # but not started go back as with kombu.
        running = fetch.held_through_close(self)
        held = {tag: self._delivered.pop(tag) for tag in running}
        try:
            return super().restore_unacked(client)  # type: ignore[no-untyped-call]
        finally:
            self._delivered.update(held)  # their ack still finds the message (fetch.ack)

    def restore_visible(self, start: int = 0, num: int = 10, interval: int | None = None) -> Any:
        # kombu before 5.6 calls this every 10 s without an interval, and its default (10)
        # makes one sweep of ten calls: a dead worker's jobs came back after up to 100 s
        # whatever the visibility timeout. Then every call sweeps; later kombu passes the
        # throttle its transport options set (``unacked_restore_throttle``).
        if interval is None:
            interval = getattr(self.channel, "unacked_restore_throttle", 1)
        return super().restore_visible(start=start, num=num, interval=interval)  # type: ignore[no-untyped-call]


class BridgeChannelMixin:
    """What the bridge's channels add to kombu's (plain and Sentinel)."""

    QoS = BridgeQoS
    #: The app's rejected messages (set by its worker's consumer bootstep, :func:`use_rejects`).
    rejects: Any = None
    #: Whether an ack may wait for the channel's next take (:func:`bridge.redis.fetch.ack`): set by
    #: the worker's consumer bootstep, since a Celery worker's event loop fetches again at once.
    #: Any other consumer of these classes (kombu's own suite, a script) acks at once, as kombu does.
    ride_acks = False
    #: How long the lock of kombu's restore sweep outlives a worker killed while sweeping.
    #: kombu's 300 s kept a killed worker's jobs from coming back for five minutes, whatever
    #: the visibility timeout; a sweep takes milliseconds, and two that overlap restore each
    #: job once (each restore is a transaction on the unacked record). A transport option of
    #: the same name still wins.
    unacked_mutex_expire = 10

    # -- the fetch: the bridge's for consumers that ack, kombu's own for no_ack ones ------

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        tag = super().basic_consume(queue, *args, **kwargs)  # type: ignore[misc]
        if not kwargs.get("no_ack", args[0] if args else False):
            self.__dict__.setdefault("_acked_consumers", set()).add(tag)
        return tag

    def basic_cancel(self, consumer_tag: str) -> Any:
        self.__dict__.get("_acked_consumers", set()).discard(consumer_tag)
        return super().basic_cancel(consumer_tag)  # type: ignore[misc]

    def _brpop_start(self, timeout: float | None = None) -> None:
        if self.__dict__.get("_acked_consumers"):
            fetch.brpop_start(self, timeout)
            return
        # Only no_ack consumers: no unacked record to keep, so kombu's single BRPOP is
        # all there is to do, and it costs what it costs with kombu.
        fetch.state_of(self).sent = "kombu"
        super()._brpop_start(**({} if timeout is None else {"timeout": timeout}))  # type: ignore[misc]

    def _brpop_read(self, **options: Any) -> Any:
        if fetch.state_of(self).sent == "kombu":
            return super()._brpop_read(**options)  # type: ignore[misc]
        return fetch.brpop_read(self, **options)

    def close(self) -> None:
        bell.close_bell(self)  # the doorbell's connection is the channel's own, not the pool's
        fetch.flush_acks(self)  # before kombu's close puts back what is still unacked
        super().close()  # type: ignore[misc]

    def _connparams(self, asynchronous: bool = False) -> Any:
        # When the broker connection breaks, Celery closes it, which detaches the transport;
        # every later use of its channels (the close's restore, the ack of a job that
        # finishes after the break) then fails with an AttributeError Celery treats as fatal
        # ("Unrecoverable error": the worker exits). A connection error is what Celery and
        # kombu handle: the ack is owed and the consumer reconnects.
        if self.connection.client is None:  # type: ignore[attr-defined]
            from redis.exceptions import ConnectionError as RedisConnectionError

            raise RedisConnectionError("this channel's broker connection was closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]


class BridgeChannel(BridgeChannelMixin, kombu_redis.Channel):
    """kombu's Redis channel with the bridge's fetch."""


class BridgeSentinelChannel(BridgeChannelMixin, kombu_redis.SentinelChannel):
    """kombu's Sentinel channel with the bridge's fetch."""


class BridgeTransportMixin:
    """Rejects a list item that is not a kombu message before kombu hands it to the consumer."""

    Channel: Any

    def _deliver(self, message: Any, queue: str | None) -> Any:
        problem = envelope_problem(message)
        if problem is not None:
            rejects = self.Channel.rejects
            if rejects is None:  # not a worker of the app: kombu's behaviour
                return super()._deliver(message, queue)  # type: ignore[misc]
            rejects.on_unparsable(str(queue), json.dumps(message)[:2000], problem)
            return None
        return super()._deliver(message, queue)  # type: ignore[misc]


class Transport(BridgeTransportMixin, kombu_redis.Transport):
    """``broker_transport`` of a bridged app on ``redis://`` or ``rediss://``."""

    Channel = BridgeChannel


class SocketTransport(Transport):
    """``broker_transport`` of a bridged app on a unix socket (``socket:///path``)."""

    # The channel parses ``socket://`` itself, as it does for kombu's ``redis+socket://``.
    can_parse_url = True


class SentinelTransport(BridgeTransportMixin, kombu_redis.SentinelTransport):
    """``broker_transport`` of a bridged app on ``sentinel://``."""

    Channel = BridgeSentinelChannel


def select_transport(conf: Any) -> None:
    """Point ``conf`` (a bridged app's) at the bridge's transport for its Redis broker URL.

    An app that names its own ``broker_transport`` keeps it (and kombu's fetch).
    """
    url = str(conf.broker_url or "")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if conf.broker_transport or not scheme:
        return
    if scheme in ("redis", "rediss"):
        conf.broker_transport = f"{_MODULE}:Transport"
    elif scheme == "sentinel":
        conf.broker_transport = f"{_MODULE}:SentinelTransport"
    elif scheme in ("redis+socket", "socket"):
        conf.broker_url = "socket://" + url.split("://", 1)[1]
        conf.broker_transport = f"{_MODULE}:SocketTransport"


def use_rejects(rejected: RejectedMessages) -> None:
    """Record the list items the bridge's channels reject in ``rejected`` (one worker, one app)."""
    BridgeChannelMixin.rejects = rejected


def install_transport(app: Celery) -> None:
    """Give every worker of ``app`` the bridge's transport (producers and other kombu users keep kombu's)."""

    class BridgeTransport(bootsteps.Step):  # type: ignore[misc]  # celery is untyped
        """Consumer bootstep: selects the transport before the consumer's first connection."""

        label = "bridge transport"

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            select_transport(parent.app.conf)
            BridgeChannelMixin.ride_acks = True

    app.steps["consumer"].add(BridgeTransport)
