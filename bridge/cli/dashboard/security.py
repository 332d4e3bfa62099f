"""The dashboard's guard: sessions, the login, CSRF tokens, allowed hosts and security headers.

Every request passes one ASGI middleware (:class:`Guard`):

* **session**: a random id in an ``HttpOnly``, ``SameSite=Strict`` cookie, set on the first
  visit. It carries no rights of its own; the CSRF token and the login are bound to it.
* **CSRF**: every action is a POST whose form carries ``csrf``, an HMAC of the session id
  under a key made fresh when the server starts (:func:`csrf_token`). A page of another
  site can make a browser POST, but cannot read the token, so its POST is refused (403).
* **login** (with ``JOBS_DASHBOARD_TOKEN``): every request but the login page (and the
  dashboard's own static stylesheet and script) needs
  the login cookie, an HMAC of the session id under the token (so it is worthless without
  the token and dies with the session), or ``Authorization: Bearer <token>`` (for
  Prometheus scraping ``/metrics``). Pages redirect to the login; ``/metrics`` answers 401.
* **hosts**: bound to loopback, only requests addressed to a loopback name are served,
  so a web page that rebinds its own host name to 127.0.0.1 (DNS rebinding) cannot read
  the dashboard through the user's browser.
* **headers**: pages may not be framed, run only the dashboard's own scripts, and send no
  referrer elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote, urlsplit

from bridge.cli.metrics import bearer_matches

__all__ = ["AUTH_COOKIE", "SESSION_COOKIE", "Guard", "Security", "csrf_token", "logged_in"]

SESSION_COOKIE = "jobs_sid"
AUTH_COOKIE = "jobs_auth"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
# Content-Security-Policy: the dashboard's own script (htmx) and styles only; no framing.
_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]  # fmt: skip

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Security:
    """What the guard enforces, fixed when the server starts."""

    token: str | None
    read_only: bool
    loopback_only: bool
    host: str = "127.0.0.1"
    #: The key of CSRF tokens: new each start, so a token never outlives its server.
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)


def csrf_token(security: Security, sid: str) -> str:
    """The CSRF token of session ``sid``."""
    return hmac.new(security.secret, b"csrf:" + sid.encode(), hashlib.sha256).hexdigest()


def login_proof(token: str, sid: str) -> str:
    """The login cookie of session ``sid``: proof that the token was given in this session."""
    return hmac.new(token.encode(), b"login:" + sid.encode(), hashlib.sha256).hexdigest()


def logged_in(security: Security, cookies: dict[str, str], sid: str, authorization: str | None) -> bool:
    if security.token is None:
        return True
    if authorization and bearer_matches(authorization, security.token):
        return True
    proof = cookies.get(AUTH_COOKIE, "")
    return bool(proof) and hmac.compare_digest(proof, login_proof(security.token, sid))


def _cookies(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in headers:
        if name == b"cookie":
            with contextlib.suppress(Exception):  # a malformed cookie header counts as none
                jar.load(value.decode("latin-1"))
    return {key: morsel.value for key, morsel in jar.items()}


def _header(headers: list[tuple[bytes, bytes]], wanted: bytes) -> str | None:
    for name, value in headers:
        if name == wanted:
            return value.decode("latin-1")
    return None


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header.split("]")[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def session_cookie(name: str, value: str, max_age: int | None = None) -> bytes:
    age = f"; Max-Age={max_age}" if max_age is not None else ""
    return f"{name}={value}; Path=/; HttpOnly; SameSite=Strict{age}".encode()


class Guard:
    """ASGI middleware: session, login, host check and security headers (see the module's docstring)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], security: Security) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers") or [])
        security = self.security
        if security.loopback_only:
            host = _host_name(_header(headers, b"host") or "")
            if host not in (*LOOPBACK_NAMES, security.host):
                await _plain(send, 400, "this dashboard answers to its loopback address only")
                return
        cookies = _cookies(headers)
        sid = cookies.get(SESSION_COOKIE, "")
        fresh = not (sid and len(sid) == 43 and sid.replace("-", "").replace("_", "").isalnum())
        if fresh:
            sid = secrets.token_urlsafe(32)
        state = scope.setdefault("state", {})
        state["sid"] = sid
        state["csrf"] = csrf_token(security, sid)
        path = scope.get("path", "")
        authorized = logged_in(security, {} if fresh else cookies, sid, _header(headers, b"authorization"))
        state["logged_in"] = authorized

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                extra = list(_HEADERS)
                if fresh:
                    extra.append((b"set-cookie", session_cookie(SESSION_COOKIE, sid)))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        # The login page, and the dashboard's own stylesheet and script (public files that say
        # nothing about the app), are served before the login; everything else needs it.
        if not authorized and path != "/login" and not path.startswith("/static/"):
            if path == "/metrics":
                await _plain(send_with_headers, 401, "login required: Authorization: Bearer <token>",
                             [(b"www-authenticate", b'Bearer realm="bridge dashboard"')])  # fmt: skip
                return
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + (f"?{query}" if query else "")
            if _header(headers, b"hx-request") == "true":
                # The overview's refresh, after the login ended: a redirect would be followed by
                # the request itself, and the login form swapped into the counts. htmx sends the
                # whole page to the login instead, and back to the page it was on.
                shown = urlsplit(_header(headers, b"hx-current-url") or "/")
                target = (shown.path or "/") + (f"?{shown.query}" if shown.query else "")
                location = "/login?next=" + quote(target, safe="")
                await _plain(send_with_headers, 401, "login required", [(b"hx-redirect", location.encode())])
                return
            location = "/login?next=" + quote(target, safe="")
            await _redirect(send_with_headers, location)
            return
        await self.app(scope, receive, send_with_headers)


async def _plain(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    body = text.encode()
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()), *headers],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str) -> None:
    await send({
        "type": "http.response.start", "status": 303,
        "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": b""})
