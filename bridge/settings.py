"""Settings: one frozen dataclass, read from the environment once and validated there.

Nothing here runs at import time. ``Settings.from_env()`` reads the variables
named in DESIGN.md; every bad value raises :class:`~bridge.errors.ConfigError`
naming the variable, its value (secrets redacted) and what is accepted.

==========================  ===============================================
variable                    meaning
==========================  ===============================================
REDIS_URL                   Redis for the redis backend, guards, repeats, locks
REDIS_SENTINEL_MASTER       primary's name for a ``sentinel://`` REDIS_URL
                            (default: ``broker_transport_options["master_name"]``)
QUEUE_BACKEND               ``redis`` (alias ``bullmq``), ``sqs``, ``embedded``, ``broker``
JOBS_BACKEND                same values; defaults to QUEUE_BACKEND
JOBS_QUEUE_NAME             queue of scheduled one-off jobs (``app:jobs``)
AWS_REGION, SQS_QUEUE_URL   SQS backend
AWS_ENDPOINT_URL_SQS        endpoint override (a local SQS emulator)
SQS_FIFO                    ``true`` requires a ``.fifo`` queue URL
SQS_MESSAGE_GROUP_ID        default FIFO group
SQS_CONCURRENCY             worker concurrency for standard queues
SQS_HEARTBEAT_SEC           visibility heartbeat period (default 30; 0: off)
SQS_EXTEND_BY_SEC           visibility extension per beat (default 120)
LOCK_BACKEND                ``redis`` (needs REDIS_URL), ``embedded`` or ``dynamodb``
GUARD_STORE                 where an SQS or broker backend keeps guards and
                            tombstones: ``redis`` (REDIS_URL), ``embedded``,
                            ``dynamodb`` (SQS only; needs DYNAMODB_TABLE)
DYNAMODB_TABLE              the DynamoDB table of guards, locks, @idempotent
AWS_ENDPOINT_URL_DYNAMODB   endpoint override (a local DynamoDB emulator)
JOBS_SCHEDULER              who fires repeats: ``beat`` or ``eventbridge``
                            (SQS only; EventBridge Scheduler, no beat)
JOBS_SCHEDULER_ROLE_ARN     the IAM role EventBridge Scheduler sends with
JOBS_SCHEDULE_GROUP         the app's schedule group (``bridge-<app name>``)
AWS_ENDPOINT_URL_SCHEDULER  endpoint override (a local Scheduler emulator)
BRIDGE_HOME                 state folder of the embedded server (``./.bridge``)
JOBS_DEDUPE_TTL_SEC         lifetime of an idempotency guard (default 86400)
JOBS_DEDUPE_UNTIL           ``expiry`` (default) or ``finish``: release the
                            guard when the job has finished for good
JOBS_PROMOTE_INTERVAL_MS    how often workers move due delayed jobs (200)
JOBS_DLQ_MAX                dead letters kept per queue (10000)
JOBS_VISIBILITY_TIMEOUT_SEC Redis: seconds before an unacked job (its worker
                            died) is handed out again (3600)
JOBS_DASHBOARD_TOKEN        token the metrics server (and dashboard) require
                            of every request (unset: none)
==========================  ===============================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bridge.core.connect import SOCKET_SCHEMES, is_sentinel, sentinel_target
from bridge.core.redact import redact
from bridge.core.tls import is_unverified, warn_unverified, with_query
from bridge.errors import ConfigError

__all__ = ["BACKEND_ALIASES", "REDIS_SCHEMES", "Settings", "setting_name"]

#: Accepted backend names and what they resolve to (``bullmq`` is the seed's word for redis).
BACKEND_ALIASES: Mapping[str, str] = {
    "redis": "redis",
    "bullmq": "redis",
    "sqs": "sqs",
    "embedded": "embedded",
    "broker": "broker",
}
LOCK_BACKENDS = ("redis", "embedded", "dynamodb")
GUARD_STORES = ("redis", "embedded", "dynamodb")
JOBS_SCHEDULERS = ("beat", "eventbridge")
REDIS_SCHEMES = ("redis", "rediss", "unix", *SOCKET_SCHEMES, "sentinel")
DEDUPE_UNTIL = ("expiry", "finish")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Settings:
    """Validated bridge settings; build with :meth:`from_env` or directly in tests."""

    redis_url: str | None = None
    redis_sentinel_master: str | None = None
    queue_backend: str = "embedded"
    jobs_backend: str = "embedded"
    jobs_queue_name: str = "app:jobs"
    aws_region: str | None = None
    sqs_queue_url: str | None = None
    aws_endpoint_url_sqs: str | None = None
    sqs_fifo: bool = False
    sqs_message_group_id: str | None = None
    sqs_concurrency: int | None = None
    sqs_heartbeat_sec: int = 30
    sqs_extend_by_sec: int = 120
    sqs_delay_hops: bool = True
    lock_backend: str = "embedded"
    # None: REDIS_URL's Redis when there is one, else the embedded server (decided once, below).
    guard_store: str | None = None
    dynamodb_table: str | None = None
    aws_endpoint_url_dynamodb: str | None = None
    jobs_scheduler: str = "beat"
    jobs_scheduler_role_arn: str | None = None
    jobs_schedule_group: str | None = None
    aws_endpoint_url_scheduler: str | None = None
    bridge_home: Path = field(default_factory=lambda: Path(".bridge"))
    dedupe_ttl_sec: int = 86_400
    dedupe_until: str = "expiry"
    promote_interval_ms: int = 200
    dlq_max: int = 10_000
    visibility_timeout_sec: int = 3600
    dashboard_token: str | None = field(default=None, repr=False)  # a secret: never in a repr

    def __post_init__(self) -> None:
        _check_choice("QUEUE_BACKEND", self.queue_backend, BACKEND_ALIASES.values())
        _check_choice("JOBS_BACKEND", self.jobs_backend, BACKEND_ALIASES.values())
        _check_choice("LOCK_BACKEND", self.lock_backend, LOCK_BACKENDS)
        _check_choice("JOBS_DEDUPE_UNTIL", self.dedupe_until, DEDUPE_UNTIL)
        if self.guard_store is None:
            object.__setattr__(self, "guard_store", "redis" if self.redis_url else "embedded")
        _check_choice("GUARD_STORE", str(self.guard_store), GUARD_STORES)
        _check_choice("JOBS_SCHEDULER", self.jobs_scheduler, JOBS_SCHEDULERS)
        self._check_aws_stores()
        if self.redis_url is not None:
            _check_redis_url(self.redis_url)
            # Frozen, but normalised once here so every client (kombu, Celery's result
            # backend, redis-py, redbeat) sees the same verified-TLS URL.
            object.__setattr__(self, "redis_url", _verified_tls(self.redis_url))
            if is_sentinel(self.redis_url):
                sentinel_target(self.redis_url, self.redis_sentinel_master)  # names a primary, parses
        needs_redis = {self.queue_backend, self.jobs_backend, self.lock_backend, self.guard_store} & {"redis"}
        if needs_redis and not self.redis_url:
            raise ConfigError(
                "REDIS_URL is not set, but a backend is 'redis' "
                f"(QUEUE_BACKEND={self.queue_backend}, JOBS_BACKEND={self.jobs_backend}, "
                f"LOCK_BACKEND={self.lock_backend}, GUARD_STORE={self.guard_store}). "
                "Set REDIS_URL=redis://host:6379/0, or use the embedded backend."
            )
        if not self.jobs_queue_name.strip():
            raise ConfigError("JOBS_QUEUE_NAME is empty; set a queue name such as 'app:jobs'.")
        for name, value in (
            ("JOBS_DEDUPE_TTL_SEC", self.dedupe_ttl_sec),
            ("JOBS_PROMOTE_INTERVAL_MS", self.promote_interval_ms),
            ("JOBS_DLQ_MAX", self.dlq_max),
            ("JOBS_VISIBILITY_TIMEOUT_SEC", self.visibility_timeout_sec),
            ("SQS_EXTEND_BY_SEC", self.sqs_extend_by_sec),
        ):
            _check_positive(name, value)
        if (
            isinstance(self.sqs_heartbeat_sec, bool)
            or not isinstance(self.sqs_heartbeat_sec, int)
            or (self.sqs_heartbeat_sec < 0)
        ):
            raise ConfigError(
                f"SQS_HEARTBEAT_SEC={self.sqs_heartbeat_sec!r} must be 0 (off) or a positive integer."
            )
        if self.sqs_heartbeat_sec and self.sqs_heartbeat_sec >= self.sqs_extend_by_sec:
            raise ConfigError(
                f"SQS_HEARTBEAT_SEC={self.sqs_heartbeat_sec} must be shorter than SQS_EXTEND_BY_SEC="
                f"{self.sqs_extend_by_sec}, or a message becomes visible again before the next beat."
            )
        if self.sqs_concurrency is not None:
            _check_positive("SQS_CONCURRENCY", self.sqs_concurrency)
        # SQS caps one visibility change at 12 hours.
        if self.sqs_extend_by_sec > 43_200:
            raise ConfigError(
                f"SQS_EXTEND_BY_SEC={self.sqs_extend_by_sec} exceeds SQS's 43200 s (12 h) "
                "visibility cap; use a value from 1 to 43200."
            )
        if self.sqs_fifo and not (self.sqs_queue_url or "").endswith(".fifo"):
            raise ConfigError(
                f"SQS_FIFO=true needs a FIFO queue, but SQS_QUEUE_URL={self.sqs_queue_url!r} "
                "does not end in '.fifo'. Point SQS_QUEUE_URL at a .fifo queue or set SQS_FIFO=false."
            )
        if "sqs" in (self.queue_backend, self.jobs_backend) and not self.sqs_queue_url:
            raise ConfigError(
                "QUEUE_BACKEND/JOBS_BACKEND is 'sqs' but SQS_QUEUE_URL is not set; "
                "set it to the queue's URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)."
            )

    def _check_aws_stores(self) -> None:
        """DynamoDB and EventBridge Scheduler serve the SQS backend only, and need their names."""
        dynamo_users = [f"{name}=dynamodb" for name, value in
                        (("GUARD_STORE", self.guard_store), ("LOCK_BACKEND", self.lock_backend))
                        if value == "dynamodb"]  # fmt: skip
        if dynamo_users and not self.dynamodb_table:
            raise ConfigError(
                f"{' and '.join(dynamo_users)} needs DYNAMODB_TABLE, the table's name; create it with "
                "`jobs dynamodb ensure-table NAME`."
            )
        if self.guard_store == "dynamodb" and "broker" in (self.queue_backend, self.jobs_backend):
            raise ConfigError(
                "GUARD_STORE=dynamodb serves the SQS backend; QUEUE_BACKEND/JOBS_BACKEND=broker keeps "
                "delayed jobs in the guard store's Redis: use GUARD_STORE=redis (REDIS_URL) or embedded."
            )
        if self.jobs_scheduler == "eventbridge":
            if self.jobs_backend != "sqs":
                raise ConfigError(
                    f"JOBS_SCHEDULER=eventbridge sends repeats to an SQS queue, but JOBS_BACKEND="
                    f"{self.jobs_backend}; set JOBS_BACKEND=sqs, or JOBS_SCHEDULER=beat."
                )
            if self.sqs_fifo:
                raise ConfigError(
                    "JOBS_SCHEDULER=eventbridge sends to standard queues only for now (a FIFO target needs a "
                    "deduplication id per run); set SQS_FIFO=false, or JOBS_SCHEDULER=beat."
                )
            if not self.jobs_scheduler_role_arn or not self.jobs_scheduler_role_arn.startswith("arn:"):
                raise ConfigError(
                    f"JOBS_SCHEDULER=eventbridge needs JOBS_SCHEDULER_ROLE_ARN, the ARN of an IAM role "
                    f"EventBridge Scheduler may assume to send to the queue (got "
                    f"{self.jobs_scheduler_role_arn!r}); e.g. arn:aws:iam::123456789012:role/jobs-scheduler."
                )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        default_redis_url: str | None = None,
        default_backend: str | None = None,
        conf: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Build settings from ``environ`` and the app's Celery config, validating every value.

        Each variable can also be given in the Celery config under its setting name
        (:func:`setting_name`: ``JOBS_QUEUE_NAME`` is ``jobs_queue_name``, ``REDIS_URL``
        is ``bridge_redis_url``), so Django's ``CELERY_`` namespace works. The
        environment wins over the config.

        Args:
            environ: the variables to read; ``os.environ`` when None.
            default_redis_url: used when REDIS_URL is set nowhere. ``Bridge(app)`` passes
                the app's broker URL when that broker is Redis, so an existing Celery app
                keeps using the Redis it already has.
            default_backend: the backend when QUEUE_BACKEND is set nowhere. ``Bridge(app)``
                passes ``broker`` when the app's broker is another kombu broker than Redis
                and SQS (RabbitMQ, ...), so such an app keeps its broker.
            conf: the app's Celery config (``app.conf``); ``Bridge(app)`` passes it.

        Raises:
            ConfigError: a value is malformed or the combination is inconsistent; the
                message names the variable or setting it came from.
        """
        source = _Source(os.environ if environ is None else environ, conf or {})
        get, label = source.get, source.label
        redis_url = get("REDIS_URL") or default_redis_url
        if redis_url is not None and get("REDIS_URL") is not None:
            _check_redis_url(redis_url, label("REDIS_URL"))
        queue_backend = _backend(label("QUEUE_BACKEND"), get("QUEUE_BACKEND")) or default_backend
        if queue_backend is None:
            queue_backend = "redis" if redis_url else "embedded"
        jobs_backend = _backend(label("JOBS_BACKEND"), get("JOBS_BACKEND")) or queue_backend
        guard_store = (get("GUARD_STORE") or ("redis" if redis_url else "embedded")).lower()
        _check_choice(label("GUARD_STORE"), guard_store, GUARD_STORES)
        # With guards in DynamoDB and no Redis named, locks go there too: nothing else to run.
        default_lock = "redis" if redis_url else ("dynamodb" if guard_store == "dynamodb" else "embedded")
        lock_backend = (get("LOCK_BACKEND") or default_lock).lower()
        _check_choice(label("LOCK_BACKEND"), lock_backend, LOCK_BACKENDS)
        jobs_scheduler = (get("JOBS_SCHEDULER") or "beat").lower()
        _check_choice(label("JOBS_SCHEDULER"), jobs_scheduler, JOBS_SCHEDULERS)
        dedupe_until = (get("JOBS_DEDUPE_UNTIL") or "expiry").lower()
        _check_choice(label("JOBS_DEDUPE_UNTIL"), dedupe_until, DEDUPE_UNTIL)

        def positive(name: str, default: int) -> int:
            value = _int_or(label(name), get(name), default)
            _check_positive(label(name), value)
            return value

        # Celery's own place for a Sentinel broker's primary, unless the bridge's setting names one.
        transport = source.conf.get("broker_transport_options") or {}
        return cls(
            redis_url=redis_url,
            redis_sentinel_master=get("REDIS_SENTINEL_MASTER") or transport.get("master_name"),
            queue_backend=queue_backend,
            jobs_backend=jobs_backend,
            jobs_queue_name=get("JOBS_QUEUE_NAME") or "app:jobs",
            aws_region=get("AWS_REGION"),
            sqs_queue_url=get("SQS_QUEUE_URL"),
            aws_endpoint_url_sqs=get("AWS_ENDPOINT_URL_SQS"),
            sqs_fifo=_bool(label("SQS_FIFO"), get("SQS_FIFO")),
            sqs_message_group_id=get("SQS_MESSAGE_GROUP_ID"),
            sqs_concurrency=_int(label("SQS_CONCURRENCY"), get("SQS_CONCURRENCY")),
            sqs_heartbeat_sec=_int_or(label("SQS_HEARTBEAT_SEC"), get("SQS_HEARTBEAT_SEC"), 30),
            sqs_extend_by_sec=positive("SQS_EXTEND_BY_SEC", 120),
            sqs_delay_hops=_bool(label("SQS_DELAY_HOPS"), get("SQS_DELAY_HOPS") or "true"),
            lock_backend=lock_backend,
            guard_store=guard_store,
            dynamodb_table=get("DYNAMODB_TABLE"),
            aws_endpoint_url_dynamodb=get("AWS_ENDPOINT_URL_DYNAMODB"),
            jobs_scheduler=jobs_scheduler,
            jobs_scheduler_role_arn=get("JOBS_SCHEDULER_ROLE_ARN"),
            jobs_schedule_group=get("JOBS_SCHEDULE_GROUP"),
            aws_endpoint_url_scheduler=get("AWS_ENDPOINT_URL_SCHEDULER"),
            # Absolute now, so a worker started from another folder finds the same server.
            bridge_home=Path(get("BRIDGE_HOME") or ".bridge").expanduser().absolute(),
            dedupe_ttl_sec=positive("JOBS_DEDUPE_TTL_SEC", 86_400),
            dedupe_until=dedupe_until,
            promote_interval_ms=positive("JOBS_PROMOTE_INTERVAL_MS", 200),
            dlq_max=positive("JOBS_DLQ_MAX", 10_000),
            visibility_timeout_sec=positive("JOBS_VISIBILITY_TIMEOUT_SEC", 3600),
            dashboard_token=get("JOBS_DASHBOARD_TOKEN") or None,
        )


def setting_name(variable: str) -> str:
    """The Celery-config name of a variable: ``JOBS_*``/``BRIDGE_*`` in lower case, others ``bridge_*``."""
    lower = variable.lower()
    return lower if lower.startswith(("jobs_", "bridge_")) else f"bridge_{lower}"


class _Source:
    """Where each value comes from: the environment, else the app's Celery config."""

    def __init__(self, environ: Mapping[str, str], conf: Mapping[str, Any]) -> None:
        self.environ = environ
        self.conf = conf

    def _from_env(self, variable: str) -> str | None:
        value = self.environ.get(variable)
        return value.strip() if value is not None and value.strip() else None

    def get(self, variable: str) -> str | None:
        value = self._from_env(variable)
        if value is not None:
            return value
        raw = self.conf.get(setting_name(variable))
        if raw is None:
            return None
        if isinstance(raw, bool):
            return "true" if raw else "false"
        if isinstance(raw, str | int | os.PathLike):
            return str(raw).strip() or None
        raise ConfigError(
            f"{setting_name(variable)}={redact(repr(raw))} is not a string, number or boolean; "
            f"give it as the environment variable {variable} would."
        )

    def label(self, variable: str) -> str:
        """How an error names the value: the variable, or the setting when the config gave it."""
        if self._from_env(variable) is None and self.conf.get(setting_name(variable)) is not None:
            return setting_name(variable)
        return variable


def _backend(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    resolved = BACKEND_ALIASES.get(value.lower())
    if resolved is None:
        raise ConfigError(f"{name}={value!r} is not a known backend; accepted: {', '.join(BACKEND_ALIASES)}.")
    return resolved


def _bool(name: str, value: str | None) -> bool:
    if value is None or value.lower() in _FALSE:
        return False
    if value.lower() in _TRUE:
        return True
    raise ConfigError(f"{name}={value!r} is not a boolean; use true or false.")


def _int(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not an integer; use a whole number such as 30.") from None


def _int_or(name: str, value: str | None, default: int) -> int:
    parsed = _int(name, value)
    # An explicit 0 is validated (and refused), never swapped for the default.
    return default if parsed is None else parsed


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive integer.")


def _check_choice(name: str, value: str, accepted: object) -> None:
    choices = sorted(set(accepted))  # type: ignore[call-overload]
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not accepted; use one of: {', '.join(choices)}.")


def _check_redis_url(url: str, name: str = "REDIS_URL") -> None:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in REDIS_SCHEMES:
        raise ConfigError(
            f"{name}={redact(url)!r} is not a Redis URL; use redis://[user:password@]host:port/db, "
            "rediss:// for TLS, unix:///path/to/socket (or redis+socket://), or "
            "sentinel://host:26379;sentinel://host2:26379 with the primary's name in "
            "broker_transport_options={'master_name': ...}."
        )
    for part in filter(None, (piece.strip() for piece in url.split(";"))):
        try:
            urlsplit(part).port  # noqa: B018 - parses host and port, as every client will
        except ValueError:
            # Not the parser's message: it quotes the "port", which is often the password's tail.
            raise ConfigError(
                f"{name}={redact(url)!r} is malformed: what stands as its port is not a number. A "
                "password with '/', '@', ':' or '#' in it must be percent-encoded (%2F, %40, %3A, %23)."
            ) from None


# The values kombu, Celery's redis result backend and redis-py all accept.
_CERT_REQS = ("required", "optional", "none", "CERT_REQUIRED", "CERT_OPTIONAL", "CERT_NONE")


def _verified_tls(url: str) -> str:
    """``rediss://`` with no ``ssl_cert_reqs``: add ``ssl_cert_reqs=required``.

    Without it kombu falls back to TLS *without* certificate verification (with only a
    warning) and Celery's result backend refuses the URL; with it every client verifies
    the server against the system CAs, or ``ssl_ca_certs=/path/ca.pem`` when given.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "rediss":
        return url
    query = parse_qs(parts.query, keep_blank_values=True)
    reqs = query.get("ssl_cert_reqs", [None])[-1]
    if reqs is not None and reqs not in _CERT_REQS:
        raise ConfigError(
            f"REDIS_URL={redact(url)!r}: ssl_cert_reqs={reqs!r} is not accepted; use required "
            "(verify the server's certificate), optional or none."
        )
    ca_file = query.get("ssl_ca_certs", [None])[-1]
    if ca_file is not None and not Path(ca_file).is_file():
        raise ConfigError(
            f"REDIS_URL={redact(url)!r}: ssl_ca_certs={ca_file!r} is not a readable file; point it at "
            "the PEM file of the CA that signed the server's certificate."
        )
    if reqs is not None:
        if is_unverified(reqs):
            warn_unverified("REDIS_URL", url)
        return url
    return with_query(url, {"ssl_cert_reqs": "required"})
