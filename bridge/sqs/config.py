"""Celery broker settings for Amazon SQS, from the bridge's settings."""

from __future__ import annotations

import importlib.util
import logging
from typing import Any
from urllib.parse import urlsplit

from bridge.errors import ConfigError
from bridge.settings import Settings

logger = logging.getLogger("bridge.celeryconfig")

# SQS long polling: a receive waits up to this long for a message, instead of
# polling an empty queue (each poll is a billed request).
WAIT_TIME_SEC = 20


def queue_name(url: str) -> str:
    """The queue's name: the last segment of its URL."""
    return url.rstrip("/").rsplit("/", 1)[-1]


def sqs_settings(settings: Settings) -> dict[str, Any]:
    """Broker settings for ``SQS_QUEUE_URL`` (a predefined queue: no ListQueues permission needed)."""
    if importlib.util.find_spec("pycurl") is None:  # kombu's async SQS consumer needs it
        raise ConfigError(
            "the SQS backend needs pycurl for kombu's SQS consumer: pip install 'celery-jobs-bridge[sqs]'"
        )
    url = settings.sqs_queue_url
    assert url is not None  # Settings refuses an SQS backend without SQS_QUEUE_URL
    name = queue_name(url)
    broker_url = "sqs://"
    options: dict[str, Any] = {
        "predefined_queues": {name: {"url": url}},
        "wait_time_seconds": WAIT_TIME_SEC,
        # With long polling an empty receive already waits at SQS; this is only how often a worker
        # whose slots are all busy checks again (kombu waits it after every full batch; 1 s capped
        # a 2-process worker at 2 jobs/s).
        "polling_interval": 0.1,
    }
    if settings.aws_region:
        options["region"] = settings.aws_region
    if settings.aws_endpoint_url_sqs:
        # kombu takes the endpoint from the broker URL's host; plain http for a local emulator.
        endpoint = urlsplit(settings.aws_endpoint_url_sqs)
        broker_url = f"sqs://{endpoint.hostname}" + (f":{endpoint.port}" if endpoint.port else "")
        options["is_secure"] = endpoint.scheme == "https"
    values: dict[str, Any] = {
        "broker_url": broker_url,
        "broker_transport_options": options,
        # Tasks route to the configured queue by default.
        "task_default_queue": name,
        # SQS keeps no results: they go to REDIS_URL when there is one.
        "result_backend": settings.redis_url,
    }
    if settings.sqs_fifo:
        # A FIFO group's order holds only if one message of a queue runs at a time.
        values["worker_concurrency"] = 1
        logger.info("bridge.celeryconfig: SQS_FIFO=true, so worker concurrency is 1 (prefetch 1)")
    elif settings.sqs_concurrency:
        values["worker_concurrency"] = settings.sqs_concurrency
    return values
