"""The Redis commands Celery's own producer would run for a task, without running them.

Why this is ours: the dedupe claim and the enqueue must be one atomic Redis step
(a Lua script), so the bridge cannot let kombu write the message itself. It still
wants the message to be exactly what ``app.send_task`` writes: protocol 2 headers,
the app's task routes, priorities, queue declaration, ``before_task_publish``
hooks. So it runs Celery's real publish path on a channel of its own that collects the
final ``LPUSH``/``PEXPIRE``/``PUBLISH`` commands and stops there
(:mod:`bridge.redis.capture`); the Lua script then runs them.

Running that whole path costs more than the Redis round trip it replaces, so for
the common case (no ``before_task_publish`` receivers, not called from inside a
task, JSON, no compression, no expiry) the result is kept as a template per
``(task, queue, priority)`` and only the per-job fields are filled in: the id, the
body, ``kwargsrepr``, ``origin``, ``reply_to`` and the delivery tag. A test
compares both paths field by field.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from celery import Celery, signals
from celery.utils.saferepr import saferepr
from kombu.messaging import Producer
from kombu.transport.redis import PrefixedStrictRedis
from kombu.utils.json import dumps as kombu_dumps
from kombu.utils.json import loads as kombu_loads

from bridge.core.ids import random_uuid
from bridge.errors import BackendError, InvalidJob
from bridge.redis.capture import PUBLISH_COMMANDS, Captured

__all__ = ["PAYLOAD", "CeleryMessageBuilder", "Envelope", "Template"]

_PREFIXED = frozenset(PrefixedStrictRedis.PREFIXED_SIMPLE_COMMANDS)
_TEMPLATE_ID = "00000000-0000-4000-8000-000000000000"
PAYLOAD = object()  # where the message goes in a template's commands
_PLAIN = re.compile(r"[0-9a-zA-Z-]+")  # a JSON string body that needs no escaping
_SLOT = re.compile(r'"\\u0000bridge-slot:(\w+)\\u0000"')  # a slot as kombu's JSON writes it
_EMPTY_BODY_HEAD = "[[], {}"
# json.dumps(text) for a str, as kombu's JSON writes it (ASCII), without json.dumps's own overhead.
_json_string = json.encoder.encode_basestring_ascii


@dataclass(frozen=True)
class Envelope:
    """One job as Redis commands: what the Lua script runs to enqueue it."""

    job_id: str
    name: str
    queue: str
    commands: tuple[str, ...]  # flat (command, key, value) triples
    exchange: str
    routing_key: str
    kwargs: Mapping[str, Any]


def _slot(name: str) -> str:
    return f"\x00bridge-slot:{name}\x00"


def fast_kwargsrepr(kwargs: Mapping[str, Any], maxsize: int) -> str | None:
    """Celery's ``saferepr`` of a flat dict of JSON scalars, at a fraction of its cost.

    Returns None for anything else (nested values, or long enough to be truncated),
    so the caller falls back to ``saferepr``. It mirrors saferepr exactly, quirks
    included: strings are quoted with single quotes and only those are escaped.
    """
    parts = []
    for key, value in kwargs.items():
        kind = type(value)
        if kind is str:
            text = "'" + value.replace("'", "\\'") + "'"
        elif kind in (int, float, bool) or value is None:
            text = str(value)
        else:
            return None
        parts.append("'" + key.replace("'", "\\'") + "': " + text)
    out = "{" + ", ".join(parts) + "}"
    return out if len(out) <= maxsize // 2 else None


@dataclass(frozen=True)
class Template:
    # kombu's JSON of the message, split at the per-job slots: literal, slot name,
    # literal, slot name, ..., literal.
    payload_parts: tuple[str, ...]
    body_tail: str
    body_encoding: str | None
    commands: tuple[tuple[str, str, Any], ...]  # the payload's place holds PAYLOAD
    queue: str
    exchange: str
    routing_key: str


class CeleryMessageBuilder:
    """Builds the Redis commands for a task message on one kombu redis channel.

    One builder per thread: kombu channels are not thread-safe.
    """

    def __init__(self, app: Celery, channel: Any) -> None:
        self.app = app
        self.channel = channel
        self.prefix: str = getattr(channel, "global_keyprefix", "") or ""
        self._producer = Producer(channel, auto_declare=False)
        self._templates: dict[tuple[str, str | None, int | None], Template | None] = {}
        self._kwargsrepr_maxsize = app.amqp.kwargsrepr_maxsize
        # Celery 5.5 added the setting; before it saferepr's default (3) applied.
        self._repr_maxlevels = app.conf.get("task_repr_maxlevels", 3)
        self._origin_pid = -1
        self._origin = ""
        # app.thread_oid is per thread, and so is this builder.
        self._reply_to_json = json.dumps(app.thread_oid)

    def build(
        self,
        job_id: str,
        name: str,
        kwargs: dict[str, Any],
        queue: str | None,
        priority: int | None,
        data_json: str | None = None,
    ) -> Envelope:
        """Return the envelope for one job (the message Celery would write, as commands).

        ``data_json`` is ``kwargs`` already encoded as JSON, when the caller has it.
        """
        template = self._template(name, queue, priority) if self._template_applies() else None
        if template is not None:
            return self._from_template(template, job_id, name, kwargs, data_json)
        message, commands = self._capture(job_id, name, kwargs, queue, priority)
        info = message["properties"]["delivery_info"]
        return Envelope(
            job_id=job_id,
            name=name,
            queue=self._queue_of(commands, info),
            commands=self._flatten(commands),
            exchange=info["exchange"],
            routing_key=info["routing_key"],
            kwargs=kwargs,
        )

    # -- the full path: Celery's own publish, captured -------------------------

    def _capture(
        self, job_id: str, name: str, kwargs: dict[str, Any], queue: str | None, priority: int | None
    ) -> tuple[dict[str, Any], list[tuple[str, Any, Any]]]:
        options: dict[str, Any] = {}
        if queue is not None:
            options["queue"] = queue
        if priority is not None:
            options["priority"] = priority
        try:
            with self.channel.capture():  # every publish on this channel is captured, never sent
                self.app.send_task(
                    name, args=(), kwargs=kwargs, task_id=job_id, producer=self._producer, **options
                )
        except Captured as captured:
            message, commands = captured.message, captured.commands
        except KeyError as exc:
            # Celery raises KeyError for a queue name it does not know when
            # task_create_missing_queues is off.
            raise InvalidJob(
                "queue", f"Celery does not know queue {exc}; declare it in task_queues."
            ) from None
        else:  # pragma: no cover - only if kombu stops publishing through basic_publish
            raise BackendError(
                "kombu published a message the bridge did not capture; use kombu 5.3.7 to 5.7."
            )
        unknown = {c[0] for c in commands} - PUBLISH_COMMANDS
        if unknown or not commands:
            raise BackendError(f"unexpected Redis commands from kombu: {sorted(unknown)}")
        return message, commands

    def _flatten(self, commands: list[tuple[str, Any, Any]]) -> tuple[str, ...]:
        flat: list[str] = []
        for command, key, value in commands:
            if command.upper() in _PREFIXED:
                key = self.prefix + str(key)
            flat += [command, str(key), str(value)]
        return tuple(flat)

    def _queue_of(self, commands: list[tuple[str, Any, Any]], info: Mapping[str, Any]) -> str:
        for command, key, _ in commands:
            if command == "lpush":
                # kombu appends sep + step for non-zero priorities; the queue is the stem.
                return str(key).split(self.channel.sep, 1)[0]
        return str(info["exchange"] or info["routing_key"])

    # -- the fast path: a template of the captured message ---------------------

    def single_template(self, name: str) -> Template | None:
        """The template of ``name``'s messages on its own route, where one applies now."""
        return self._template(name, None, None) if self._template_applies() else None

    def _template_applies(self) -> bool:
        # Celery skips these per call too; with receivers (tracing headers) or a
        # parent task (root/parent ids) every message differs, so capture it whole.
        return not signals.before_task_publish.receivers and self.app.current_worker_task is None

    def _template(self, name: str, queue: str | None, priority: int | None) -> Template | None:
        key = (name, queue, priority)
        if key not in self._templates:
            self._templates[key] = self._make_template(name, queue, priority)
        return self._templates[key]

    def _make_template(self, name: str, queue: str | None, priority: int | None) -> Template | None:
        # Only called where the template applies (see build), so a None cached here
        # means this task's messages cannot be templated, not that the moment was wrong.
        message, commands = self._capture(_TEMPLATE_ID, name, {}, queue, priority)
        headers = message["headers"]
        props = message["properties"]
        body_encoding = props.get("body_encoding")
        body = message["body"]
        if body_encoding == "base64":
            try:
                body = base64.b64decode(body).decode("utf-8")
            except UnicodeDecodeError:  # a binary serializer (pickle, msgpack): capture each message
                return None
        elif body_encoding not in (None, "utf-8"):
            return None
        usable = (
            message.get("content-type") == "application/json"
            and "compression" not in headers
            and headers.get("eta") is None
            and headers.get("expires") is None
            and headers.get("root_id") == _TEMPLATE_ID
            and headers.get("parent_id") is None
            and isinstance(body, str)
            and body.startswith(_EMPTY_BODY_HEAD)
        )
        if not usable:
            return None
        payload = kombu_dumps(message)
        slotted = dict(message, body=_slot("body"))
        slotted["headers"] = dict(headers, id=_slot("id"), root_id=_slot("id"),
                                  kwargsrepr=_slot("kwargsrepr"), origin=_slot("origin"))  # fmt: skip
        slotted["properties"] = dict(props, correlation_id=_slot("id"), reply_to=_slot("reply_to"),
                                     delivery_tag=_slot("delivery_tag"))  # fmt: skip
        parts = tuple(_SLOT.split(kombu_dumps(slotted)))
        if len(parts) != 2 * 8 + 1:  # 8 slots (the id fills 3); any other count: a marker collided
            return None
        info = props["delivery_info"]
        return Template(
            payload_parts=parts,
            body_tail=body[len(_EMPTY_BODY_HEAD) :],
            body_encoding=body_encoding,
            commands=tuple(
                (
                    c,
                    self.prefix + str(k) if c.upper() in _PREFIXED else str(k),
                    PAYLOAD if v == payload else v,
                )
                for c, k, v in commands
            ),
            queue=self._queue_of(commands, info),
            exchange=info["exchange"],
            routing_key=info["routing_key"],
        )

    def _from_template(
        self, t: Template, job_id: str, name: str, kwargs: dict[str, Any], data_json: str | None
    ) -> Envelope:
        payload = self.payload(t, job_id, kwargs, data_json)
        flat: list[str] = []
        for command, key, value in t.commands:
            flat += [command, key, payload if value is PAYLOAD else str(value)]
        return Envelope(
            job_id=job_id,
            name=name,
            queue=t.queue,
            commands=tuple(flat),
            exchange=t.exchange,
            routing_key=t.routing_key,
            kwargs=kwargs,
        )

    def payload(self, t: Template, job_id: str, kwargs: Mapping[str, Any], data_json: str | None) -> str:
        """kombu's JSON of one job's message: the template with the job's fields filled in."""
        body = "[[], " + (data_json if data_json is not None else kombu_dumps(kwargs)) + t.body_tail
        if t.body_encoding == "base64":
            body_json = '"' + base64.b64encode(body.encode("utf-8")).decode("ascii") + '"'
        else:
            body_json = _json_string(body)
        kwargsrepr = fast_kwargsrepr(kwargs, self._kwargsrepr_maxsize)
        if kwargsrepr is None:
            kwargsrepr = saferepr(kwargs, self._kwargsrepr_maxsize, maxlevels=self._repr_maxlevels)
        # Each slot's value as JSON. Ids, delivery tags and base64 need no escaping.
        values = {
            "id": '"' + job_id + '"' if _PLAIN.fullmatch(job_id) else _json_string(job_id),
            "kwargsrepr": _json_string(kwargsrepr),
            "origin": self._origin_json(),
            "reply_to": self._reply_to_json,
            "delivery_tag": '"' + random_uuid() + '"',
            "body": body_json,
        }
        # The template is kombu's own JSON of the message, split at the per-job
        # slots; filling them in gives the same JSON without encoding it all again.
        pieces = list(t.payload_parts)
        for i in range(1, len(pieces), 2):
            pieces[i] = values[pieces[i]]
        return "".join(pieces)

    def _origin_json(self) -> str:
        # Celery's anon_nodename(): recomputed after a fork, as the pid changes.
        pid = os.getpid()
        if pid != self._origin_pid:
            self._origin_pid, self._origin = pid, json.dumps(f"gen{pid}@{socket.gethostname()}")
        return self._origin


def message_of(envelope: Envelope) -> dict[str, Any]:
    """Decode the kombu message an envelope pushes (for tests and the after-publish signal)."""
    for i in range(0, len(envelope.commands), 3):
        if envelope.commands[i] in ("lpush", "publish"):
            message: dict[str, Any] = kombu_loads(envelope.commands[i + 2])
            return copy.deepcopy(message)
    raise BackendError("envelope has no message")


def send_after_publish(envelope: Envelope) -> None:
    """Fire Celery's ``after_task_publish`` for a job that was really sent."""
    if not signals.after_task_publish.receivers:
        return
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    signals.after_task_publish.send(
        sender=envelope.name,
        body=((), dict(envelope.kwargs), embed),
        headers=message_of(envelope)["headers"],
        exchange=envelope.exchange,
        routing_key=envelope.routing_key,
    )
