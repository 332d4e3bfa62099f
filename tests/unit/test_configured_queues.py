"""The queues ``jobs stats``, ``jobs metrics-server`` and the dashboard count by default: those the
app's config names, in each shape Celery's ``task_routes`` takes."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery
from kombu import Queue

from bridge.stats import configured_queues


def queues(**conf: Any) -> list[str]:
    app = Celery("q", set_as_current=False)
    app.conf.update(conf)
    return configured_queues(app.conf, "app:jobs")


def test_an_app_that_names_nothing_uses_celery_and_the_jobs_queue() -> None:
    assert queues() == ["celery", "app:jobs"]


@pytest.mark.parametrize(
    "routes",
    [
        {"feeds.*": "feeds", "media.*": {"queue": "media"}},  # a queue name, a dict
        [{"feeds.*": "feeds"}, {"media.*": {"queue": Queue("media")}}],  # a list of maps, a Queue
        ({"feeds.*": {"queue": "feeds", "routing_key": "f"}}, "tests.routers.route", {"media.*": "media"}),
    ],
)
def test_routed_queues_are_counted_in_every_shape_celery_takes(routes: Any) -> None:
    assert queues(task_default_queue="default", task_routes=routes) == [
        "default",
        "app:jobs",
        "feeds",
        "media",
    ]


def test_task_queues_come_before_routes_and_each_queue_is_named_once() -> None:
    named = queues(
        task_queues=[Queue("celery"), Queue("media")],
        task_routes={"a": "media", "b": {"exchange": "x"}, "c": "feeds"},
    )
    assert named == ["celery", "app:jobs", "media", "feeds"]
