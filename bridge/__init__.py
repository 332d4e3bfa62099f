"""celery-jobs-bridge: a small jobs API for Celery apps on Redis and Amazon SQS.

Public names are re-exported here; everything else is private. Importing this
package imports neither redis nor boto3: backends load when a Bridge binds.
"""

from __future__ import annotations

from bridge.bridge import Bridge
from bridge.errors import (
    BackendError,
    BackendUnavailable,
    BridgeError,
    CancelNotSupported,
    ConfigError,
    DelayTooLong,
    InvalidInput,
    InvalidJob,
    InvalidPayload,
    InvalidSchedule,
    LockError,
    LockLost,
    LockNotAcquired,
)
from bridge.job import Job
from bridge.settings import Settings

__all__ = [
    "BackendError",
    "BackendUnavailable",
    "Bridge",
    "BridgeError",
    "CancelNotSupported",
    "ConfigError",
    "DelayTooLong",
    "InvalidInput",
    "InvalidJob",
    "InvalidPayload",
    "InvalidSchedule",
    "Job",
    "LockError",
    "LockLost",
    "LockNotAcquired",
    "Settings",
]

__version__ = "0.1.0"
