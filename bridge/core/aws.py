"""boto3 clients of the AWS services the bridge speaks (SQS, DynamoDB, EventBridge Scheduler)."""

from __future__ import annotations

import threading
from typing import Any

from bridge.core.redact import redact
from bridge.errors import ConfigError

__all__ = ["aws_client"]

# boto3's default session is not safe for threads making clients at once (boto3 issue #1592:
# KeyError 'credential_provider'); clients are made rarely, so they are made one at a time.
_CREATING = threading.Lock()


def aws_client(
    service: str, label: str, *, region: str | None, endpoint_url: str | None, config: Any = None
) -> Any:
    """A boto3 client of ``service``; no boto3, or no region, is a ConfigError naming the fix.

    ``label`` names the service in errors ("SQS", "DynamoDB"); ``endpoint_url`` points at an
    emulator; ``config`` is a ``botocore.config.Config`` (timeouts, retries).
    """
    try:
        import boto3
    except ImportError:
        raise ConfigError(f"{label} needs boto3: pip install 'celery-jobs-bridge[sqs]'") from None
    kwargs: dict[str, Any] = {}
    if region:
        kwargs["region_name"] = region
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    if config is not None:
        kwargs["config"] = config
    try:
        with _CREATING:
            return boto3.client(service, **kwargs)
    except Exception as exc:  # botocore raises NoRegionError and friends here
        raise ConfigError(
            f"{label} client: {redact(str(exc))}. Set AWS_REGION (and credentials in the AWS chain)."
        ) from None
