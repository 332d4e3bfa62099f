"""redis-py clients for every Redis URL form Celery accepts.

Celery and kombu take ``redis://``, ``rediss://`` (TLS), ``redis+socket:///path``
(a unix socket; redis-py spells it ``unix://``) and ``sentinel://host:port;sentinel://...``
with the monitored primary's name in ``broker_transport_options={"master_name": ...}``.
redis-py's ``Redis.from_url`` knows only the first two and ``unix://``: every client
of the bridge (the guard store, locks, the redis backend's scripts, celery-redbeat's
connection) is made here, so each URL form works everywhere.

A Sentinel client asks the sentinels for the current primary on every (re)connect,
so after a failover the next command reaches the promoted replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from bridge.core.redact import redact
from bridge.errors import ConfigError

if TYPE_CHECKING:
    import redis

__all__ = [
    "SOCKET_SCHEMES", "SentinelTarget", "is_sentinel", "redbeat_settings", "redis_client", "redis_py_url",
    "sentinel_target",
]  # fmt: skip

#: kombu's names for a Redis unix socket (``redis+socket:///run/redis.sock``).
SOCKET_SCHEMES = ("redis+socket", "socket")


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def is_sentinel(url: str) -> bool:
    return _scheme(url) == "sentinel"


def redis_py_url(url: str) -> str:
    """The URL in redis-py's spelling: kombu's ``redis+socket://`` is redis-py's ``unix://``."""
    if _scheme(url) in SOCKET_SCHEMES:
        return "unix://" + url.split("://", 1)[1]
    return url


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``sentinel://`` URL names: the sentinels, and the primary's credentials and db."""

    sentinels: list[tuple[str, int]]
    master_name: str
    db: int
    username: str | None
    password: str | None


def sentinel_target(url: str, master_name: str | None) -> SentinelTarget:
    """Parse kombu's ``sentinel://[user:password@]host:port[/db];sentinel://host:port...``.

    Raises:
        ConfigError: no master name, or a part that is not ``sentinel://host:port``.
    """
    if not master_name:
        raise ConfigError(
            f"the Redis URL {redact(url)!r} is a Sentinel URL but names no primary; set "
            "broker_transport_options={'master_name': 'mymaster'} (as Celery needs for a Sentinel "
            "broker) or REDIS_SENTINEL_MASTER=mymaster."
        )
    sentinels: list[tuple[str, int]] = []
    username = password = None
    db = 0
    for part in filter(None, (piece.strip() for piece in url.split(";"))):
        parsed = urlsplit(part)
        if parsed.scheme.lower() != "sentinel" or not parsed.hostname:
            raise ConfigError(
                f"{redact(url)!r}: {redact(part)!r} is not sentinel://host:port; separate sentinels "
                "with ';' as in sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379."
            )
        sentinels.append((parsed.hostname, parsed.port or 26379))
        username = username or (unquote(parsed.username) if parsed.username else None)
        password = password or (unquote(parsed.password) if parsed.password else None)
        path = parsed.path.strip("/") or parse_qs(parsed.query).get("db", [""])[-1]
        if path.isdigit():
            db = int(path)
    return SentinelTarget(sentinels, master_name, db, username or None, password)


def redis_client(url: str, *, sentinel_master: str | None = None, **options: Any) -> redis.Redis:
    """A client on the server ``url`` names; ``options`` go to redis-py (timeouts, ...).

    Raises:
        ConfigError: a Sentinel URL without a primary's name, or a malformed one.
    """
    # Imported here: Settings uses this module, and importing the bridge loads no client.
    import redis
    from redis.sentinel import Sentinel

    if is_sentinel(url):
        target = sentinel_target(url, sentinel_master)
        credentials = {"username": target.username, "password": target.password}
        # The sentinels themselves rarely need credentials; the primary does.
        # Typed as Any: redis-py's annotations of Sentinel differ between its releases (none
        # before 8.2, narrower keyword types since), and every release takes these arguments.
        sentinel: Any = Sentinel
        client: redis.Redis = sentinel(
            target.sentinels, socket_timeout=options.get("socket_timeout", 5)
        ).master_for(target.master_name, db=target.db, **credentials, **options)
        return client
    return redis.Redis.from_url(redis_py_url(url), **options)


def redbeat_settings(url: str, sentinel_master: str | None = None) -> dict[str, Any]:
    """celery-redbeat's ``redbeat_redis_url``/``redbeat_redis_options`` for the server ``url`` names.

    redbeat builds its own client from these: ``redis-sentinel://`` with the sentinels
    in its options for a Sentinel URL, redis-py's spelling otherwise.
    """
    # Explicit options, so redbeat does not hand the broker's transport options to redis-py.
    if not is_sentinel(url):
        options: dict[str, Any] = {"health_check_interval": 25}
        return {"redbeat_redis_url": redis_py_url(url), "redbeat_redis_options": options}
    target = sentinel_target(url, sentinel_master)
    options = {"sentinels": target.sentinels, "service_name": target.master_name, "db": target.db}
    if target.password:
        options["password"] = target.password
    if target.username:
        options["username"] = target.username
    return {"redbeat_redis_url": "redis-sentinel://", "redbeat_redis_options": options}
