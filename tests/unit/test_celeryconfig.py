"""celeryconfig.build(): the production Celery settings for a Redis broker."""

from __future__ import annotations

import pytest
from celery import Celery

import celeryconfig
from bridge.errors import ConfigError
from bridge.settings import Settings

URL = "redis://127.0.0.1:6379/3"


def redis_settings() -> Settings:
    return Settings(redis_url=URL, queue_backend="redis", jobs_backend="redis", lock_backend="redis")


def test_build_gives_safe_json_late_ack_settings_for_redis() -> None:
    conf = celeryconfig.build(redis_settings())
    assert conf["broker_url"] == URL
    assert conf["accept_content"] == ["json"]
    assert conf["task_serializer"] == "json"
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["broker_transport_options"]["visibility_timeout"] > 0


def test_build_refuses_a_backend_without_a_broker() -> None:
    settings = Settings(queue_backend="sqs", jobs_backend="sqs", sqs_queue_url="https://sqs.example/1/q")
    with pytest.raises(ConfigError, match="QUEUE_BACKEND='sqs'"):
        celeryconfig.build(settings)


def test_a_celery_app_takes_the_built_settings() -> None:
    app = Celery("unit-config")
    app.config_from_object(celeryconfig.build(redis_settings()))
    assert app.conf.task_acks_late is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.broker_url == URL
