"""Checks on public-API input, run before anything is claimed or sent."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from bridge.errors import DelayTooLong, InvalidJob, InvalidPayload

__all__ = [
    "MAX_MS",
    "check_delay_ms",
    "check_group",
    "check_key",
    "check_name",
    "check_payload",
    "check_priority",
    "check_queue",
    "encode_payload",
    "flat_json",
    "shown",
    "utf8_encodable",
]

MAX_KEY_LENGTH = 512
MAX_NAME_LENGTH = 512
# The longest delay, interval or lock TTL (10 years). Redis keeps times as 64-bit
# milliseconds and the bridge's Lua scripts as doubles, and Python's timedelta
# and thread waits overflow far earlier than an unbounded int would.
MAX_MS = 10 * 365 * 86_400_000
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})
_CONTROL = re.compile("[\x00-\x1f\x7f]")
# json.dumps(data, allow_nan=False), without building an encoder on every call.
_encode_json = json.JSONEncoder(allow_nan=False).encode
# The same JSON for a dict of scalars, by the C encoder json.dumps itself uses, made once: with
# no nesting there is no cycle to look for, so it keeps no state and any thread may share it.
# (None where Python was built without the C accelerator; then the encoder above does it.)
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_encode_flat = (
    _c_make_encoder(None, None, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, False)
    if _c_make_encoder is not None
    else None
)


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages about any input.

    An int of more than 4,300 digits has no ``repr`` (Python refuses to convert it),
    and a megabyte of bytes would make a megabyte of message.
    """
    try:
        text = repr(value)
    except ValueError:
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def utf8_encodable(text: str) -> bool:
    """Whether ``text`` can be sent to Redis (lone surrogates cannot be encoded)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_name(name: object) -> str:
    """Return the task name, or raise InvalidJob if it is empty or not a string."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidJob("name", f"the task name must be a non-empty string, got {shown(name)}.")
    if len(name) > MAX_NAME_LENGTH or _CONTROL.search(name) or not utf8_encodable(name):
        raise InvalidJob(
            "name",
            f"the task name must be at most {MAX_NAME_LENGTH} characters of valid Unicode with no "
            "control characters, such as 'emails.send'.",
        )
    return name


def check_payload(data: object) -> dict[str, Any]:
    """Return ``data`` as the task's keyword arguments, or raise InvalidPayload.

    ``data`` must be a mapping with string keys that survives a JSON round trip
    unchanged: what the handler receives is exactly what the producer passed.
    """
    return encode_payload(data)[0]


def encode_payload(data: object) -> tuple[dict[str, Any], str]:
    """Like :func:`check_payload`, also returning ``data`` encoded as JSON."""
    if not isinstance(data, Mapping):
        raise InvalidPayload(
            "data",
            f"job data must be a JSON object (a dict), got {type(data).__name__}; "
            "wrap the value, e.g. {'value': ...}.",
        )
    for key in data:
        if not isinstance(key, str):
            raise InvalidPayload(
                "data", f"keys must be strings (they become keyword arguments), got {shown(key)}."
            )
        if not key.isidentifier():
            raise InvalidPayload(
                "data",
                f"key {shown(key)} is not a valid Python identifier, so it cannot be passed to the "
                "task as a keyword argument; rename it.",
            )
    try:
        encoded = _encode_json(data)
        # Flat data of JSON scalars comes back from JSON unchanged (floats print exactly, and
        # the encoder refuses NaN and infinities); only anything else needs the round trip.
        changed = not all(type(v) in _JSON_SCALARS for v in data.values()) and json.loads(encoded) != data
    except RecursionError:
        raise InvalidPayload(
            "data", "job data is nested too deeply to encode; flatten it (a few levels are plenty)."
        ) from None
    except (TypeError, ValueError) as exc:
        raise InvalidPayload(
            "data",
            f"job data must be JSON-serialisable ({exc}); "
            "send plain str/int/float/bool/None, lists and dicts.",
        ) from None
    if changed:
        raise InvalidPayload(
            "data",
            "job data changes in a JSON round trip (tuples, non-string dict keys or similar); "
            "send lists and string-keyed dicts so the handler receives exactly what was added.",
        )
    return dict(data), encoded


def flat_json(data: object) -> str | None:
    """``data`` as JSON when it is a dict of JSON scalars under identifier keys, the common job.

    Such data passes :func:`encode_payload` unchanged, so this is that check and encoding at a
    third of the cost. None for anything else (and for NaN or an infinity): ask
    :func:`encode_payload`, which accepts or names what is wrong.
    """
    if type(data) is not dict:
        return None
    for key, value in data.items():
        if type(key) is not str or type(value) not in _JSON_SCALARS or not key.isidentifier():
            return None
    try:
        return "".join(_encode_flat(data, 0)) if _encode_flat is not None else _encode_json(data)
    except ValueError:  # NaN or an infinity
        return None


def check_key(key: object) -> str | None:
    """Return a valid idempotency key (or None), or raise InvalidJob."""
    if key is None:
        return None
    if not isinstance(key, str) or not key or not utf8_encodable(key):
        raise InvalidJob("idempotency_key", f"must be a non-empty string of valid Unicode, got {shown(key)}.")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidJob(
            "idempotency_key",
            f"is {len(key)} characters; the limit is {MAX_KEY_LENGTH}. Hash long keys first.",
        )
    return key


def check_delay_ms(delay_ms: object) -> int:
    """Return the delay in whole milliseconds (0 for none), or raise InvalidJob."""
    if delay_ms is None:
        return 0
    if isinstance(delay_ms, bool) or not isinstance(delay_ms, (int, float)):
        raise InvalidJob("delay_ms", f"must be an integer number of milliseconds, got {shown(delay_ms)}.")
    if isinstance(delay_ms, float):
        if not math.isfinite(delay_ms) or not delay_ms.is_integer():
            raise InvalidJob("delay_ms", f"must be a whole number of milliseconds, got {shown(delay_ms)}.")
        delay_ms = int(delay_ms)
    if delay_ms < 0:
        raise InvalidJob("delay_ms", f"must be 0 or more, got {shown(delay_ms)}.")
    if delay_ms > MAX_MS:
        raise DelayTooLong("delay_ms", f"{shown(delay_ms)} ms is over the limit of {MAX_MS} ms (10 years).")
    return delay_ms


def check_priority(priority: object) -> int | None:
    """Return the priority (0-255 as Celery accepts), or raise InvalidJob."""
    if priority is None:
        return None
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 255:
        raise InvalidJob("priority", f"must be an integer from 0 to 255, got {shown(priority)}.")
    return priority


def check_queue(queue: object) -> str | None:
    """Return the queue name (or None for the task's route), or raise InvalidJob."""
    if queue is None:
        return None
    if not isinstance(queue, str) or not queue.strip() or not utf8_encodable(queue):
        raise InvalidJob("queue", f"must be a non-empty queue name of valid Unicode, got {shown(queue)}.")
    return queue


def check_group(group_id: object) -> str | None:
    """Return an SQS message group id (1-128 printable ASCII characters), or raise InvalidJob."""
    if group_id is None:
        return None
    if (
        not isinstance(group_id, str)
        or not 1 <= len(group_id) <= 128
        or not all(33 <= ord(c) <= 126 for c in group_id)
    ):
        raise InvalidJob("group_id", f"must be 1 to 128 printable ASCII characters, got {shown(group_id)}.")
    return group_id
