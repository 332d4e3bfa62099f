"""Messages a worker rejects without running them, made visible.

A message on a queue can be unusable: a body that does not decode, a content
type outside ``accept_content`` (a pickle message is never deserialised), JSON
that is not a Celery task message, a task name the worker does not know, or a
list item that is not a kombu message at all. Celery acks and drops the first
four with a log line (its consumer's ``on_decode_error``, ``on_invalid_task``,
``on_unknown_message``, ``on_unknown_task``); the last one stops the worker,
because kombu's Redis channel decodes list items inside its read loop and the
error escapes as "Unrecoverable error".

What the bridge adds, in each worker of the app:

* the worker keeps running: a list item that is not a kombu message is taken off
  the queue and rejected like the others (kombu already does this for its fanout
  messages, not for queue items);
* each rejected message is logged at WARNING with its id and the reason, and
  kept in the queue's dead letters (``jobs dlq list --queue Q``) with
  ``rejected: true``, ``attempts: 0`` and an empty ``data``: the body is never
  decoded, so a rejected message cannot be retried from there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery import Celery, bootsteps, signals

if TYPE_CHECKING:
    from bridge.deadletters import DeadLetters

__all__ = ["RejectedMessages", "install_rejected"]

logger = logging.getLogger("bridge.rejected")


class RejectedMessages:
    """Logs a rejected message and keeps it in its queue's dead letters (when the backend has them)."""

    def __init__(self, app: Celery, letters: DeadLetters | None) -> None:
        self.app = app
        self.conf: Any = app.conf
        self.letters = letters

    def record(self, *, message_id: str, name: str, queue: str, kind: str, reason: str) -> None:
        logger.warning(
            "bridge: rejected message %s (task %r) from queue %r without running it: %s: %s",
            message_id, name or "?", queue, kind, reason,
        )  # fmt: skip
        if self.letters is None:
            return
        from bridge.deadletters import DeadLetter

        letter = DeadLetter(
            id=message_id, name=name, queue=queue, data={}, exc_type=kind, exc_message=reason[:2000],
            traceback="", attempts=0, failed_at=time.time(), rejected=True,
        )  # fmt: skip
        self.letters.record(letter)

    def record_message(self, message: Any, kind: str, reason: str) -> None:
        """Record a kombu message the consumer rejected."""
        headers = message.headers if isinstance(message.headers, dict) else {}
        properties = message.properties if isinstance(message.properties, dict) else {}
        info = message.delivery_info if isinstance(message.delivery_info, dict) else {}
        self.record(
            message_id=str(headers.get("id") or properties.get("correlation_id") or message.delivery_tag),
            name=str(headers.get("task") or ""),
            queue=str(info.get("routing_key") or self.conf.task_default_queue),
            kind=kind,
            reason=reason,
        )

    # -- Celery's consumer callbacks ----------------------------------------------

    def on_rejected(
        self, sender: Any = None, message: Any = None, exc: BaseException | None = None, **_: Any
    ) -> None:
        if message is None or getattr(sender, "app", None) is not self.app:
            return
        if exc is None:
            kind, reason = "NotATaskMessage", "no task name in its headers or body; not a Celery task message"
        elif type(exc).__name__ == "ContentDisallowed":
            kind = "ContentDisallowed"
            reason = (
                f"content type {message.content_type!r} is not in accept_content "
                f"{list(self.conf.accept_content)}; its body was never deserialised"
            )
        else:
            kind, reason = type(exc).__name__, str(exc)
        self.record_message(message, kind, reason)

    def on_unknown(self, sender: Any = None, message: Any = None, name: str | None = None, **_: Any) -> None:
        if message is None or getattr(sender, "app", None) is not self.app:
            return
        self.record_message(message, "NotRegistered", f"no task named {name!r} is registered in this worker")

    def decode_error_hook(
        self, original: Callable[[Any, BaseException], Any]
    ) -> Callable[[Any, BaseException], Any]:
        """Wrap the consumer's ``on_decode_error`` (Celery sends no signal for it)."""

        def on_decode_error(message: Any, exc: BaseException) -> Any:
            try:
                self.record_message(
                    message, "DecodeError", f"body could not be decoded as {message.content_type!r}: {exc}"
                )
            except Exception as error:  # Celery's ack and log below must happen regardless
                logger.error("bridge: could not record an undecodable message: %s", error)
            return original(message, exc)

        return on_decode_error

    # -- list items that are not kombu messages -------------------------------------

    def on_unparsable(self, queue: str, item: str, reason: str) -> None:
        # Nothing in it can be trusted for an id: name it by its content.
        digest = hashlib.sha256(item.encode("utf-8", "replace")).hexdigest()[:16]
        self.record(
            message_id=f"unparsable-{digest}", name="", queue=queue, kind="MalformedMessage",
            reason=f"{reason}; the list item began {item[:120]!r}",
        )  # fmt: skip


def envelope_problem(message: Any) -> str | None:
    """Why a decoded list item is not a kombu message kombu and Celery can handle, or None."""
    if not isinstance(message, dict):
        return f"a JSON {type(message).__name__}, not a kombu message object"
    props = message.get("properties")
    if not isinstance(props, dict) or not isinstance(props.get("delivery_tag"), str):
        return "no properties.delivery_tag"
    info = props.get("delivery_info")
    # kombu's QoS indexes both keys of every message it delivers.
    if not isinstance(info, dict) or "exchange" not in info or "routing_key" not in info:
        return "no properties.delivery_info with exchange and routing_key"
    if not isinstance(message.get("headers"), dict | None):
        return "headers is not an object"
    for field in ("content-type", "content-encoding"):
        if not isinstance(message.get(field), str | None):
            return f"{field} is not a string"
    body, encoding = message.get("body"), props.get("body_encoding")
    if not isinstance(body, str | None) or encoding not in (None, "base64"):
        return "body is not a string in a known body_encoding"
    if body and encoding == "base64":
        try:
            base64.b64decode(body)
        except (binascii.Error, ValueError):
            return "body is not valid base64"
    return None


def _tolerate_bad_items(rejected: RejectedMessages) -> None:
    """Make this process's kombu Redis transport reject list items that are not kombu messages.

    Why this patches kombu: its transport hands a decoded list item to the
    consumer's callback chain without checking its shape, and the worker's only
    way in before that point is the class. Items that are not JSON at all are
    caught earlier, where the worker's fetch decodes them (``bridge.reliable_fetch``
    calls ``on_unparsable`` through ``Channel._bridge_rejects``). Only workers
    call this, once per process.
    """
    from kombu.transport import redis as kombu_redis

    channel_cls: Any = kombu_redis.Channel
    transport_cls: Any = kombu_redis.Transport
    if getattr(channel_cls, "_bridge_rejects", None) is not None:
        channel_cls._bridge_rejects = rejected
        return
    deliver = transport_cls._deliver

    def _deliver(self: Any, message: Any, queue: str | None) -> Any:
        problem = envelope_problem(message)
        if problem is not None:
            channel_cls._bridge_rejects.on_unparsable(str(queue), json.dumps(message)[:2000], problem)
            return None
        return deliver(self, message, queue)

    channel_cls._bridge_rejects = rejected
    transport_cls._deliver = _deliver


def install_rejected(app: Celery, letters: DeadLetters | None) -> RejectedMessages:
    """Make the messages ``app``'s workers reject visible (log line and dead letter)."""
    rejected = RejectedMessages(app, letters)
    signals.task_rejected.connect(rejected.on_rejected, weak=False)
    signals.task_unknown.connect(rejected.on_unknown, weak=False)

    class BridgeRejectedMessages(bootsteps.Step):  # type: ignore[misc]  # celery is untyped
        """Consumer bootstep: runs before the consumer connects and creates its task consumer."""

        label = "bridge rejected messages"

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            parent.on_decode_error = rejected.decode_error_hook(parent.on_decode_error)
            _tolerate_bad_items(rejected)

    app.steps["consumer"].add(BridgeRejectedMessages)
    return rejected
