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

* the worker keeps running: on Redis, a list item that is not a kombu message is
  taken off the queue and rejected like the others (``bridge.redis.rejected``
  plugs that in; kombu already does this for its fanout messages, not for queue
  items);
* a task message whose body is not ``[args, kwargs, embed]`` is refused as an
  invalid task before Celery unpacks it (unpacking it stopped the worker);
* each rejected message is logged at WARNING with its id and the reason, and
  kept in the queue's dead letters (``jobs dlq list --queue Q``) with
  ``rejected: true``, ``attempts: 0`` and an empty ``data``: the body is never
  decoded, so a rejected message cannot be retried from there.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from celery import Celery, bootsteps, signals

__all__ = ["RejectedLetters", "RejectedMessages", "install_rejected"]

logger = logging.getLogger("bridge.rejected")


class RejectedLetters(Protocol):
    """Where a backend keeps rejected messages (Redis: its dead letters)."""

    def record_rejected(self, *, message_id: str, name: str, queue: str, kind: str, reason: str) -> None:
        """Keep one message that was rejected unrun."""


class RejectedMessages:
    """Logs a rejected message and keeps it in its queue's dead letters (when the backend has them)."""

    def __init__(self, app: Celery, letters: RejectedLetters | None) -> None:
        self.app = app
        self.conf: Any = app.conf
        self.letters = letters

    def record(self, *, message_id: str, name: str, queue: str, kind: str, reason: str) -> None:
        logger.warning(
            "bridge: rejected message %r (task %r) from queue %r without running it: %s: %r",
            message_id, name or "?", queue, kind, reason,
        )  # fmt: skip
        if self.letters is not None:
            self.letters.record_rejected(
                message_id=message_id, name=name, queue=queue, kind=kind, reason=reason
            )

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


def install_rejected(
    app: Celery,
    letters: RejectedLetters | None,
    on_consumer: Callable[[RejectedMessages], None] | None = None,
) -> RejectedMessages:
    """Make the messages ``app``'s workers reject visible (log line and dead letter).

    ``on_consumer`` runs once per worker consumer, before it connects: a backend's
    own way to reject what Celery's callbacks never see (see ``bridge.redis.rejected``).
    """
    rejected = RejectedMessages(app, letters)
    signals.task_rejected.connect(rejected.on_rejected, weak=False)
    signals.task_unknown.connect(rejected.on_unknown, weak=False)

    class BridgeRejectedMessages(bootsteps.Step):  # type: ignore[misc]  # celery is untyped
        """Consumer bootstep: runs before the consumer connects and creates its task consumer."""

        label = "bridge rejected messages"

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            parent.on_decode_error = rejected.decode_error_hook(parent.on_decode_error)
            if on_consumer is not None:
                on_consumer(rejected)

    class BridgeTaskShapes(bootsteps.StartStopStep):  # type: ignore[misc]  # celery is untyped
        """Consumer bootstep, after Celery builds its task strategies: each checks the body's shape first."""

        label = "bridge task message shapes"
        requires = ("celery.worker.consumer.tasks:Tasks",)

        def start(self, parent: Any) -> None:
            strategies = parent.strategies  # the dict Celery's task handler reads, this consumer's own
            for name, strategy in list(strategies.items()):
                if not getattr(strategy, "checks_shape", False):
                    strategies[name] = _checking_shape(strategy)

    app.steps["consumer"].add(BridgeRejectedMessages)
    app.steps["consumer"].add(BridgeTaskShapes)
    return rejected


def _checking_shape(strategy: Callable[..., Any]) -> Callable[..., Any]:
    """``strategy``, refusing a protocol 2 body that is not ``[args, kwargs, embed]``.

    Celery unpacks the body inside the strategy, outside the errors its consumer
    handles: a JSON object or ``[]`` there ended the worker with "Unrecoverable
    error", and every restarted worker died on the same message. Refused as
    ``InvalidTaskError``, the message goes Celery's own way for invalid tasks
    (logged, taken off the queue, ``task_rejected``) and the worker carries on.
    """
    from celery.exceptions import InvalidTaskError

    def checked(message: Any, payload: Any, *args: Any, **kwargs: Any) -> Any:
        if payload is None and isinstance(message.headers, dict) and "task" in message.headers:
            problem = _body_problem(message.decode())  # decoded once: Celery reads the same cache
            if problem is not None:
                raise InvalidTaskError(f"task message {message.headers.get('id')!r}: {problem}")
        return strategy(message, payload, *args, **kwargs)

    checked.checks_shape = True  # type: ignore[attr-defined]
    return checked


def _body_problem(body: Any) -> str | None:
    if not isinstance(body, list | tuple) or len(body) != 3:
        return f"body is a {type(body).__name__}, not [args, kwargs, embed]"
    args, kwargs, embed = body
    if not isinstance(args, list | tuple):
        return f"args is a {type(args).__name__}, not a list"
    if not isinstance(kwargs, dict):
        return f"kwargs is a {type(kwargs).__name__}, not an object"
    if not isinstance(embed, dict | None):
        return f"embed is a {type(embed).__name__}, not an object"
    return None
