"""The bridge's error tree: every error the library raises derives from BridgeError.

Messages say what was wrong and how to fix it. Client exceptions (redis-py,
botocore) never leak: :func:`backend_unavailable` wraps them at the boundary
where they are raised, with any secret in a URL redacted.
"""

from __future__ import annotations

from bridge.core.redact import redact

__all__ = [
    "BackendError",
    "BackendUnavailable",
    "BridgeError",
    "CancelNotSupported",
    "ConfigError",
    "DelayTooLong",
    "InvalidInput",
    "InvalidJob",
    "InvalidPayload",
    "InvalidSchedule",
    "LockError",
    "LockLost",
    "LockNotAcquired",
    "backend_unavailable",
    "is_permanent_connection_fault",
]


class BridgeError(Exception):
    """Root of every error raised by celery-jobs-bridge."""


class ConfigError(BridgeError):
    """A setting or environment variable is missing, malformed or inconsistent."""


class InvalidInput(BridgeError, ValueError):
    """An argument to the public API was refused before anything was sent."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class InvalidPayload(InvalidInput):
    """The job data is not a JSON object that survives a JSON round trip."""


class InvalidJob(InvalidInput):
    """A job option (name, idempotency key, delay, queue, priority) is invalid."""


class InvalidSchedule(InvalidInput):
    """A schedule (cron, every_ms, time zone, bounds) is invalid."""


class DelayTooLong(InvalidInput):
    """The delay exceeds what the backend can carry."""


class CancelNotSupported(BridgeError):
    """The backend cannot cancel this kind of job."""


class LockError(BridgeError):
    """Base for lock failures."""


class LockNotAcquired(LockError):
    """A non-blocking or timed lock acquire did not get the lock."""


class LockLost(LockError):
    """The lock expired or was taken by another holder before release."""


class BackendError(BridgeError):
    """The queue backend failed."""


class BackendUnavailable(BackendError):
    """The backend could not be reached or refused the operation."""


def backend_unavailable(
    what: str, exc: BaseException, url: str | None = None, *, an_add: bool = False
) -> BackendUnavailable:
    """Wrap a client exception into BackendUnavailable, secrets redacted.

    Args:
        what: what the bridge was doing, e.g. ``"queue.add"``.
        exc: the client exception (redis-py, botocore, ...).
        url: the server URL involved, if any; shown with its password redacted.
        an_add: the failed call added a job: the message says that retrying it with
            the same idempotency key is safe (a hint that would mislead elsewhere).
    """
    where = f" at {redact(url)}" if url else ""
    detail = redact(str(exc)).strip().rstrip(".")
    if url:
        # The client may echo the raw URL or its password back in its message.
        detail = redact(detail, secrets=_secrets_of(url))
    head = f"{what} failed{where}: {type(exc).__name__}: {detail}."
    if _cert_rejected(exc):
        # A wrong CA is a configuration fault: "is the server running?" would mislead.
        return BackendUnavailable(
            f"{head} The server's TLS certificate failed verification: check REDIS_URL's "
            "ssl_ca_certs=/path/ca.pem (the CA that signed the server's certificate) and its host name."
        )
    if _auth_rejected(exc):
        return BackendUnavailable(
            f"{head} The server refused the credentials: check the user name and password in REDIS_URL."
        )
    retry = "; retrying with the same idempotency_key is safe" if an_add else ""
    return BackendUnavailable(f"{head} Check that the server is running and the URL is right{retry}.")


def is_permanent_connection_fault(exc: BaseException) -> bool:
    """A refused password or an untrusted TLS certificate: reconnecting cannot help."""
    return _cert_rejected(exc) or _auth_rejected(exc)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _cert_rejected(exc: BaseException) -> bool:
    import ssl

    # redis-py re-raises ssl errors as its ConnectionError carrying only their text.
    return any(
        isinstance(e, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(e)
        for e in _chain(exc)
    )


_AUTH_REPLIES = ("WRONGPASS", "invalid username-password pair", "NOAUTH", "Authentication required")


def _auth_rejected(exc: BaseException) -> bool:
    return any(
        type(e).__name__ == "AuthenticationError" or any(r in str(e) for r in _AUTH_REPLIES)
        for e in _chain(exc)
    )


def _secrets_of(url: str) -> list[str]:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    return [s for s in (parts.password,) if s]
