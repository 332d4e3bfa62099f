"""celeryconfig.build(): the production Celery settings for a Redis broker."""

from __future__ import annotations

from celery import Celery

import celeryconfig
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


def test_build_for_sqs_uses_the_predefined_queue_and_the_endpoint() -> None:
    settings = Settings(
        queue_backend="sqs", jobs_backend="sqs", sqs_queue_url="http://127.0.0.1:4566/000000000000/orders.fifo",
        sqs_fifo=True, aws_region="eu-west-1", aws_endpoint_url_sqs="http://127.0.0.1:4566",
    )  # fmt: skip
    conf = celeryconfig.build(settings)
    assert conf["broker_url"] == "sqs://127.0.0.1:4566"
    options = conf["broker_transport_options"]
    assert options["predefined_queues"] == {"orders.fifo": {"url": settings.sqs_queue_url}}
    assert (options["region"], options["is_secure"], options["wait_time_seconds"]) == ("eu-west-1", False, 20)
    assert conf["task_default_queue"] == "orders.fifo"
    assert conf["worker_concurrency"] == 1  # FIFO: one at a time
    assert conf["accept_content"] == ["json"]


def test_a_celery_app_takes_the_built_settings() -> None:
    app = Celery("unit-config")
    app.config_from_object(celeryconfig.build(redis_settings()))
    assert app.conf.task_acks_late is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.broker_url == URL


def test_probing_the_module_for_private_names_builds_nothing(monkeypatch) -> None:
    """pytest asks every module it collects for ``_mock_name``: that must not start the embedded server."""

    def build() -> dict:
        raise AssertionError("celeryconfig was built")

    celeryconfig._settings.cache_clear()
    monkeypatch.setattr(celeryconfig, "build", build)
    assert getattr(celeryconfig, "_mock_name", None) is None
    assert not hasattr(celeryconfig, "__wrapped__")
    celeryconfig._settings.cache_clear()
