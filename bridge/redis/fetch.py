"""Reliable fetch: a Redis worker takes a job and records it as unacked in one step.

kombu's Redis transport pops a message with ``BRPOP`` and records it in its
``unacked`` hash afterwards, from the worker, in a second command. Between the
two the message exists only in the reply on the wire and in the worker's memory:
if the server stops, the connection drops, or the record fails because Redis
just went away, the message is gone. The restart tests lost up to one job per
worker per outage that way.

In each worker of a bridged app (not in producers), the bridge's own transport
(:mod:`bridge.redis.transport`, whose channel and QoS call this module) changes
how kombu's Redis channel fetches:

* **take**: one Lua script pops the first message in kombu's key order (queues
  in their fair cycle, priority sublists in priority order) and writes it to
  ``unacked`` and ``unacked_index`` exactly as kombu's ``QoS.append`` would,
  atomically. A message is therefore always either on its queue or in
  ``unacked``, where kombu's own sweep hands it out again after the visibility
  timeout if its worker never acks it (and ``jobs stats`` counts it).
* **wait**: when the queues are empty, the channel blocks on one key with
  ``BLMOVE key key RIGHT RIGHT`` (pop the tail and push it back where it was:
  nothing moves), which returns as soon as that list holds a message; then it
  takes. The key waited on is the plain key of the first queue the channel
  consumes. Every other list (priority sublists, other queues) is watched by the
  channel's doorbell (:mod:`bridge.redis.bell`), which unblocks the wait as soon as
  one is written to. Where the server refuses the doorbell, the key waited on is
  the one that last yielded a message, and the other lists are looked at after
  each wait of ``brpop_timeout`` (1 s).

Acks across an outage. An ack that cannot reach Redis, for a job that
succeeded, is owed: the worker sends it on its first fetch after reconnecting,
instead of the job being put back and run again. It removes the unacked record
only if it is still the one its own take wrote (same delivery tag, same score):
a record that the sweep already handed out and someone took again is left alone.
Celery also acks the jobs it cancels because the connection was lost, counting
on that ack to fail so the job comes back; kombu's pool can reach the restarted
server and drop such a job for good. On a channel Celery has closed, the bridge
therefore sends none of those acks: it owes them instead, as an ack for a job
that succeeded and as a restore (back to the head of its queue, as kombu does
when it closes a channel) for any other.

Acks ride with takes. In a worker (the consumer bootstep sets ``ride_acks``), an ack
sent from the event loop between fetches is not sent on its own: it waits for the
channel's next take, which removes it in the same script call, and the loop sends that
take at once (the ack freed a prefetch slot). Before the channel waits for a message or
closes, the acks still waiting are sent as kombu sends them; an ack whose take failed on
the way is owed, as above. While messages keep coming, each job then costs one round
trip (the take, carrying the previous job's ack), where kombu spends three (``BRPOP``,
the unacked record, the ack). Nothing else changes: kombu's
poller, credit pausing, health checks, acks, rejects and restores all work on
the same keys as before. Servers without ``BLMOVE`` (Redis < 6.2) or without
script permission fall back to kombu's ``BRPOP``, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from time import monotonic, time
from typing import Any

__all__ = [
    "TAKE_SCRIPT",
    "ack",
    "brpop_read",
    "brpop_start",
    "flush_acks",
    "forget",
    "held_through_close",
    "state_of",
    "taken_by_us",
    "unblock_wait",
]

logger = logging.getLogger("bridge.reliable_fetch")

# KEYS: the candidate lists in kombu's order, then unacked (hash) and unacked_index (zset).
# ARGV: the number of candidate lists, the worker's clock (kombu scores unacked with it), then
# the delivery tags of the acks that ride along (each removed as kombu's ack removes it).
# Returns {position, item, recorded}: recorded is 0 for an item that is not a kombu
# message (the worker rejects it; there is no delivery tag to record it under).
TAKE_SCRIPT = """
local n = tonumber(ARGV[1])
for j = 3, #ARGV do
  redis.call('ZREM', KEYS[n + 2], ARGV[j])
  redis.call('HDEL', KEYS[n + 1], ARGV[j])
end
for i = 1, n do
  local item = redis.call('RPOP', KEYS[i])
  if item then
    local ok, message = pcall(cjson.decode, item)
    if ok and type(message) == 'table' and type(message['properties']) == 'table' then
      local tag = message['properties']['delivery_tag']
      local info = message['properties']['delivery_info']
      if type(tag) == 'string' and type(info) == 'table'
          and info['exchange'] ~= nil and info['routing_key'] ~= nil then
        redis.call('ZADD', KEYS[n + 2], ARGV[2], tag)
        redis.call('HSET', KEYS[n + 1], tag, '[' .. item .. ',' .. cjson.encode(info['exchange'])
          .. ',' .. cjson.encode(info['routing_key']) .. ']')
        return {i, item, 1}
      end
    end
    return {i, item, 0}
  end
end
return false
"""
TAKE_SHA = hashlib.sha1(TAKE_SCRIPT.encode(), usedforsecurity=False).hexdigest()  # Redis names scripts so

# KEYS: unacked, unacked_index. ARGV: tag, score, tag, score, ...: the takes whose ack was owed.
SETTLE_SCRIPT = """
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[2], ARGV[i])
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return 0
"""


def _unsupported(exc: Exception) -> bool:
    """A reply meaning "this server cannot fetch reliably": fall back to BRPOP."""
    from redis.exceptions import NoPermissionError

    return isinstance(exc, NoPermissionError) or "unknown command" in str(exc)


def _no_script(exc: Exception) -> bool:
    from redis.exceptions import NoScriptError

    return isinstance(exc, NoScriptError)


@dataclass
class _Fetch:
    """One channel's fetch state (kombu's poller keeps one command in flight per channel)."""

    keys: list[str] = field(default_factory=list)
    sent: str = ""  # "take", "wait", "brpop" or "kombu" (kombu's own fetch): the pending reply
    # Take without waiting first: at the start (messages may already wait on any list, at any
    # priority) and while messages keep coming (the last take found one).
    hot: bool = True
    wait_key: str = ""
    brpop_only: bool = False
    score: str = ""  # the clock value sent with the pending take: the unacked score it writes
    # The fetch connection's CLIENT ID, for the doorbell's CLIENT UNBLOCK, and the socket it
    # was read on (a reconnect gives the same connection object a new id).
    client_id: int | None = None
    client_sock: Any = None
    # Acks waiting for this channel's next take, which carries them (see ack()): (tag, score).
    # Only the thread that fetches (the worker's event loop) defers an ack, so no lock is needed.
    pending_acks: list[tuple[str, str]] = field(default_factory=list)
    loop_thread: int | None = None  # the thread that sends the fetch commands
    riding: list[tuple[str, str]] = field(default_factory=list)  # the acks the pending take carries
    in_flight: bool = False  # a fetch command is sent and its reply not read yet


@dataclass
class _Taken:
    """The message being handed to kombu's callbacks right now (one consumer thread per worker)."""

    tag: str | None = None
    score: str = ""
    appended: bool = False


_taken = _Taken()
# What a worker owes Redis since its connection broke: delivery tag -> (the unacked score our
# take wrote, "ack" or "restore"). Process-wide: the channel that could not send it is closed
# by the time a new one can.
_owed: dict[str, tuple[str, str]] = {}


def state_of(channel: Any) -> _Fetch:
    state = channel.__dict__.get("_bridge_fetch")
    if state is None:
        state = channel.__dict__["_bridge_fetch"] = _Fetch()
    return state  # type: ignore[no-any-return]


def _prefixed(channel: Any, keys: list[str]) -> list[str]:
    prefix = channel.global_keyprefix or ""
    return [prefix + key for key in keys]


def _take_args(channel: Any, keys: list[str]) -> list[Any]:
    """EVALSHA's arguments for a take, with the acks waiting for it; the score it writes is kept."""
    state = state_of(channel)
    state.score = repr(time())
    if state.pending_acks:
        state.riding += state.pending_acks
        state.pending_acks = []
    lists = _prefixed(channel, [*keys, channel.unacked_key, channel.unacked_index_key])
    return [TAKE_SHA, len(lists), *lists, len(keys), state.score, *[tag for tag, _ in state.riding]]


def _waited_queue(channel: Any) -> str:
    """The queue whose plain key an idle channel blocks on: the first it consumes."""
    active = channel.active_queues
    ordered = [queue for queue in channel._active_queues if queue in active]
    return str(ordered[0] if ordered else sorted(active)[0])


def _wait_key(channel: Any, state: _Fetch) -> str:
    """The key to block on; opens the doorbell for every other key where the server allows it."""
    from bridge.redis import bell

    if len(state.keys) > 1:
        waited = _waited_queue(channel)
        prefixes = bell.bell_prefixes(
            waited, list(channel.active_queues), channel.sep, channel.global_keyprefix or ""
        )
        if bell.ring_for(channel, prefixes, unblock_wait) is not None:
            _learn_client_id(channel, state)
            return waited
    return state.wait_key if state.wait_key in state.keys else state.keys[0]


def _learn_client_id(channel: Any, state: _Fetch) -> None:
    """The fetch connection's id, read once per socket (the connection is idle here)."""
    connection = channel.client.connection
    if state.client_sock is connection._sock and state.client_id is not None:
        return
    connection.send_command("CLIENT", "ID")
    state.client_id = int(channel.client.parse_response(connection, "CLIENT"))
    state.client_sock = connection._sock


def unblock_wait(channel: Any) -> bool:
    """The doorbell rang: end the channel's ``BLMOVE`` now, so that it takes (True if it did)."""
    state = state_of(channel)
    if state.sent != "wait" or state.client_id is None or getattr(channel, "_closing", False):
        return False  # taking already: the take sees the new message
    with channel.conn_or_acquire() as client:
        return bool(client.execute_command("CLIENT", "UNBLOCK", state.client_id))


def brpop_start(self: Any, timeout: float | None = None) -> None:
    """Send this channel's next fetch command (kombu's poller reads the reply when it arrives)."""
    if timeout is None:
        # kombu 5.6 made it a transport option; before, kombu's own fetch waited 1 s.
        timeout = getattr(self, "brpop_timeout", 1)
    state = state_of(self)
    state.loop_thread = threading.get_ident()
    queues = self._queue_cycle.consume(len(self.active_queues))
    if not queues:
        flush_acks(self)
        return
    state.keys = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
    connection = self.client.connection
    if _owed:
        _settle_owed(self, connection)
    if state.brpop_only:
        _send(self, state, connection, "brpop", ["BRPOP", *_prefixed(self, state.keys), timeout or 0])
    elif state.hot:
        _send(self, state, connection, "take", ["EVALSHA", *_take_args(self, state.keys)])
    else:
        _send_wait(self, state, connection, timeout)


def _send(channel: Any, state: _Fetch, connection: Any, sent: str, command: list[Any]) -> None:
    """Send a fetch command and mark the channel in poll, as kombu's own ``_brpop_start`` does."""
    state.sent = sent
    state.in_flight = True
    channel._in_poll = connection
    channel._brpop_sent_at = monotonic()
    try:
        connection.send_command(*command)
    except channel.connection_errors as exc:
        state.in_flight = False
        _owe_riding(state, exc)
        raise


def _send_wait(channel: Any, state: _Fetch, connection: Any, timeout: float) -> None:
    """Block on one list until it holds a message (the doorbell unblocks it for the others)."""
    flush_acks(channel)  # an idle channel's acks do not wait for the next message
    waited = _prefixed(channel, [_wait_key(channel, state)])[0]
    _send(channel, state, connection, "wait", ["BLMOVE", waited, waited, "RIGHT", "RIGHT", timeout or 0])


def brpop_read(self: Any, **options: Any) -> bool:
    """Read the pending fetch reply; deliver the message it took, if any (kombu's contract).

    A take that finds nothing does not end the fetch, as a ``BRPOP`` would not have:
    the channel takes once more (a message may have come since the take was sent) and
    then waits on the same connection, still "in poll" for kombu, so that its poller
    finds the connection readable next only for a message or at the end of the wait,
    as with its own ``BRPOP`` (and a paused fetch resumes without a new command).
    """
    state = state_of(self)
    connection = self.client.connection
    wait_next = False
    try:
        try:
            reply = _read_reply(self, state, connection, **options)
            closing = getattr(self, "_closing", False)
            if state.sent == "wait" and closing:
                raise _empty()  # closing: read the pending reply, take nothing more
            if state.sent == "wait":
                # The waited list holds a message, or the wait timed out and the other
                # lists need a look: take now, on the same (idle) connection.
                reply = _take_now(self, connection, state.keys)
            elif state.sent == "take" and not reply and not closing:
                reply = _take_now(self, connection, state.keys)
                wait_next = not reply
            state.in_flight = False
        except self.connection_errors as exc:
            # Disconnect, so the next iteration reconnects (as kombu's own read does).
            state.in_flight = False
            connection.disconnect()
            _owe_riding(state, exc)
            raise
        except self.ResponseError as exc:
            _on_response_error(self, state, connection, exc)
            raise _empty() from None
        if state.sent == "brpop":
            return _deliver_popped(self, state, reply)
        state.hot = bool(reply)  # while messages keep coming, take without waiting first
        if not reply:  # with wait_next, the fetch goes on: the wait is sent below
            raise _empty()
        position, item, recorded = reply
        key = state.keys[int(position) - 1]
        state.wait_key = key
        dest = key.rsplit(self.sep, 1)[0]
        self._queue_cycle.rotate(dest)
        _deliver(self, dest, item, recorded=bool(recorded), score=state.score)
        return True
    finally:
        self._in_poll = None
        # The connection is idle now: kombu's moment for a re-auth (kombu 5.7 added it).
        reauth = getattr(self, "_flush_brpop_reauth", None)
        if reauth is not None:
            reauth()
        if wait_next:
            try:
                _send_wait(self, state, connection, getattr(self, "brpop_timeout", 1))
            except self.connection_errors:
                self._in_poll = None
                connection.disconnect()
                raise


def _read_reply(channel: Any, state: _Fetch, connection: Any, **options: Any) -> Any:
    """The pending command's reply; a take the server had no script for is taken again at once."""
    try:
        reply = channel.client.parse_response(connection, state.sent.upper(), **options)
        if state.sent == "take":
            state.riding = []  # the take ran, and its acks with it
        return reply
    except channel.ResponseError as exc:
        if state.sent != "take" or not _no_script(exc):
            raise
    # A new server, a restart or SCRIPT FLUSH: loading it and taking now keeps the fetch
    # going, as kombu's BRPOP would be, instead of a "no message" its caller must catch.
    return _take_now(channel, connection, state.keys)


def _take_now(channel: Any, connection: Any, keys: list[str]) -> Any:
    state = state_of(channel)
    connection.send_command("EVALSHA", *_take_args(channel, keys))
    try:
        reply = channel.client.parse_response(connection, "EVALSHA")
    except channel.ResponseError as exc:
        if not _no_script(exc):
            raise
        # NOSCRIPT ran nothing, its acks included: they ride again with the retry.
        _load_take_script(channel, connection)
        connection.send_command("EVALSHA", *_take_args(channel, keys))
        reply = channel.client.parse_response(connection, "EVALSHA")
    state.riding = []
    return reply


def _load_take_script(channel: Any, connection: Any) -> None:
    """After a server restart or ``SCRIPT FLUSH`` (a NOSCRIPT reply)."""
    connection.send_command("SCRIPT", "LOAD", TAKE_SCRIPT)
    channel.client.parse_response(connection, "SCRIPT")


def _on_response_error(channel: Any, state: _Fetch, connection: Any, exc: Exception) -> None:
    if _no_script(exc):  # a pending take: load the script, take next time
        _load_take_script(channel, connection)
        return
    if _unsupported(exc) and not state.brpop_only:
        state.brpop_only = True
        logger.warning(
            "bridge: this Redis cannot fetch reliably (%s); consuming with BRPOP, which can lose "
            "a message in flight when the connection drops. Use Redis >= 6.2 and allow "
            "EVALSHA, SCRIPT and BLMOVE for the worker's user.",
            str(exc).splitlines()[0][:200],
        )
        return
    raise exc


def _deliver_popped(channel: Any, state: _Fetch, reply: Any) -> bool:
    """kombu's own BRPOP path (the fallback): the message was popped, not recorded."""
    if not reply:
        raise _empty()
    dest, item = reply
    dest = (dest.decode() if isinstance(dest, bytes) else dest).rsplit(channel.sep, 1)[0]
    channel._queue_cycle.rotate(dest)
    _deliver(channel, dest, item, recorded=False)
    return True


def _deliver(channel: Any, dest: str, item: bytes | str, *, recorded: bool, score: str = "") -> None:
    """Hand one taken list item to kombu, as kombu's ``_brpop_read`` does after its pop."""
    try:
        text = item.decode() if isinstance(item, bytes) else item
        message = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        rejects = channel.rejects
        if rejects is None:  # not the app's worker consumer: kombu's behaviour
            raise
        shown = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
        why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "not JSON"
        rejects.on_unparsable(dest, shown, why)  # the take recorded nothing: cjson could not decode it
        return
    tag = message["properties"]["delivery_tag"] if recorded else None
    _taken.tag, _taken.score, _taken.appended = tag, score, False
    try:
        channel.connection._deliver(message, dest)
        appended = _taken.appended
    finally:
        # On an error the record stays: kombu's sweep hands the job out again.
        _taken.tag = None
    if recorded and not appended:
        # Rejected before any consumer saw it (not a message kombu can handle): it
        # must not come back from unacked after the visibility timeout.
        channel.qos._remove_from_indices(tag).execute()


def _owe(delivery_tag: str, score: str | None, action: str, why: str) -> None:
    """Owe an ack (the job succeeded) or a restore (it did not): sent on the next fetch, if still ours."""
    _owed[delivery_tag] = (str(score), action)
    if action == "ack":
        logger.warning(
            "bridge: could not ack %r (%s); the job succeeded, so the worker acks it when it "
            "reconnects, unless the visibility timeout passes first",
            delivery_tag, why,
        )  # fmt: skip
    else:
        logger.warning(
            "bridge: job %r did not finish before %s; the worker puts it back on its queue when "
            "it reconnects, unless the visibility timeout passes first",
            delivery_tag, why,
        )  # fmt: skip


def _ack_or_restore(qos: Any, delivery_tag: str) -> str:
    """What a job whose ack could not be sent is owed: an ack if it ran to success, else a restore."""
    from celery.worker.state import successful_requests  # Celery's own record of successes

    headers = getattr(qos._delivered.get(delivery_tag), "headers", None)
    return "ack" if isinstance(headers, dict) and headers.get("id") in successful_requests else "restore"


def _settle_owed(channel: Any, connection: Any) -> None:
    """Send what is owed since the connection broke (the connection is idle: nothing is in flight)."""
    owed = dict(_owed)
    acks = [value for tag, (score, action) in owed.items() if action == "ack" for value in (tag, score)]
    try:
        if acks:
            keys = _prefixed(channel, [channel.unacked_key, channel.unacked_index_key])
            connection.send_command("EVAL", SETTLE_SCRIPT, 2, *keys, *acks)
            channel.client.parse_response(connection, "EVAL")
        for tag, (score, action) in owed.items():
            if action == "restore":
                _restore_if_ours(channel, tag, score)
    except Exception as exc:  # still unreachable: the fetch itself fails next and kombu reconnects
        logger.debug("bridge: owed acks and restores not settled yet: %s", exc)
        return
    for tag in owed:
        _owed.pop(tag, None)
    logger.info("bridge: settled %d ack(s) and restore(s) owed since Redis was unreachable", len(owed))


def _restore_if_ours(channel: Any, tag: str, score: str) -> None:
    """kombu's ``restore_by_tag`` (back to the head of its queue), only if the record is our take's."""

    def restore(pipe: Any) -> None:
        ours = tag.encode() in pipe.zrange(channel.unacked_index_key, score, score, byscore=True)
        record = pipe.hget(channel.unacked_key, tag) if ours else None
        pipe.multi()
        if record:
            pipe.zrem(channel.unacked_index_key, tag).hdel(channel.unacked_key, tag)
            payload, exchange, routing_key = json.loads(record)
            channel._do_restore_message(payload, exchange, routing_key, pipe, leftmost=True)

    with channel.conn_or_acquire() as client:
        client.transaction(restore, channel.unacked_key)


def _empty() -> Exception:
    from queue import Empty

    return Empty()


def taken_by_us(qos: Any, delivery_tag: str) -> bool:
    """Whether kombu's ``QoS.append`` is for the message a take just recorded (then it is in memory only)."""
    if _taken.tag is None or delivery_tag != _taken.tag:
        return False
    _taken.appended = True
    qos.__dict__.setdefault("_bridge_scores", {})[delivery_tag] = _taken.score
    return True


def ack(qos: Any, delivery_tag: str, kombu_ack: Any) -> None:
    """``QoS.ack``: kombu's, except where Redis cannot be reached (the ack is owed, not lost)."""
    from kombu.transport.virtual import base as virtual

    score = qos.__dict__.get("_bridge_scores", {}).pop(delivery_tag, None)
    if getattr(qos.channel, "closed", False):
        # Celery closed the connection this job came on after losing it. It still acks
        # the jobs it then cancelled ("cannot be acknowledged after a connection loss,
        # terminating it instead"), counting on the ack to fail so that the job comes
        # back; but the old channel's pool reaches a restarted server, and the ack
        # would drop a job that never ran. A job that succeeded is acked; any other is
        # put back on its queue (both owed: sent on the next fetch, if still ours).
        if score is not None:
            _owe(delivery_tag, score, _ack_or_restore(qos, delivery_tag), "its connection was lost")
        virtual.QoS.ack(qos, delivery_tag)  # otherwise kombu's sweep hands it out again
        return
    if score is not None and _can_ride(qos.channel):
        # The ack rides with the channel's next take (the event loop sends one as soon as this
        # frees a prefetch slot, or sends it at once before the channel waits or closes):
        # one round trip per job instead of two. Only the thread that fetches defers.
        state_of(qos.channel).pending_acks.append((delivery_tag, score))
        virtual.QoS.ack(qos, delivery_tag)
        return
    try:
        kombu_ack(delivery_tag)
    except qos.channel.connection_errors as exc:
        if score is None:  # not our take: kombu's behaviour (Celery logs the failed ack)
            raise
        why = f"{type(exc).__name__}: Redis unreachable"
        _owe(delivery_tag, score, _ack_or_restore(qos, delivery_tag), why)
        virtual.QoS.ack(qos, delivery_tag)  # so closing the channel does not requeue it too


def _can_ride(channel: Any) -> bool:
    """Whether an ack can wait for the channel's next take: sent from the fetching thread, between
    fetches, on a channel that takes with the script and is neither closing nor idle."""
    state = state_of(channel)
    return (
        getattr(channel, "ride_acks", False)
        and state.loop_thread == threading.get_ident()
        and not state.in_flight
        and state.sent in ("take", "wait")
        and not state.brpop_only
        and not getattr(channel, "_closing", False)
        and bool(channel.__dict__.get("_acked_consumers"))
    )


def flush_acks(channel: Any) -> None:
    """Send the acks waiting for a take now, as kombu sends an ack (owed if Redis is unreachable)."""
    state = state_of(channel)
    if not state.pending_acks:
        return
    acks, state.pending_acks = state.pending_acks, []
    qos = channel.qos
    try:
        with qos.pipe_or_acquire() as pipe:
            for tag, _ in acks:
                qos._remove_from_indices(tag, pipe)
            pipe.execute()
    except channel.connection_errors as exc:
        for tag, score in acks:
            _owe(tag, score, "ack", f"{type(exc).__name__}: Redis unreachable")


def _owe_riding(state: _Fetch, exc: BaseException) -> None:
    """The take that carried acks failed on the way: whether they landed is unknown, so they are owed."""
    # The acks waiting for a take are owed too: the connection they would have gone on is gone.
    riding, state.riding, state.pending_acks = [*state.riding, *state.pending_acks], [], []
    for tag, score in riding:
        _owe(tag, score, "ack", f"{type(exc).__name__}: Redis unreachable")


def held_through_close(qos: Any) -> list[str]:
    """Delivered messages a closing channel must not put back: jobs of ours still running.

    Only when the channel closes because the connection dropped: at a worker's shutdown
    kombu's restore stands (Celery stops its jobs or waits for them first).
    """
    from celery.worker import state  # Celery's record of started jobs and of a shutdown

    if state.should_stop is not None or state.should_terminate is not None:
        return []
    scores = qos.__dict__.get("_bridge_scores", {})
    running = {getattr(request.message, "delivery_tag", None) for request in tuple(state.active_requests)}
    return [tag for tag in qos._delivered if tag in scores and tag in running]


def forget(qos: Any, delivery_tag: str) -> None:
    """``QoS.reject``: the take's score of a rejected message is no longer needed."""
    qos.__dict__.get("_bridge_scores", {}).pop(delivery_tag, None)
