"""Settings.from_env: defaults, backend choice and every refusal, from explicit dicts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bridge.errors import ConfigError
from bridge.settings import Settings, setting_name

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


# -- settings from the app's Celery config (Django's CELERY_ namespace included) ----------------


@pytest.mark.parametrize(
    ("variable", "setting"),
    [
        ("JOBS_QUEUE_NAME", "jobs_queue_name"),
        ("JOBS_BACKEND", "jobs_backend"),
        ("JOBS_DEDUPE_TTL_SEC", "jobs_dedupe_ttl_sec"),
        ("BRIDGE_HOME", "bridge_home"),
        ("REDIS_URL", "bridge_redis_url"),
        ("QUEUE_BACKEND", "bridge_queue_backend"),
        ("SQS_QUEUE_URL", "bridge_sqs_queue_url"),
        ("LOCK_BACKEND", "bridge_lock_backend"),
    ],
)
def test_each_variable_has_a_celery_setting_name(variable: str, setting: str) -> None:
    assert setting_name(variable) == setting


def test_the_apps_config_gives_what_the_environment_does_not() -> None:
    conf = {
        "jobs_queue_name": "shop:jobs",
        "jobs_dedupe_ttl_sec": 60,
        "jobs_dedupe_until": "finish",
        "bridge_redis_url": "redis://cache:6379/2",
        "bridge_home": Path("/tmp/shop-bridge"),
        "bridge_sqs_delay_hops": False,
    }
    settings = Settings.from_env({}, conf=conf)
    assert settings.jobs_queue_name == "shop:jobs"
    assert settings.dedupe_ttl_sec == 60
    assert settings.dedupe_until == "finish"
    assert settings.redis_url == "redis://cache:6379/2"
    assert settings.queue_backend == "redis"  # a Redis URL from the config selects Redis, as REDIS_URL does
    assert settings.bridge_home == Path("/tmp/shop-bridge")
    assert settings.sqs_delay_hops is False


def test_the_environment_wins_over_the_apps_config() -> None:
    conf = {"jobs_queue_name": "from-conf", "bridge_redis_url": "redis://conf:6379/0", "jobs_dlq_max": 5}
    env = {"JOBS_QUEUE_NAME": "from-env", "REDIS_URL": "redis://env:6379/0"}
    settings = Settings.from_env(env, conf=conf)
    assert settings.jobs_queue_name == "from-env"
    assert settings.redis_url == "redis://env:6379/0"
    assert settings.dlq_max == 5


def test_the_apps_redis_url_setting_wins_over_its_broker() -> None:
    settings = Settings.from_env(
        {}, default_redis_url="redis://broker:6379/0", conf={"bridge_redis_url": "redis://x/1"}
    )
    assert settings.redis_url == "redis://x/1"


@pytest.mark.parametrize(
    ("conf", "named"),
    [
        ({"jobs_dlq_max": "many"}, "jobs_dlq_max='many' is not an integer"),
        ({"jobs_dlq_max": 0}, "jobs_dlq_max=0 must be a positive integer"),
        ({"bridge_queue_backend": "rabbit"}, "bridge_queue_backend='rabbit' is not a known backend"),
        ({"jobs_dedupe_until": "never"}, "jobs_dedupe_until='never' is not accepted"),
        ({"bridge_lock_backend": "zookeeper"}, "bridge_lock_backend='zookeeper' is not accepted"),
        ({"bridge_sqs_fifo": "maybe"}, "bridge_sqs_fifo='maybe' is not a boolean"),
        ({"bridge_redis_url": "http://:pw@host/"}, "bridge_redis_url='http://:***@host/' is not a Redis URL"),
        ({"jobs_queue_name": ["a", "b"]}, "jobs_queue_name=['a', 'b'] is not a string, number or boolean"),
    ],
)
def test_a_bad_value_in_the_config_names_the_setting(conf: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({}, conf=conf)
    assert named in str(refused.value)


def test_a_bad_value_in_the_environment_still_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="JOBS_DLQ_MAX='many' is not an integer"):
        Settings.from_env({"JOBS_DLQ_MAX": "many"}, conf={"jobs_dlq_max": 5})
