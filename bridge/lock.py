"""``bridge.lock``: a lock for singletons and critical sections, in Redis or DynamoDB.

Built on redis-py's ``Lock`` (a random token per holder; release and extend are
Lua scripts that check the token), so a holder whose lock expired can never
release or extend another holder's lock. With ``LOCK_BACKEND=dynamodb`` the same
methods are conditional writes (:mod:`bridge.dynamodb.lease`), which also hand
out a fencing token (:attr:`Lock.fence`). What the bridge adds: errors that say
what happened (``LockNotAcquired``, ``LockLost``), release in ``finally`` always,
use as a decorator, and ``auto_extend`` for sections of unknown length.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import redis
from redis.exceptions import LockError as RedisLockError
from redis.exceptions import LockNotOwnedError, RedisError

from bridge.core.lease import LeaseNotOwned
from bridge.core.validation import MAX_MS, shown, utf8_encodable
from bridge.errors import BackendUnavailable, InvalidInput, LockLost, LockNotAcquired, backend_unavailable

__all__ = ["Lock"]

logger = logging.getLogger("bridge.lock")
F = TypeVar("F", bound=Callable[..., Any])


class Lock:
    """A named lock; use ``with`` (or as a decorator). Each ``with`` acquires anew.

    Args:
        client: the store holding the lock: a redis-py client, or a
            :class:`~bridge.dynamodb.store.DynamoStore`.
        name: the lock's name; every process using the same name shares the lock.
        ttl_ms: how long the lock lives unless released or extended; a holder that
            dies frees it after this.
        blocking: wait for the lock (True) or fail at once with LockNotAcquired.
        timeout_ms: with blocking, give up after this long (None: wait forever).
        auto_extend: keep extending the lock while the block runs (every third of
            ``ttl_ms``), for critical sections of unknown length.
    """

    def __init__(
        self,
        client: redis.Redis | Any,
        name: str,
        *,
        ttl_ms: int,
        blocking: bool = True,
        timeout_ms: int | None = None,
        auto_extend: bool = False,
        key_prefix: str = "bridge:lock:",
    ) -> None:
        if not isinstance(name, str) or not name or not utf8_encodable(name):
            raise InvalidInput(
                "name", f"a lock needs a non-empty name of valid Unicode text, got {shown(name)}."
            )
        if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or not 0 < ttl_ms <= MAX_MS:
            raise InvalidInput(
                "ttl_ms",
                f"must be a positive integer of milliseconds up to {MAX_MS} (10 years), got {shown(ttl_ms)}.",
            )
        if timeout_ms is not None and (
            isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or not 0 <= timeout_ms <= MAX_MS
        ):
            raise InvalidInput(
                "timeout_ms",
                f"must be None or milliseconds from 0 to {MAX_MS} (10 years), got {shown(timeout_ms)}.",
            )
        # A string such as "false" would read as True and block: only real booleans.
        for flag, value in (("blocking", blocking), ("auto_extend", auto_extend)):
            if not isinstance(value, bool):
                raise InvalidInput(flag, f"must be True or False, got {shown(value)}.")
        self.client = client
        self.name = name
        self.ttl_ms = ttl_ms
        self.blocking = blocking
        self.timeout_ms = timeout_ms
        self.auto_extend = auto_extend
        self.key_prefix = key_prefix
        self.key = key_prefix + name
        self._lock: Any = None
        self._extender: threading.Thread | None = None
        self._done = threading.Event()
        self._lost = False

    # -- use as a decorator: a fresh lock per call ---------------------------------

    def __call__(self, func: F) -> F:
        @functools.wraps(func)
        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._copy():
                return func(*args, **kwargs)

        return locked  # type: ignore[return-value]

    def _copy(self) -> Lock:
        return Lock(
            self.client, self.name, ttl_ms=self.ttl_ms, blocking=self.blocking,
            timeout_ms=self.timeout_ms, auto_extend=self.auto_extend, key_prefix=self.key_prefix,
        )  # fmt: skip

    # -- context manager -----------------------------------------------------------

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise LockNotAcquired."""
        if self._lock is not None:
            raise LockNotAcquired(f"lock {self.name!r} is already held by this Lock object; use a new one.")
        lock = self.client.lock(
            self.key,
            timeout=self.ttl_ms / 1000,
            sleep=0.05,
            blocking=self.blocking,
            blocking_timeout=None if self.timeout_ms is None else self.timeout_ms / 1000,
            thread_local=False,  # the extender thread extends the holder's token
        )
        try:
            acquired = lock.acquire()
        except RedisError as exc:
            raise backend_unavailable(f"acquiring lock {self.name!r}", exc) from None
        if not acquired:
            how = "it is held elsewhere" if not self.blocking else f"not within {self.timeout_ms} ms"
            raise LockNotAcquired(f"lock {self.name!r} was not acquired: {how}.")
        self._lock, self._lost = lock, False
        if self.auto_extend:
            self._done.clear()
            self._extender = threading.Thread(
                target=self._keep_extending, name=f"lock:{self.name}", daemon=True
            )
            self._extender.start()

    def release(self) -> None:
        """Release the lock; raise LockLost if it had expired or another holder has it."""
        lock, self._lock = self._lock, None
        if lock is None:
            return
        self._done.set()
        if self._extender is not None:
            self._extender.join()
            self._extender = None
        try:
            lock.release()
        except (LockNotOwnedError, RedisLockError, LeaseNotOwned):
            raise LockLost(
                f"lock {self.name!r} expired before release (ttl_ms={self.ttl_ms}) and may be held by "
                "another process now; its work may have overlapped. Use a longer ttl_ms or auto_extend=True."
            ) from None
        except RedisError as exc:
            raise backend_unavailable(f"releasing lock {self.name!r}", exc) from None
        if self._lost:
            raise LockLost(f"lock {self.name!r} was lost while held (an extension failed).")

    @property
    def fence(self) -> int | None:
        """The fencing token of the current hold (DynamoDB locks): higher at every acquisition.

        Pass it to what the lock protects, which refuses a token lower than the highest
        it has seen: a holder that stalled past its lease cannot write after the next one.
        None for Redis locks, and when not held.
        """
        return getattr(self._lock, "fence", None) if self._lock is not None else None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock right now (asks Redis)."""
        return self._lock is not None and bool(self._lock.owned())

    def _keep_extending(self) -> None:
        interval = self.ttl_ms / 3000
        while not self._done.wait(interval):
            lock = self._lock
            if lock is None:
                return
            try:
                lock.extend(self.ttl_ms / 1000, replace_ttl=True)
            except (LockNotOwnedError, RedisLockError, LeaseNotOwned):
                self._lost = True
                logger.error("bridge lock %r was lost while held", self.name)
                return
            except (RedisError, BackendUnavailable) as exc:  # transient: the next beat tries again
                logger.warning("bridge lock %r: extend failed: %s", self.name, exc)
