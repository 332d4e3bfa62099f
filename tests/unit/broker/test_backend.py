"""QUEUE_BACKEND=broker: chosen for an app on another kombu broker, refused where another backend serves."""

from __future__ import annotations

import pytest
from celery import Celery

from bridge import Bridge, ConfigError
from bridge.broker.backend import BrokerBackend
from bridge.settings import Settings


def app_on(broker_url: str | None) -> Celery:
    app = Celery("unit", set_as_current=False)
    app.conf.broker_url = broker_url
    return app


@pytest.mark.parametrize(
    ("url", "use"),
    [
        ("redis://127.0.0.1:6379/0", "QUEUE_BACKEND=redis"),
        ("sqs://", "QUEUE_BACKEND=sqs"),
        (None, "set broker_url"),
    ],
)
def test_a_broker_the_bridge_serves_otherwise_is_refused(url: str | None, use: str) -> None:
    settings = Settings(queue_backend="broker", jobs_backend="broker")
    with pytest.raises(ConfigError, match="QUEUE_BACKEND=broker") as refused:
        BrokerBackend(app_on(url), settings)
    assert use in str(refused.value)


def test_settings_follow_the_apps_broker_unless_queue_backend_says_otherwise() -> None:
    assert Settings.from_env({}, default_backend="broker").queue_backend == "broker"
    assert Settings.from_env({}, default_backend="broker").lock_backend == "embedded"
    with_redis = Settings.from_env({"REDIS_URL": "redis://cache:6379/0"}, default_backend="broker")
    assert (with_redis.queue_backend, with_redis.lock_backend) == ("broker", "redis")
    chosen = Settings.from_env({"QUEUE_BACKEND": "embedded"}, default_backend="broker")
    assert chosen.queue_backend == "embedded"


def test_bridge_celeryconfig_cannot_build_a_config_for_another_broker() -> None:
    with pytest.raises(ConfigError, match="set broker_url in your Celery config"):
        BrokerBackend.broker_settings(Settings(queue_backend="broker", jobs_backend="broker"))


@pytest.mark.parametrize(
    ("url", "backend"),
    [("amqp://guest@rabbit//", "broker"), ("pyamqp://rabbit//", "broker"), ("redis://r:6379/0", "redis")],
)
def test_bridge_picks_the_backend_from_the_apps_broker(url: str, backend: str, monkeypatch, tmp_path) -> None:
    for name in ("QUEUE_BACKEND", "JOBS_BACKEND", "LOCK_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # the guard store; nothing connects to it here
    bridge = Bridge(app_on(url))  # connects to nothing until the first add
    assert bridge.settings.queue_backend == backend


def test_an_app_that_names_no_broker_gets_the_embedded_default_and_is_told_to_configure_it(
    monkeypatch, tmp_path
) -> None:
    for name in ("REDIS_URL", "QUEUE_BACKEND", "JOBS_BACKEND", "LOCK_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BRIDGE_HOME", str(tmp_path / "home"))
    with pytest.raises(ConfigError, match=r"bridge\.celeryconfig"):
        Bridge(app_on(None))
    assert not (tmp_path / "home").exists()  # refused before any server started
