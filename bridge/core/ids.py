"""Job ids: deterministic for an idempotency key, random (like Celery's) otherwise."""

from __future__ import annotations

import json
import uuid

__all__ = ["job_id_for"]

# A fixed namespace so that (name, key) maps to the same id in every process,
# on every machine, in every release.
_NAMESPACE = uuid.UUID("6f2c7a4e-3b1d-5e8f-9a0c-2d4b6e8f1a3c")


def job_id_for(name: str, idempotency_key: str | None) -> str:
    """Return the Celery task id for a job.

    The same ``(name, idempotency_key)`` always gives the same id (a UUID5), so a
    duplicate add from any process targets the same job; without a key the id is a
    random UUID4, as ``apply_async`` would make.
    """
    if idempotency_key is None:
        return str(uuid.uuid4())
    # A JSON pair is unambiguous: ("a", "b:c") and ("a:b", "c") never collide.
    return str(uuid.uuid5(_NAMESPACE, json.dumps([name, idempotency_key])))
