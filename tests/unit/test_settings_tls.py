"""REDIS_URL with TLS: verification is on unless the URL turns it off, and bad TLS options are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge import ConfigError, Settings


def test_rediss_without_cert_reqs_verifies_the_certificate() -> None:
    # kombu alone would fall back to unverified TLS for this URL.
    settings = Settings.from_env(environ={"REDIS_URL": "rediss://:pw@cache.example.com:6380/0"})
    assert settings.redis_url == "rediss://:pw@cache.example.com:6380/0?ssl_cert_reqs=required"


def test_rediss_keeps_the_users_tls_options(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    url = f"rediss://cache:6380/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    assert Settings(redis_url=url, queue_backend="redis").redis_url == url
    optional = "rediss://cache:6380/0?ssl_cert_reqs=none"
    assert Settings(redis_url=optional, queue_backend="redis").redis_url == optional


def test_plain_redis_url_is_left_alone() -> None:
    url = "redis://alice:pw@127.0.0.1:6379/0"
    assert Settings(redis_url=url, queue_backend="redis").redis_url == url


def test_unknown_cert_reqs_is_refused_naming_redis_url_without_the_password() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL") as info:
        Settings(redis_url="rediss://:S3cr3t@cache:6380/0?ssl_cert_reqs=maybe", queue_backend="redis")
    assert "ssl_cert_reqs='maybe'" in str(info.value)
    assert "S3cr3t" not in str(info.value)


def test_missing_ca_file_is_refused_before_any_connection(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match="ssl_ca_certs"):
        Settings(redis_url=f"rediss://cache:6380/0?ssl_ca_certs={missing}", queue_backend="redis")
