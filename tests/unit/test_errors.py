"""The error tree, and that no message ever shows a password."""

from __future__ import annotations

import pytest

import bridge.errors as errors
from bridge.core.redact import redact
from bridge.errors import BackendUnavailable, BridgeError, backend_unavailable

ERROR_CLASSES = [obj for name in errors.__all__ if isinstance(obj := getattr(errors, name), type)]


def test_the_errors_named_in_the_design_are_public() -> None:
    names = {cls.__name__ for cls in ERROR_CLASSES}
    assert names >= {
        "BridgeError",
        "ConfigError",
        "InvalidPayload",
        "InvalidSchedule",
        "DelayTooLong",
        "CancelNotSupported",
        "LockNotAcquired",
        "LockLost",
        "BackendUnavailable",
    }


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_derives_from_bridge_error_and_has_a_docstring(cls: type) -> None:
    assert issubclass(cls, BridgeError)
    assert (cls.__doc__ or "").strip()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://user:pw@host:6379/0", "redis://user:***@host:6379/0"),
        ("redis://:pw@host", "redis://:***@host"),
        ("rediss://default:pw@cache.example.com:6380/2", "rediss://default:***@cache.example.com:6380/2"),
        ("amqp://guest:pw@rabbit//", "amqp://guest:***@rabbit//"),
        ("https://sqs.local/q?password=pw&region=eu", "https://sqs.local/q?password=***&region=eu"),
        ("connect to redis://u:pw@h failed", "connect to redis://u:***@h failed"),
    ],
)
def test_redact_masks_url_and_query_passwords(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_leaves_urls_without_a_password_alone() -> None:
    for url in ("redis://host:6379/0", "redis://user@host:6379/0", "unix:///tmp/r.sock"):
        assert redact(url) == url


def test_redact_masks_explicit_secrets() -> None:
    assert redact("token abc123 was refused", secrets=["abc123", ""]) == "token *** was refused"


def test_redact_masks_a_password_containing_at_sign() -> None:
    assert "ss@" not in redact("redis://user:p@ss@h:6379/0")


def test_backend_unavailable_redacts_url_and_names_the_exception() -> None:
    url = "redis://user:s3cret@db.internal:6379/0"
    exc = ConnectionError("AUTH failed for user with password s3cret")
    err = backend_unavailable("queue.add", exc, url)
    message = str(err)
    assert isinstance(err, BackendUnavailable)
    assert isinstance(err, BridgeError)
    assert "queue.add" in message
    assert "redis://user:***@db.internal:6379/0" in message
    assert "ConnectionError" in message
    assert "s3cret" not in message


def test_backend_unavailable_redacts_a_url_echoed_by_the_client() -> None:
    exc = OSError("Error connecting to redis://:hunter2@10.0.0.5:6379")
    message = str(backend_unavailable("lock.acquire", exc))
    assert "OSError" in message
    assert "hunter2" not in message
