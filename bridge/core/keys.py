"""The prefix of every key the bridge writes for an app, and keys built from user input.

Two apps may share one Redis database, told apart by kombu's ``global_keyprefix``
(``broker_transport_options``). kombu puts it before its own keys; the bridge puts
it before every key of its own too (guards, delays, repeats and beat's lock, locks,
idempotency records), so each app sees nothing of the other's.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["global_keyprefix", "pair_key"]


def global_keyprefix(conf: Any) -> str:
    """The app's ``broker_transport_options["global_keyprefix"]``, or ``""``."""
    options = conf.get("broker_transport_options") or {}
    return str(options.get("global_keyprefix") or "")


def pair_key(prefix: str, first: str, second: str) -> str:
    """``prefix`` + an unambiguous encoding of two user strings.

    A JSON pair: ``("a", "b:c")`` and ``("a:b", "c")`` give different keys, where
    ``a:b:c`` would give one for both.
    """
    return prefix + json.dumps([first, second], ensure_ascii=False, separators=(",", ":"))
