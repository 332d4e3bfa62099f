"""List items on a Redis queue that are not kombu messages: rejected instead of stopping the worker.

kombu's Redis channel decodes a list item inside its read loop and hands it to
the consumer's callbacks without checking its shape, so an item that is not a
kombu message escapes as "Unrecoverable error" and the worker exits. In each
worker of a bridged app on Redis, such an item is taken off the queue and
recorded like every other rejected message (:mod:`bridge.worker.rejected`).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

__all__ = ["envelope_problem"]


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
