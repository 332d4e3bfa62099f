"""The queue an add without ``queue=`` goes to on RabbitMQ and SQS: Celery's own routing decides."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery
from kombu import Queue

from bridge.core.publish import routed_queue

# A task's own queue= (media.resize below) is deprecated for Celery 6.0 but still routes in 5.x.
pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.CDeprecationWarning")


def app_with(**conf: Any) -> Celery:
    app = Celery("routes", set_as_current=False)
    app.conf.update(conf)

    @app.task(name="media.resize", queue="media", shared=False)
    def resize() -> None: ...

    @app.task(name="feeds.fetch", shared=False)
    def fetch() -> None: ...

    app.finalize()  # as a producer's app is once it has sent a task: its tasks registered
    return app


def test_a_task_nothing_routes_goes_to_the_default_queue() -> None:
    assert routed_queue(app_with(), "feeds.fetch", {}) == "celery"
    assert routed_queue(app_with(task_default_queue="default"), "remote.only", {}) == "default"


def test_task_routes_decide_in_every_shape_and_a_routers_function_too() -> None:
    def by_data(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any) -> Any:
        return {"queue": "big"} if kwargs.get("size", 0) > 10 else None

    app = app_with(task_routes=[by_data, {"feeds.*": "feeds"}, {"reports.*": {"queue": Queue("reports")}}])
    assert routed_queue(app, "feeds.fetch", {}) == "feeds"
    assert routed_queue(app, "reports.daily", {}) == "reports"
    assert routed_queue(app, "feeds.fetch", {"size": 11}) == "big"  # routed on the job's data


def test_the_tasks_own_queue_option_counts_as_in_send_task() -> None:
    assert routed_queue(app_with(), "media.resize", {}) == "media"
    assert routed_queue(app_with(task_routes={"media.*": "elsewhere"}), "media.resize", {}) == "media"
