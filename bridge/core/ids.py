"""Job ids: deterministic for an idempotency key, random (like Celery's) otherwise."""

from __future__ import annotations

import hashlib
import json
import os
import uuid

__all__ = ["job_id_for", "keyed_id", "keyed_id_seed", "random_uuid"]

# A fixed namespace so that (name, key) maps to the same id in every process,
# on every machine, in every release.
_NAMESPACE = uuid.UUID("6f2c7a4e-3b1d-5e8f-9a0c-2d4b6e8f1a3c")
_json_string = json.encoder.encode_basestring_ascii


def job_id_for(name: str, idempotency_key: str | None) -> str:
    """Return the Celery task id for a job.

    The same ``(name, idempotency_key)`` always gives the same id (a UUID5), so a
    duplicate add from any process targets the same job; without a key the id is a
    random UUID4, as ``apply_async`` would make.
    """
    if idempotency_key is None:
        return random_uuid()
    return keyed_id(keyed_id_seed(name), idempotency_key)


def keyed_id_seed(name: str) -> bytes:
    """What every keyed id of task ``name`` starts from (kept by a caller that adds often)."""
    # The UUID5 of the JSON pair [name, key]: a JSON pair is unambiguous, ("a", "b:c") and
    # ("a:b", "c") never collide. Written as json.dumps writes it (ASCII, ", "), without its overhead.
    return _NAMESPACE.bytes + ("[" + _json_string(name) + ", ").encode()


def keyed_id(seed: bytes, idempotency_key: str) -> str:
    """``job_id_for(name, idempotency_key)`` from the name's :func:`keyed_id_seed`."""
    digest = hashlib.sha1(seed + (_json_string(idempotency_key) + "]").encode()).digest()  # noqa: S324 - RFC 4122 UUID5
    return _uuid_text(digest, 5)


def random_uuid() -> str:
    """``str(uuid.uuid4())``, the same 122 random bits, at a third of its cost (it is on every add's path)."""
    return _uuid_text(os.urandom(16), 4)


def _uuid_text(digest: bytes, version: int) -> str:
    # What uuid.UUID(bytes=digest[:16], version=version) would print, without building the object.
    raw = bytearray(digest[:16])
    raw[6] = (raw[6] & 0x0F) | (version << 4)
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
