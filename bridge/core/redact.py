"""Redaction of secrets in URLs and messages, so no output ever shows a password."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["redact"]

# scheme://user:password@host -> scheme://user:***@host ; scheme://:password@host too.
# The password runs to the last '@' before the path, as URL parsers read it ("p@ss").
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):(?P<pw>[^\s/]+)@")
# ?password=...&  or  &secret=...  in query strings.
_QUERY_SECRET = re.compile(r"(?i)(?P<k>[?&](?:password|secret|token|aws_secret_access_key)=)[^&\s]+")

MASK = "***"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with URL passwords, secret query values and ``secrets`` masked."""
    out = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    out = _QUERY_SECRET.sub(lambda m: f"{m.group('k')}{MASK}", out)
    for secret in secrets:
        if secret:
            out = out.replace(secret, MASK)
    return out
