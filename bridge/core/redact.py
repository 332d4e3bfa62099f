"""Redaction of secrets in URLs and messages, and escaping for terminals, so no output ever shows
a password or lets untrusted text drive the terminal."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MASK", "printable", "redact"]

MASK = "***"

# A URL up to whitespace, a quote or a separator of URL lists (';' between sentinels, ',').
_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<rest>[^\s'\"<>;,]*)")
# A credential pair anywhere in a string: ?password=..., &token=..., aws_secret_access_key=...,
# "password": "...", PASSWORD: ... (any prefix ending in one of these words).
_CREDENTIAL = re.compile(
    r"(?i)(?P<k>\b[a-z0-9_.-]*(?:password|passwd|secret|token|secret_access_key|api_key|apikey)"
    r"[\"']?\s*[=:]\s*[\"']?)(?P<v>[^\s&\"',;}]+)"
)
# C0 and C1 control characters and DEL: escape sequences, bells, carriage returns.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _mask_userinfo(match: re.Match[str]) -> str:
    """``scheme://user:password@host`` -> ``scheme://user:***@host``.

    The password runs to the *last* ``@``, as URL parsers read it, so one with an
    unencoded ``@`` or ``/`` (``redis://:s3cr3t/x@host``) is masked whole.
    """
    rest = match.group("rest")
    at = rest.rfind("@")
    if at < 0:
        return match.group(0)
    user, colon, _ = rest[:at].partition(":")
    if not colon:
        return match.group(0)
    return f"{match.group('scheme')}{user}:{MASK}{rest[at:]}"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with URL passwords, credential pairs and ``secrets`` masked."""
    out = _URL.sub(_mask_userinfo, text)
    out = _CREDENTIAL.sub(lambda m: f"{m.group('k')}{MASK}", out)
    for secret in secrets:
        if secret:
            out = out.replace(secret, MASK)
    return out


def printable(text: object) -> str:
    """``text`` redacted, with every control character shown as ``\\xNN``: untrusted text
    (an exception message, a message id) can neither move the cursor, retitle the
    terminal, clear it nor plant a link."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", redact(str(text)))
