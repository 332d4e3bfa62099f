"""Settings.from_env: defaults, backend choice and every refusal, from explicit dicts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bridge.errors import ConfigError
from bridge.settings import Settings

REDIS = "redis://127.0.0.1:6379/0"
FIFO_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs.fifo"
STD_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"


def test_empty_environment_gives_embedded_defaults() -> None:
    s = Settings.from_env(environ={})
    assert s.redis_url is None
    assert s.queue_backend == "embedded"
    assert s.jobs_backend == "embedded"
    assert s.lock_backend == "embedded"
    assert s.jobs_queue_name == "app:jobs"
    assert s.dedupe_ttl_sec == 86_400
    assert s.bridge_home == Path(".bridge").absolute()  # absolute, so every process finds one server


def test_redis_url_selects_redis_for_queue_jobs_and_lock() -> None:
    s = Settings.from_env(environ={"REDIS_URL": REDIS})
    assert (s.redis_url, s.queue_backend, s.jobs_backend, s.lock_backend) == (
        REDIS,
        "redis",
        "redis",
        "redis",
    )


@pytest.mark.parametrize("value", ["bullmq", "BullMQ", "REDIS", " Redis "])
def test_backend_names_are_aliased_and_case_insensitive(value: str) -> None:
    s = Settings.from_env(environ={"REDIS_URL": REDIS, "QUEUE_BACKEND": value})
    assert s.queue_backend == "redis"


def test_jobs_backend_follows_queue_backend_unless_set() -> None:
    env = {"REDIS_URL": REDIS, "QUEUE_BACKEND": "sqs", "SQS_QUEUE_URL": STD_URL}
    assert Settings.from_env(environ=env).jobs_backend == "sqs"
    assert Settings.from_env(environ={**env, "JOBS_BACKEND": "redis"}).jobs_backend == "redis"


def test_unknown_backend_names_the_variable_and_the_accepted_values() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(environ={"QUEUE_BACKEND": "rabbit"})
    message = str(info.value)
    assert "QUEUE_BACKEND" in message
    assert "rabbit" in message
    for accepted in ("redis", "bullmq", "sqs", "embedded"):
        assert accepted in message


@pytest.mark.parametrize(
    "env",
    [{"QUEUE_BACKEND": "redis"}, {"JOBS_BACKEND": "redis"}, {"LOCK_BACKEND": "redis"}],
)
def test_a_redis_backend_without_redis_url_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Settings.from_env(environ=env)


def test_non_redis_url_is_refused_without_showing_its_password() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(environ={"REDIS_URL": "http://user:s3cret@h/"})
    message = str(info.value)
    assert "REDIS_URL" in message
    assert "redis://" in message  # says what is accepted
    assert "s3cret" not in message


@pytest.mark.parametrize("scheme", ["redis", "rediss", "unix"])
def test_redis_url_schemes_accepted(scheme: str) -> None:
    url = f"{scheme}://localhost/0"
    # rediss:// gains certificate verification when the URL does not say (see test_tls_url.py).
    expected = f"{url}?ssl_cert_reqs=required" if scheme == "rediss" else url
    assert Settings.from_env(environ={"REDIS_URL": url}).redis_url == expected


@pytest.mark.parametrize("name", ["SQS_CONCURRENCY", "JOBS_DEDUPE_TTL_SEC", "SQS_HEARTBEAT_SEC"])
@pytest.mark.parametrize("value", ["ten", "1.5"])
def test_non_integer_numbers_are_refused_naming_variable_and_value(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(environ={name: value})
    assert name in str(info.value)
    assert value in str(info.value)


@pytest.mark.parametrize(
    "name",
    [
        "SQS_CONCURRENCY",
        "JOBS_DEDUPE_TTL_SEC",
        "SQS_HEARTBEAT_SEC",
        "SQS_EXTEND_BY_SEC",
        "JOBS_PROMOTE_INTERVAL_MS",
    ],
)
def test_negative_numbers_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env(environ={name: "-5"})


def test_zero_concurrency_is_refused() -> None:
    with pytest.raises(ConfigError, match="SQS_CONCURRENCY"):
        Settings.from_env(environ={"SQS_CONCURRENCY": "0"})


def test_a_zero_heartbeat_turns_it_off_and_a_slow_one_is_refused() -> None:
    assert Settings.from_env(environ={"SQS_HEARTBEAT_SEC": "0"}).sqs_heartbeat_sec == 0
    with pytest.raises(ConfigError, match="SQS_HEARTBEAT_SEC=60 must be shorter than SQS_EXTEND_BY_SEC"):
        Settings.from_env(environ={"SQS_HEARTBEAT_SEC": "60", "SQS_EXTEND_BY_SEC": "30"})


@pytest.mark.parametrize(
    "name",
    ["JOBS_DEDUPE_TTL_SEC", "SQS_EXTEND_BY_SEC", "JOBS_PROMOTE_INTERVAL_MS"],
)
def test_zero_is_refused_not_replaced_by_the_default(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env(environ={name: "0"})


def test_numbers_are_parsed() -> None:
    s = Settings.from_env(environ={"SQS_CONCURRENCY": " 8 ", "JOBS_DEDUPE_TTL_SEC": "60"})
    assert (s.sqs_concurrency, s.dedupe_ttl_sec) == (8, 60)


def test_sqs_fifo_needs_a_fifo_queue_url() -> None:
    with pytest.raises(ConfigError, match=r"SQS_FIFO.*\.fifo"):
        Settings.from_env(environ={"SQS_FIFO": "true", "SQS_QUEUE_URL": STD_URL})
    assert Settings.from_env(environ={"SQS_FIFO": "true", "SQS_QUEUE_URL": FIFO_URL}).sqs_fifo is True


def test_sqs_fifo_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="SQS_FIFO='maybe'"):
        Settings.from_env(environ={"SQS_FIFO": "maybe"})


def test_sqs_backend_needs_a_queue_url() -> None:
    with pytest.raises(ConfigError, match="SQS_QUEUE_URL"):
        Settings.from_env(environ={"QUEUE_BACKEND": "sqs"})


def test_extend_by_over_twelve_hours_is_refused() -> None:
    assert Settings.from_env(environ={"SQS_EXTEND_BY_SEC": "43200"}).sqs_extend_by_sec == 43_200
    with pytest.raises(ConfigError, match="SQS_EXTEND_BY_SEC=43201"):
        Settings.from_env(environ={"SQS_EXTEND_BY_SEC": "43201"})


def test_default_redis_url_is_used_only_when_redis_url_is_unset() -> None:
    fallback = "redis://broker:6379/1"
    s = Settings.from_env(environ={}, default_redis_url=fallback)
    assert (s.redis_url, s.queue_backend) == (fallback, "redis")
    s = Settings.from_env(environ={"REDIS_URL": REDIS}, default_redis_url=fallback)
    assert s.redis_url == REDIS


def test_settings_are_frozen() -> None:
    s = Settings.from_env(environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.queue_backend = "redis"  # type: ignore[misc]


def test_bridge_home_becomes_a_path() -> None:
    s = Settings.from_env(environ={"BRIDGE_HOME": "/var/lib/bridge"})
    assert s.bridge_home == Path("/var/lib/bridge")
    assert isinstance(s.bridge_home, Path)
